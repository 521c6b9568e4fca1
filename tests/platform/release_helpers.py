"""Build releases in-process with the same library calls that the DAG tasks make."""

from __future__ import annotations

import multiprocessing
import os
import random
from collections.abc import Callable
from pathlib import Path

from corpusforge.generators.faults import KILL_ENV
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


STORE_SOURCES = ["synthetic_math:?count=20"]


def store_build(root: str, release: str = "r1", **params) -> PublishedRelease:
    """Stage, validate and publish a small StepHint release on an object store, as the
    DAG tasks do: validation reads a local copy of the staging folder."""
    from corpusforge.data_contracts import validate_staging
    from corpusforge.generators.pipeline import local_staging

    params.setdefault("sources", STORE_SOURCES)
    params.setdefault("shard_size", 10)
    staging = stage(root, release, **params)
    with local_staging(staging) as local:
        validate_staging(local)
    return publish_release(staging)


def _store_build_in_child(
    root: str, release: str, seed: int, kill_at: str, prepare: Callable[[], None] | None
) -> None:
    os.environ[KILL_ENV] = kill_at
    if prepare is not None:
        prepare()
    store_build(root, release, seed=seed)


def killed_store_build(
    root: str,
    release: str,
    seed: int,
    kill_at: str,
    prepare: Callable[[], None] | None = None,
) -> int | None:
    """Run store_build in a forked child that SIGKILLs itself at `kill_at`; return its
    exit code. `prepare` runs in the child first, for example to drop cached clients."""
    child = multiprocessing.get_context("fork").Process(
        target=_store_build_in_child, args=(root, release, seed, kill_at, prepare)
    )
    child.start()
    child.join(timeout=300)
    return child.exitcode
