"""
### StepHint consumer (example)

An example downstream DAG: it runs whenever the `stephint` DAG publishes a
release, because it is scheduled on the `corpusforge_stephint` Asset. Each
triggering Asset event carries the release in its `extra` (`dataset`,
`release`, `path`, `rows`, `num_rows`, `content_fingerprint`, `latest`).

For every event, `check_releases` compares the row counts of the event, of
`manifest.json` and of the Parquet files, then streams a few rows of each
non-empty split with Hugging Face `datasets`. A mismatch fails the task. Copy
this file as the start of your own consumer and replace the checks with your
work.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from airflow.sdk import dag, get_current_context, task
from upath import UPath

from _factory import dataset_asset

log = logging.getLogger(__name__)

STEPHINT = dataset_asset("stephint")
SAMPLE_ROWS = 5


class ReleaseCheckFailed(ValueError):
    """A published release disagrees with its Asset event or its own manifest."""


def parquet_rows(release_dir: Path | UPath, manifest: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Count the rows of every shard listed in the manifest from the Parquet footers."""
    import pyarrow.parquet as pq

    counts: dict[str, dict[str, int]] = {}
    for shard in manifest["shards"]:
        with (release_dir / shard["path"]).open("rb") as handle:
            rows = pq.ParquetFile(handle).metadata.num_rows
        if rows != shard["rows"]:
            raise ReleaseCheckFailed(
                f"{release_dir / shard['path']} has {rows} rows, "
                f"but the manifest lists {shard['rows']}"
            )
        split_counts = counts.setdefault(shard["config"], {})
        split_counts[shard["split"]] = split_counts.get(shard["split"], 0) + rows
    return counts


def sample_rows(
    release_dir: Path | UPath,
    manifest: dict[str, Any],
    config: str,
    split: str,
    limit: int = SAMPLE_ROWS,
) -> list:
    """Stream the first `limit` rows of one split with `datasets`.

    A local release is read through the configs of its dataset card. A release
    on an object store is read from the URLs of its shards, as the loading
    section of its card shows.
    """
    import datasets

    if isinstance(release_dir, Path):
        stream = datasets.load_dataset(str(release_dir), config, split=split, streaming=True)
    else:
        files = [
            str(release_dir / shard["path"])
            for shard in manifest["shards"]
            if shard["config"] == config and shard["split"] == split
        ]
        stream = datasets.load_dataset(
            "parquet", data_files={split: files}, split=split, streaming=True
        )
    return list(stream.take(limit))


def check_release(extra: dict[str, Any]) -> dict[str, Any]:
    """Check the release that an Asset event's `extra` names and return a summary of the checks.

    Raises ReleaseCheckFailed when the event, the manifest and the files disagree.
    """
    from corpusforge.generators.objstore import location

    # A local folder or, for an output root on an object store, the attempt folder's URL.
    release_dir = location(extra["path"])
    manifest = json.loads((release_dir / "manifest.json").read_text(encoding="utf-8"))
    if manifest["content_fingerprint"] != extra.get("content_fingerprint"):
        # The same key was published again after this event, so check the release there now.
        log.warning(
            "release %s was republished after the event: fingerprint %s, event had %s",
            extra.get("release"),
            manifest["content_fingerprint"],
            extra.get("content_fingerprint"),
        )
    elif manifest["splits"] != extra.get("rows"):
        raise ReleaseCheckFailed(
            f"release {extra.get('release')}: the event lists rows {extra.get('rows')}, "
            f"the manifest {manifest['splits']}"
        )

    counted = parquet_rows(release_dir, manifest)
    if counted != manifest["splits"]:
        raise ReleaseCheckFailed(
            f"release {manifest['release']}: Parquet files hold {counted}, "
            f"the manifest lists {manifest['splits']}"
        )

    sampled = 0
    for config, splits in sorted(manifest["splits"].items()):
        for split, rows in sorted(splits.items()):
            sample = sample_rows(release_dir, manifest, config, split)
            if len(sample) != min(rows, SAMPLE_ROWS):
                raise ReleaseCheckFailed(
                    f"release {manifest['release']}: datasets loaded {len(sample)} rows "
                    f"of {config}/{split}, expected {min(rows, SAMPLE_ROWS)}"
                )
            sampled += len(sample)

    log.info(
        "release %s at %s: %d rows match the manifest, and datasets loaded %d sample rows",
        manifest["release"],
        release_dir,
        manifest["num_rows"],
        sampled,
    )
    return {
        "release": manifest["release"],
        "path": str(release_dir),
        "rows": manifest["splits"],
        "sampled_rows": sampled,
        "content_fingerprint": manifest["content_fingerprint"],
    }


@dag(
    dag_id="stephint_consumer",
    schedule=[STEPHINT],
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    doc_md=__doc__,
    tags=["corpusforge", "stephint", "example"],
)
def stephint_consumer():
    @task
    def check_releases() -> list[dict[str, Any]]:
        events = get_current_context()["triggering_asset_events"][STEPHINT]
        results = []
        for event in events:
            if "path" not in event.extra:
                log.warning("skipped an Asset event without a release path: %s", event.extra)
                continue
            results.append(check_release(event.extra))
        return results

    check_releases()


stephint_consumer_dag = stephint_consumer()
