"""Build the thin DAG every dataset shares: plan, generate (one mapped task per shard),
validate, publish, and an Asset event for downstream consumers.

Heavy imports live inside the tasks so that DAG files parse fast, and XCom
carries paths and counts only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import logging
import os
from collections.abc import Callable
from typing import Any

from airflow.sdk import Asset, Param, dag, get_current_context, task

log = logging.getLogger(__name__)

OUTPUT_ROOT_ENV = "CORPUSFORGE_OUTPUT_ROOT"
# The environment variable and the Airflow Variable that name the alerting hook: an
# importable "module:function" (or "module.function") that receives one dict per
# failed task. The environment variable wins over the Airflow Variable.
ALERT_CALLBACK_ENV = "CORPUSFORGE_ALERT_CALLBACK"
ALERT_CALLBACK_VARIABLE = "corpusforge_alert_callback"


def dataset_asset(dataset: str) -> Asset:
    """Return the Asset that every published release of `dataset` updates."""
    return Asset(name=f"corpusforge_{dataset}", uri=f"corpusforge://releases/{dataset}")


def common_params() -> dict[str, Param]:
    """Return the parameters every dataset DAG shares, with the same names and meaning."""
    return {
        "release": Param(
            None,
            type=["null", "string"],
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
            description="Release key. Empty: the run's logical date (YYYY-MM-DD), or the run id "
            "for manual runs that have none.",
        ),
        "seed": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            description="Random seed. Empty: derived from the dataset and release key.",
        ),
        "output_root": Param(
            None,
            type=["null", "string"],
            description=f"Folder that holds the releases. Empty: ${OUTPUT_ROOT_ENV}, else "
            "./published in the worker's working directory.",
        ),
        "sources": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            description="Source list as 'format:path?key=value' strings (formats in the README). "
            "Empty: the embedded default input.",
        ),
        "limit": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Records to read per source, for quick runs. Empty: all.",
        ),
        "shard_size": Param(
            1000,
            type="integer",
            minimum=1,
            maximum=1_000_000,
            description="Source records per shard. Each shard is one mapped generate task, "
            "unless max_generate_tasks groups them.",
        ),
        "max_generate_tasks": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Most generate tasks per run. Shards are grouped into this many mapped "
            "tasks of about equal work, which saves Airflow's cost per task on releases of "
            "many small shards; set it to the number of worker slots. Empty: one task per "
            "shard. The published bytes are the same either way.",
        ),
        **llm_params(),
    }


# DAG Params of the language-model backend and the LLMSettings field each one sets.
LLM_PARAMS = {
    "llm_backend": "backend",
    "llm_model": "model",
    "llm_conn_id": "conn_id",
    "llm_mode": "mode",
    "llm_concurrency": "concurrency",
    "llm_cache": "cache",
}


def llm_params() -> dict[str, Param]:
    """Return the language-model parameters that every dataset DAG shares."""
    return {
        "llm_backend": Param(
            "offline",
            type="string",
            enum=["offline", "openai"],
            description="Language-model backend: offline (deterministic, no network) or openai "
            "(any OpenAI-compatible endpoint, such as OpenAI, a gateway, vLLM or SGLang).",
        ),
        "llm_model": Param(
            None,
            type=["null", "string"],
            description="Model name the endpoint serves. Required with llm_backend=openai.",
        ),
        "llm_conn_id": Param(
            "openai_default",
            type=["null", "string"],
            description="Airflow Connection of the endpoint: host is the base URL (such as "
            "http://vllm:8000/v1), password is the API key. Empty: OPENAI_BASE_URL and "
            "OPENAI_API_KEY of the worker.",
        ),
        "llm_mode": Param(
            "online",
            type="string",
            enum=["online", "batch"],
            description="online: concurrent requests; batch: the OpenAI Batch API, which can "
            "take up to 24 hours per shard.",
        ),
        "llm_concurrency": Param(
            16,
            type="integer",
            minimum=1,
            maximum=256,
            description="Maximum requests in flight per shard; halved while the endpoint "
            "rate-limits.",
        ),
        "llm_cache": Param(
            None,
            type=["null", "string"],
            description="fsspec URL of the shared response cache. Empty: <output_root>/.llm-cache.",
        ),
    }


def _llm_endpoint(params: dict[str, Any]) -> contextlib.AbstractContextManager[Any]:
    """Resolve the Connection named by llm_conn_id and activate it for this task's shard.

    The key stays in this task's memory: only the connection id is in the Params,
    plan.json and XCom.
    """
    conn_id = params.get("llm_conn_id")
    if params.get("llm_backend") != "openai" or not conn_id:
        return contextlib.nullcontext()
    from airflow.sdk import Connection

    from corpusforge.generators.llm.endpoint import (
        Endpoint,
        Secret,
        endpoint_from_env,
        use_endpoint,
    )

    connection = Connection.get(conn_id)
    base_url = connection.extra_dejson.get("base_url") or connection.host
    endpoint = Endpoint(base_url or endpoint_from_env().base_url, Secret(connection.password or ""))
    return use_endpoint(endpoint)


def _log_run_progress(staging: str, num_shards: int) -> None:
    """Log how many shards of the run are done and an estimate of the time left."""
    from corpusforge.generators.store import staging_progress

    progress = staging_progress(staging)
    log.info(
        "run progress: %d of %d shards done, %d rows, %.0f rows/s, "
        "about %.0f s left for one worker",
        progress.done,
        num_shards,
        progress.rows,
        progress.rows_per_second,
        progress.seconds_left(num_shards),
    )


def shard_label(indices: list[int], num_shards: int) -> str:
    """Return the map index label of a generate task: "shard 3 of 11", "shards 3, 4 of 11"."""
    numbers = ", ".join(str(index + 1) for index in indices)
    return f"shard{'s' if len(indices) > 1 else ''} {numbers} of {num_shards}"


def run_params(
    params: dict[str, Any], conf: dict[str, Any] | None, declared: dict[str, Param]
) -> dict[str, Any]:
    """Return a run's Params ready for the library, or raise ConfigError.

    A conf key that names no Param fails the run: Airflow would ignore it, and a
    misspelt `max_generate_task` would then build with the default silently.
    JSON Schema counts 2.0 as an integer, so whole-number floats of integer
    Params become ints, which keeps plan.json and the fingerprint the same.
    """
    import difflib

    from corpusforge.generators.errors import ConfigError

    unknown = sorted(set(conf or {}) - set(declared))
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(declared), n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"unknown parameter{'s' if len(hints) > 1 else ''} {', '.join(hints)} in the "
            "run's conf; this DAG's parameters "
            f"are {', '.join(sorted(declared))}"
        )
    values = dict(params)
    for name, param in declared.items():
        types = param.schema.get("type")
        types = types if isinstance(types, list) else [types]
        value = values.get(name)
        if "integer" in types and isinstance(value, float) and value.is_integer():
            values[name] = int(value)
    return values


def _permanent(error: Exception) -> Exception:
    """Wrap errors that a retry cannot fix, so Airflow fails the task without retrying."""
    from airflow.sdk.exceptions import AirflowFailException

    from corpusforge.generators.errors import CorpusforgeError

    if isinstance(error, CorpusforgeError) and not error.retryable:
        return AirflowFailException(f"{type(error).__name__}: {error}")
    return error


def _staging_of(task_kwargs: dict[str, Any]) -> str | None:
    """Return the staging folder a task worked on, from its resolved arguments."""
    if task_kwargs.get("staging"):
        return str(task_kwargs["staging"])
    try:
        return str(task_kwargs["shards"][0]["staging"])
    except (KeyError, IndexError, TypeError):
        return None


def failure_report(context: dict[str, Any]) -> dict[str, Any]:
    """Return what an operator needs about a failed task: ids, shard, reason and staging folder."""
    ti = context["ti"]
    task_kwargs = dict(getattr(context.get("task"), "op_kwargs", None) or {})
    error = context.get("exception")
    shard = None
    if "num_shards" in task_kwargs:
        # A task of several shards names the one that failed; the wrapper that
        # stops retries keeps the original error as its cause.
        failed = getattr(error, "corpusforge_shard", None)
        failed = getattr(getattr(error, "__cause__", None), "corpusforge_shard", failed)
        indices = task_kwargs.get("indices") or []
        if "index" in task_kwargs:
            indices = [task_kwargs["index"]]
        if failed is None and len(indices) == 1:
            failed = indices[0]
        if failed is not None:
            shard = f"{failed + 1} of {task_kwargs['num_shards']}"
        elif indices:
            shard = shard_label(indices, task_kwargs["num_shards"]).removeprefix("shards ")
    return {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "try_number": ti.try_number,
        "shard": shard,
        "reason": f"{type(error).__name__}: {error}" if error else "unknown",
        "staging": _staging_of(task_kwargs),
    }


def _alert_hook() -> Callable[[dict[str, Any]], Any] | None:
    path = os.environ.get(ALERT_CALLBACK_ENV)
    if not path:
        from airflow.sdk import Variable

        path = Variable.get(ALERT_CALLBACK_VARIABLE, default=None)
    if not path:
        return None
    module_name, sep, name = path.partition(":")
    if not sep:
        module_name, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


def on_task_failure(context: dict[str, Any]) -> None:
    """Log a failed task with its shard, reason and staging folder, then call the alert hook.

    Airflow calls this once a task has no retries left. Errors of the hook are
    logged and swallowed, so they never hide the task's own failure.
    """
    report = failure_report(context)
    log.error(
        "task %s of run %s failed (try %s): %s, reason %s, staging folder %s",
        report["task_id"],
        report["run_id"],
        report["try_number"],
        f"shard {report['shard']}" if report["shard"] else "no shard",
        report["reason"],
        report["staging"] or "not created yet",
    )
    try:
        hook = _alert_hook()
        if hook is not None:
            hook(report)
    except Exception:
        log.exception(
            "alert hook (%s or Variable %s) failed for task %s of run %s",
            ALERT_CALLBACK_ENV,
            ALERT_CALLBACK_VARIABLE,
            report["task_id"],
            report["run_id"],
        )


def dataset_dag(dataset: str, doc_md: str, option_params: dict[str, Param]):
    """Return the DAG that builds and publishes `dataset`."""
    asset = dataset_asset(dataset)
    declared = {**common_params(), **option_params}

    @dag(
        dag_id=dataset,
        schedule="@weekly",
        start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        catchup=False,
        doc_md=doc_md,
        params=declared,
        default_args={
            "retries": 2,
            "retry_delay": dt.timedelta(seconds=10),
            "on_failure_callback": on_task_failure,
        },
        tags=["corpusforge", dataset],
        render_template_as_native_obj=False,
    )
    def build():
        @task
        def plan() -> list[dict[str, Any]]:
            from corpusforge.generators.pipeline import (
                BuildParams,
                RunInfo,
                check_max_generate_tasks,
                group_shards,
                load_plan,
                plan_release,
            )

            context = get_current_context()
            dag_run = context["dag_run"]
            logical_date = context.get("logical_date")
            try:
                params = run_params(context["params"], dag_run.conf, declared)
                check_max_generate_tasks(params.get("max_generate_tasks"))
            except Exception as error:
                raise _permanent(error) from error
            options = {name: params[name] for name in option_params}
            build_params = BuildParams(
                dataset=dataset,
                release=params.get("release") or None,
                seed=params.get("seed"),
                output_root=params.get("output_root")
                or os.environ.get(OUTPUT_ROOT_ENV)
                or "published",
                sources=params.get("sources") or None,
                limit=params.get("limit"),
                shard_size=params["shard_size"],
                options=options,
                llm={field: params.get(name) for name, field in LLM_PARAMS.items()},
            )
            run = RunInfo(
                run_id=dag_run.run_id,
                logical_date=logical_date.isoformat() if logical_date else None,
                started_at=(dag_run.start_date or dt.datetime.now(dt.UTC)).isoformat(),
            )
            try:
                staging = plan_release(build_params, run)
            except Exception as error:
                raise _permanent(error) from error
            try:
                plan = load_plan(staging)
                groups = group_shards(plan, params.get("max_generate_tasks"))
            except Exception as error:
                raise _permanent(error) from error
            num_shards = len(plan["shards"])
            return [
                {"staging": str(staging), "indices": indices, "num_shards": num_shards}
                for indices in groups
            ]

        @task(map_index_template="{{ shard_label }}")
        def generate(staging: str, num_shards: int, indices: list[int]) -> dict[str, Any]:
            from corpusforge.generators.pipeline import generate_shard

            context = get_current_context()
            context["shard_label"] = shard_label(indices, num_shards)
            results = []
            for index in indices:
                try:
                    with _llm_endpoint(context["params"]):
                        stats = generate_shard(staging, index)
                except Exception as error:
                    # The failure callback names this shard of a task that has several.
                    error.corpusforge_shard = index
                    raise _permanent(error) from error
                results.append(
                    {"index": index, "rows": stats["rows"], "quarantined": stats["quarantined"]}
                )
                _log_run_progress(staging, num_shards)
            return {"shards": results}

        @task
        def validate(shards: list[dict[str, Any]]) -> str:
            from corpusforge.data_contracts import validate_staging
            from corpusforge.generators.pipeline import local_staging

            staging = shards[0]["staging"]
            try:
                # Contract checks read local files: a staging folder on an object
                # store is downloaded, and its validation/ results are uploaded back.
                with local_staging(staging) as local:
                    validate_staging(local)
            except Exception as error:
                raise _permanent(error) from error
            log.info("staged release %s passed its contract", staging)
            return staging

        # One publish per dataset at a time across all runs: on a local disk the
        # library also takes a file lock, but an object store has none.
        @task(outlets=[asset], max_active_tis_per_dag=1)
        def publish(staging: str) -> dict[str, Any]:
            from corpusforge.generators.publish import publish_release

            try:
                published = publish_release(staging)
            except Exception as error:
                raise _permanent(error) from error
            event = {
                "dataset": dataset,
                "release": published.release,
                "path": published.path,
                "rows": published.splits,
                "num_rows": published.num_rows,
                "content_fingerprint": published.content_fingerprint,
                "latest": published.latest,
            }
            get_current_context()["outlet_events"][asset].extra = event
            return event

        planned = plan()
        generated = generate.expand_kwargs(planned)
        validated = validate(planned)
        generated >> validated
        publish(validated)

    return build()
