"""A run killed at any step leaves the previous release intact and nothing partial visible."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from pathlib import Path

import pytest
from release_helpers import build

from corpusforge.generators import store
from corpusforge.generators.faults import KILL_ENV

KILL_POINTS = ["mid_shard", "before_move_parts", "before_rename_staging", "before_switch"]


def _build_in_child(root: Path, release: str, seed: int, kill_at: str) -> None:
    os.environ[KILL_ENV] = kill_at
    build(root, release, seed=seed)


def _killed_build(root: Path, release: str, seed: int, kill_at: str) -> int:
    """Run a build in a forked child that SIGKILLs itself at `kill_at`; return its exit code."""
    child = multiprocessing.get_context("fork").Process(
        target=_build_in_child, args=(root, release, seed, kill_at)
    )
    child.start()
    child.join(timeout=300)
    return child.exitcode


def _snapshot(root: Path, release: str) -> tuple[str, str]:
    link = root / "stephint" / release
    manifest = store.load_manifest(link)
    return os.readlink(link), manifest["content_fingerprint"]


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_kill_leaves_previous_release_intact(tmp_path: Path, kill_at: str):
    build(tmp_path, "r1", seed=1)
    before = _snapshot(tmp_path, "r1")

    assert _killed_build(tmp_path, "r1", seed=2, kill_at=kill_at) == -signal.SIGKILL

    assert _snapshot(tmp_path, "r1") == before
    assert store.verify_release(tmp_path / "stephint" / "r1") == []
    assert (tmp_path / "stephint" / "LATEST").read_text().strip() == "r1"
    assert [info.release for info in store.list_releases(tmp_path, "stephint")] == ["r1"]

    # A rerun after the crash replaces the release whole.
    rerun = build(tmp_path, "r1", seed=2)
    assert rerun.content_fingerprint != before[1]
    assert store.verify_release(tmp_path / "stephint" / "r1") == []
    rows = store.load_manifest(tmp_path / "stephint" / "r1")["num_rows"]
    assert rows == 60


def test_kill_before_latest_keeps_latest_consistent(tmp_path: Path):
    build(tmp_path, "r1", seed=1)
    assert _killed_build(tmp_path, "r2", seed=2, kill_at="before_latest") == -signal.SIGKILL

    # The new release is complete but LATEST was not moved yet: LATEST moves last.
    assert (tmp_path / "stephint" / "LATEST").read_text().strip() == "r1"
    assert store.verify_release(tmp_path / "stephint" / "r2") == []
    assert store.verify_release(tmp_path / "stephint" / "r1") == []


def test_mid_shard_kill_leaves_no_complete_looking_part(tmp_path: Path):
    assert _killed_build(tmp_path, "r1", seed=1, kill_at="mid_shard") == -signal.SIGKILL
    staging_dirs = list((tmp_path / "stephint" / ".staging").iterdir())
    assert len(staging_dirs) == 1
    parts = staging_dirs[0] / "parts"
    assert list(parts.glob("shard-*.parquet")) == []
    assert list(parts.glob("shard-*.json")) == []
    assert not (tmp_path / "stephint" / "r1").exists()
    assert not (tmp_path / "stephint" / "LATEST").exists()
    plan = json.loads((staging_dirs[0] / "plan.json").read_text())
    assert plan["release"] == "r1"
