# Two entry points: `make run` publishes every dataset through real Airflow on
# the embedded default input; `make test` runs ruff and the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8

export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export CORPUSFORGE_OUTPUT_ROOT ?= $(CURDIR)/published

# Fixed release key and seed, so `make run` publishes the same bytes on every
# machine and every day.
RUN_RELEASE := demo
RUN_SEED := 20250101
DAGS := stephint med_mim mllmu_med

.PHONY: setup run test lint format clean

setup: $(VENV)/.installed $(AIRFLOW_HOME)/.migrated

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock -e .
	touch $@

$(AIRFLOW_HOME)/.migrated: $(VENV)/.installed
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/migrate.log; exit 1)
	touch $@

run: setup
	@for dag in $(DAGS); do \
		echo "==> airflow dags test $$dag (release $(RUN_RELEASE), seed $(RUN_SEED))"; \
		$(BIN)/airflow dags test $$dag \
			--conf '{"release": "$(RUN_RELEASE)", "seed": $(RUN_SEED)}' \
			> $(AIRFLOW_HOME)/run-$$dag.log 2>&1 \
			|| { tail -n 60 $(AIRFLOW_HOME)/run-$$dag.log; echo "DAG $$dag failed; full log: $(AIRFLOW_HOME)/run-$$dag.log"; exit 1; }; \
	done
	@for dag in $(DAGS); do $(BIN)/corpusforge show $$dag $(RUN_RELEASE) --output-root $(CORPUSFORGE_OUTPUT_ROOT) --brief; done

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(AIRFLOW_HOME) published .pytest_cache .ruff_cache
