"""Constants and release builders shared by the LLM backend tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from corpusforge.generators.pipeline import (
    BuildParams,
    RunInfo,
    generate_shard,
    load_plan,
    plan_release,
)
from corpusforge.generators.publish import PublishedRelease, publish_release

# A key that is easy to find in logs and files, so tests can prove that it never leaks.
API_KEY = "sk-test-SECRET-7f3a9c2e5b1d4f60"

# Client settings that keep retries and polls fast; a test overrides what it checks.
FAST_SETTINGS: dict[str, Any] = {
    "backend": "openai",
    "model": "mock-model",
    "concurrency": 4,
    "max_attempts": 3,
    "timeout_seconds": 1.0,
    "backoff_seconds": 0.01,
    "max_backoff_seconds": 0.05,
    "breaker_failures": 50,
    "batch_poll_seconds": 0.02,
    "progress_seconds": 0.0,
}


def stage_release(
    root: Path,
    sources: list[str],
    *,
    release: str = "r1",
    options: dict[str, Any] | None = None,
    llm: dict[str, Any] | None = None,
    order: str = "sequential",
    **params: Any,
) -> Path:
    """Plan and generate every shard of a StepHint release; return the staging folder."""
    staging = plan_release(
        BuildParams(
            dataset="stephint",
            release=release,
            output_root=str(root),
            sources=sources,
            options=options or {},
            llm={**FAST_SETTINGS, **(llm or {})},
            **params,
        ),
        RunInfo(run_id="llm-test", started_at="2026-01-01T00:00:00+00:00"),
    )
    indices = list(range(len(load_plan(staging)["shards"])))
    if order == "reverse":
        indices.reverse()
    for index in indices:
        generate_shard(staging, index)
    return staging


def build_release(root: Path, sources: list[str], **kwargs: Any) -> PublishedRelease:
    """Stage, validate and publish a StepHint release."""
    from corpusforge.data_contracts import validate_staging

    staging = stage_release(root, sources, **kwargs)
    validate_staging(staging)
    return publish_release(staging)
