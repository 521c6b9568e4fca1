"""Build the thin DAG every dataset shares: plan, generate (one mapped task per shard),
validate, publish, and an Asset event for downstream consumers.

Heavy imports live inside the tasks so that DAG files parse fast, and XCom
carries paths and counts only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from typing import Any

from airflow.sdk import Asset, Param, dag, get_current_context, task

log = logging.getLogger(__name__)

OUTPUT_ROOT_ENV = "CORPUSFORGE_OUTPUT_ROOT"


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
            description="Source records per shard; each shard is one mapped task.",
        ),
    }


def _permanent(error: Exception) -> Exception:
    """Wrap errors that a retry cannot fix, so Airflow fails the task without retrying."""
    from airflow.sdk.exceptions import AirflowFailException

    from corpusforge.generators.errors import CorpusforgeError

    if isinstance(error, CorpusforgeError) and not error.retryable:
        return AirflowFailException(f"{type(error).__name__}: {error}")
    return error


def dataset_dag(dataset: str, doc_md: str, option_params: dict[str, Param]):
    """Return the DAG that builds and publishes `dataset`."""
    asset = dataset_asset(dataset)

    @dag(
        dag_id=dataset,
        schedule="@weekly",
        start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        catchup=False,
        doc_md=doc_md,
        params={**common_params(), **option_params},
        default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=10)},
        tags=["corpusforge", dataset],
        render_template_as_native_obj=False,
    )
    def build():
        @task
        def plan() -> list[dict[str, Any]]:
            from corpusforge.generators.pipeline import BuildParams, RunInfo, plan_release

            context = get_current_context()
            params = context["params"]
            dag_run = context["dag_run"]
            logical_date = context.get("logical_date")
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
            num_shards = len(json.loads((staging / "plan.json").read_text())["shards"])
            return [
                {"staging": str(staging), "index": index, "num_shards": num_shards}
                for index in range(num_shards)
            ]

        @task(map_index_template="{{ shard_label }}")
        def generate(staging: str, num_shards: int, index: int) -> dict[str, Any]:
            from corpusforge.generators.pipeline import generate_shard

            get_current_context()["shard_label"] = f"shard {index + 1} of {num_shards}"
            try:
                stats = generate_shard(staging, index)
            except Exception as error:
                raise _permanent(error) from error
            return {"index": index, "rows": stats["rows"], "quarantined": stats["quarantined"]}

        @task
        def validate(shards: list[dict[str, Any]]) -> str:
            from corpusforge.data_contracts import validate_staging

            staging = shards[0]["staging"]
            try:
                validate_staging(staging)
            except Exception as error:
                raise _permanent(error) from error
            log.info("staged release %s passed its contract", staging)
            return staging

        @task(outlets=[asset])
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
