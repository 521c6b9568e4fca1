"""`corpusforge prune`: retention of releases and clean-up of abandoned work folders."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path

import pytest

from corpusforge.generators import store
from corpusforge.generators.errors import ConfigError
from corpusforge.generators.pipeline import (
    BuildParams,
    RunInfo,
    generate_shard,
    load_plan,
    plan_release,
)
from corpusforge.generators.publish import publish_release, read_latest
from corpusforge.generators.retention import prune
from corpusforge.main import main

DATES = ["2025-01-05", "2025-01-12", "2025-01-19", "2025-01-26"]
DAY = 24 * 3600


def _stage(root: Path, release: str | None, logical_date: str) -> Path:
    staging = plan_release(
        BuildParams(
            dataset="stephint",
            release=release,
            output_root=str(root),
            sources=["synthetic_math:?count=3"],
            shard_size=2,
        ),
        RunInfo(run_id=f"scheduled__{logical_date}", logical_date=f"{logical_date}T00:00:00+00:00"),
    )
    for index in range(len(load_plan(staging)["shards"])):
        generate_shard(staging, index)
    return staging


def _publish(root: Path, logical_date: str, release: str | None = None) -> None:
    from corpusforge.data_contracts import validate_staging

    staging = _stage(root, release, logical_date)
    validate_staging(staging)
    publish_release(staging)


def _age(path: Path, seconds: float) -> None:
    """Set the modification time of `path` and everything under it `seconds` into the past."""
    stamp = time.time() - seconds
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (stamp, stamp), follow_symlinks=False)
    os.utime(path, (stamp, stamp))


@pytest.fixture(scope="module")
def four_releases(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prune-template")
    for date in DATES:
        _publish(root, date)
    return root


@pytest.fixture
def root(four_releases: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "published"
    shutil.copytree(four_releases, copy, symlinks=True)
    return copy


def _names(root: Path) -> list[str]:
    return [info.release for info in store.list_releases(root, "stephint")]


def test_prune_keeps_newest_releases(root: Path):
    dataset_dir = root / "stephint"
    removed_targets = [(dataset_dir / date).resolve() for date in DATES[:2]]

    result = prune(root, "stephint", keep=2)

    assert result.removed_releases == DATES[:2]
    assert result.kept == DATES[2:]
    assert _names(root) == DATES[2:]
    for target in removed_targets:
        assert not target.exists()
    assert read_latest(dataset_dir) == DATES[-1]
    for date in DATES[2:]:
        assert store.verify_release(dataset_dir / date) == []
    assert sorted(path.name for path in (dataset_dir / ".releases").iterdir()) == sorted(
        (dataset_dir / date).resolve().name for date in DATES[2:]
    )


def test_prune_keep_more_than_exist(root: Path):
    result = prune(root, "stephint", keep=10)
    assert result.removed_releases == []
    assert _names(root) == DATES


def test_prune_never_removes_latest(tmp_path: Path):
    # Two releases with the same logical date tie on order; LATEST is the one
    # published last, which sorts first by name here.
    _publish(tmp_path, "2025-02-02", release="b-release")
    _publish(tmp_path, "2025-02-02", release="a-release")
    assert read_latest(tmp_path / "stephint") == "a-release"

    result = prune(tmp_path, "stephint", keep=1)

    assert "a-release" in result.kept
    assert "b-release" in result.kept
    assert result.removed_releases == []
    assert read_latest(tmp_path / "stephint") == "a-release"


def test_prune_latest_survives_older_reprocess(root: Path):
    # Republishing an old date keeps its old order, so LATEST stays on the newest.
    _publish(root, DATES[0])
    assert read_latest(root / "stephint") == DATES[-1]
    result = prune(root, "stephint", keep=1)
    assert result.kept == [DATES[-1]]
    assert _names(root) == [DATES[-1]]


def test_prune_dry_run_removes_nothing(root: Path):
    before = sorted(str(path) for path in root.rglob("*"))
    result = prune(root, "stephint", keep=1, dry_run=True)
    assert result.dry_run
    assert result.removed_releases == DATES[:3]
    assert sorted(str(path) for path in root.rglob("*")) == before


def test_prune_abandoned_staging_only_when_old(root: Path):
    old = _stage(root, None, "2025-03-02")
    fresh = _stage(root, None, "2025-03-09")
    _age(old, 2 * DAY)

    result = prune(root, "stephint", keep=10)

    assert result.removed_staging == [old.name]
    assert not old.exists()
    assert fresh.exists()
    assert _names(root) == DATES


def test_prune_staging_age_counts_newest_file(root: Path):
    staging = _stage(root, None, "2025-03-02")
    _age(staging, 2 * DAY)
    # A shard that is still being written keeps its staging folder alive.
    (staging / "parts" / ".shard-00000.123.parquet.tmp").write_bytes(b"partial")
    assert prune(root, "stephint", keep=10).removed_staging == []
    assert staging.exists()


def test_prune_removes_old_unlinked_attempt(root: Path):
    releases_dir = root / "stephint" / ".releases"
    orphan = releases_dir / "2025-01-05.20250101T000000-deadbeef"
    shutil.copytree((root / "stephint" / DATES[0]).resolve(), orphan)
    recent = releases_dir / "2025-01-05.20250101T000000-cafecafe"
    shutil.copytree((root / "stephint" / DATES[0]).resolve(), recent)
    _age(orphan, 3 * DAY)

    result = prune(root, "stephint", keep=10)

    assert result.removed_attempts == [orphan.name]
    assert not orphan.exists()
    assert recent.exists()
    assert _names(root) == DATES


def test_prune_max_age_zero_removes_all_staging(root: Path):
    staging = _stage(root, None, "2025-03-02")
    result = prune(root, "stephint", keep=10, max_age=dt.timedelta(0), now=_future())
    assert result.removed_staging == [staging.name]


def _future() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)


def test_prune_broken_release_link_counts_oldest(root: Path):
    dataset_dir = root / "stephint"
    (dataset_dir / "broken").symlink_to(".releases/missing-attempt")

    result = prune(root, "stephint", keep=len(DATES))

    assert result.removed_releases == ["broken"]
    assert not (dataset_dir / "broken").is_symlink()
    assert _names(root) == DATES


def test_prune_empty_output_root(tmp_path: Path):
    result = prune(tmp_path, "stephint", keep=1)
    assert result.kept == []
    assert result.removed_releases == []


@pytest.mark.parametrize("keep", [0, -1])
def test_prune_rejects_keep_below_one(tmp_path: Path, keep: int):
    with pytest.raises(ConfigError, match="keep at least 1"):
        prune(tmp_path, "stephint", keep=keep)


def test_prune_rejects_unknown_dataset(tmp_path: Path):
    with pytest.raises(ConfigError, match="unknown dataset"):
        prune(tmp_path, "no_such_dataset", keep=1)


def test_prune_cli(root: Path, capsys):
    code = main(["prune", "stephint", "--keep", "3", "--output-root", str(root)])
    assert code == 0
    out = capsys.readouterr().out
    assert f"removed release {DATES[0]}" in out
    assert f"kept 3 release(s): {', '.join(DATES[1:])}" in out
    assert _names(root) == DATES[1:]


def test_prune_cli_dry_run_and_errors(root: Path, capsys):
    code = main(["prune", "stephint", "--keep", "1", "--dry-run", "--output-root", str(root)])
    assert code == 0
    assert f"would remove release {DATES[0]}" in capsys.readouterr().out
    assert _names(root) == DATES

    assert main(["prune", "stephint", "--keep", "0", "--output-root", str(root)]) == 2
    assert "keep at least 1" in capsys.readouterr().err
    code = main(
        ["prune", "stephint", "--keep", "1", "--staging-max-age", "-1"]
        + ["--output-root", str(root)]
    )
    assert code == 2
    assert "--staging-max-age" in capsys.readouterr().err
