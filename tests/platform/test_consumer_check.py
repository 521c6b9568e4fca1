"""The example consumer DAG's release check, on a local folder and on an object store."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pytest
from release_helpers import stage
from upath import UPath

from corpusforge.data_contracts import validate_staging
from corpusforge.generators.pipeline import local_staging
from corpusforge.generators.publish import publish_release


def _event(root: str | Path) -> dict:
    staging = stage(root, "r1", sources=["synthetic_math:?count=12"], shard_size=5)
    with local_staging(staging) as local:
        validate_staging(local)
    published = publish_release(staging)
    return {
        "release": published.release,
        "path": published.path,
        "rows": published.splits,
        "content_fingerprint": published.content_fingerprint,
    }


@pytest.fixture
def memory_root():
    url = f"memory://cf-consumer-{uuid.uuid4().hex[:12]}/out"
    yield url
    fsspec.filesystem("memory").rm(UPath(url).path, recursive=True)


@pytest.fixture
def online_datasets(monkeypatch):
    import datasets.config

    # Other tests set HF_DATASETS_OFFLINE before `datasets` is first imported, and
    # `datasets` then refuses every URL that is not a local path.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)


def test_consumer_checks_local_release(tmp_path: Path, online_datasets):
    from stephint_consumer import check_release

    summary = check_release(_event(tmp_path))
    assert summary["rows"] == {"chains": {"train": 12}}
    assert summary["sampled_rows"] == 5


def test_consumer_checks_store_release(memory_root: str, online_datasets):
    from stephint_consumer import check_release

    event = _event(memory_root)
    assert event["path"].startswith("memory://")
    summary = check_release(event)
    assert summary["path"] == event["path"]
    assert summary["rows"] == {"chains": {"train": 12}}
    assert summary["sampled_rows"] == 5


def test_consumer_rejects_changed_counts(tmp_path: Path, online_datasets):
    from stephint_consumer import ReleaseCheckFailed, check_release

    event = _event(tmp_path)
    event["rows"] = {"chains": {"train": 13}}
    with pytest.raises(ReleaseCheckFailed, match="the event lists rows"):
        check_release(event)
