"""Build releases in-process with the same library calls that the DAG tasks make."""

from __future__ import annotations

import random
from pathlib import Path

from corpusforge.generators.pipeline import (
    BuildParams,
    RunInfo,
    generate_shard,
    load_plan,
    plan_release,
)
from corpusforge.generators.publish import PublishedRelease, publish_release


def stage(
    root: Path,
    release: str | None = "r1",
    sources: list[str] | None = None,
    order: str = "sequential",
    run: RunInfo | None = None,
    **params,
) -> Path:
    """Plan and generate every shard of a StepHint release; return the staging folder."""
    params.setdefault("shard_size", 16)
    if sources is None:
        sources = ["synthetic_math:?count=60"]
    staging = plan_release(
        BuildParams(
            dataset="stephint", release=release, output_root=str(root), sources=sources, **params
        ),
        run or RunInfo(run_id="test-run", started_at="2026-01-01T00:00:00+00:00"),
    )
    indices = list(range(len(load_plan(staging)["shards"])))
    if order == "reverse":
        indices.reverse()
    elif order == "shuffled":
        random.Random(7).shuffle(indices)
    for index in indices:
        generate_shard(staging, index)
    return staging


def build(root: Path, release: str | None = "r1", **kwargs) -> PublishedRelease:
    """Stage, validate and publish a StepHint release."""
    from corpusforge.data_contracts import validate_staging

    staging = stage(root, release, **kwargs)
    validate_staging(staging)
    return publish_release(staging)
