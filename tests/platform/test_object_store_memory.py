"""Object-store publishing on fsspec's in-process `memory://` store: fast checks of the edges."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import fsspec
import pytest
from release_helpers import stage
from upath import UPath

from corpusforge.generators import objstore, store
from corpusforge.generators.errors import ConfigError, ValidationFailed
from corpusforge.generators.pipeline import generate_shard, load_plan, local_staging
from corpusforge.generators.publish import PublishedRelease, publish_release

SOURCES = ["synthetic_math:?count=20"]


@pytest.fixture
def root() -> str:
    url = f"memory://cf-{uuid.uuid4().hex[:12]}/out"
    yield url
    memory = fsspec.filesystem("memory")
    memory.rm(UPath(url).path, recursive=True)


def validate(staging) -> None:
    from corpusforge.data_contracts import validate_staging

    with local_staging(staging) as local:
        validate_staging(local)


def build(root: str, release: str = "r1", **params) -> PublishedRelease:
    params.setdefault("sources", SOURCES)
    params.setdefault("shard_size", 10)
    staging = stage(root, release, **params)
    validate(staging)
    return publish_release(staging)


@pytest.mark.parametrize(
    ("root", "remote", "local"),
    [
        ("published", False, Path("published")),
        ("file:///srv/releases", False, Path("/srv/releases")),
        ("memory://bucket/prefix", True, None),
        ("s3://bucket/prefix/", True, None),
    ],
)
def test_location_kinds(root: str, remote: bool, local: Path | None):
    assert objstore.is_remote(root) is remote
    found = objstore.location(root)
    if remote:
        assert isinstance(found, UPath)
        assert str(found) == root.rstrip("/")
    else:
        assert found == local


def test_file_url_uses_local_layout(tmp_path: Path):
    published = build(f"file://{tmp_path}", "r1", seed=1)
    link = tmp_path / "stephint" / "r1"
    assert link.is_symlink()
    assert published.path == str(link)
    assert (tmp_path / "stephint" / "LATEST").read_text() == "r1\n"


def test_staging_is_attempt_folder(root: str):
    staging = stage(root, "r1", sources=SOURCES, shard_size=10)
    assert isinstance(staging, UPath)
    assert str(staging).startswith(f"{root}/stephint/.releases/r1.")
    assert load_plan(str(staging))["output_root"] == root
    assert load_plan(staging)["parameters"]["options"]["llm"]["cache"] == f"{root}/.llm-cache"
    # Nothing is visible before publishing.
    assert store.list_releases(root, "stephint") == []
    with pytest.raises(ConfigError, match="no LATEST release"):
        store.release_dir(root, "stephint", None)


def test_shard_retry_rewrites(root: str):
    staging = stage(root, "r1", sources=SOURCES, shard_size=10)
    parts = staging / "parts"
    stale = staging / "quarantine" / "shard-00000.jsonl"
    objstore.write_bytes(stale, b'{"reason": "stale"}\n')
    objstore.write_bytes(parts / "shard-00000.parquet", b"not parquet")

    stats = generate_shard(staging, 0)

    assert not objstore.exists(stale)
    assert objstore.sha256(parts / "shard-00000.parquet") == stats["sha256"]
    assert objstore.read_json(parts / "shard-00000.json") == stats
    validate(staging)
    assert publish_release(staging).num_rows == 20


def test_modified_part_fails_validation(root: str):
    staging = stage(root, "r1", sources=SOURCES, shard_size=10)
    objstore.write_bytes(staging / "parts" / "shard-00001.parquet", b"PAR1 changed")

    with pytest.raises(ValidationFailed):
        validate(staging)

    # The failed results are on the store, and publishing rejects the attempt.
    summary = objstore.read_json(staging / "validation" / "summary.json")
    assert summary["success"] is False
    with pytest.raises(ValidationFailed):
        publish_release(staging)
    assert store.list_releases(root, "stephint") == []


def test_part_changed_after_validation(root: str):
    from corpusforge.generators.errors import PublishError

    staging = stage(root, "r1", sources=SOURCES, shard_size=10)
    validate(staging)
    objstore.write_bytes(staging / "parts" / "shard-00000.parquet", b"PAR1 changed")

    with pytest.raises(PublishError, match="changed after validation"):
        publish_release(staging)
    assert not objstore.exists(UPath(root) / "stephint" / "r1.json")


def test_rerun_replaces_release(root: str):
    first = build(root, "r1", seed=1)
    second = build(root, "r1", seed=2)

    assert second.path != first.path
    assert not objstore.exists(UPath(first.path))
    pointer = objstore.read_json(UPath(root) / "stephint" / "r1.json")
    assert f"{root}/stephint/{pointer['path']}" == second.path
    assert pointer["content_fingerprint"] == second.content_fingerprint
    assert store.verify_release(store.release_dir(root, "stephint", "r1")) == []


@pytest.mark.parametrize("path", ["../elsewhere", ".releases/..", "data", ".releases/a/b"])
def test_pointer_outside_releases_rejected(root: str, path: str):
    build(root, "r1", seed=1)
    pointer_file = UPath(root) / "stephint" / "r1.json"
    pointer = objstore.read_json(pointer_file)
    objstore.write_bytes(pointer_file, json.dumps({**pointer, "path": path}).encode())

    with pytest.raises(ConfigError, match="invalid pointer"):
        store.release_dir(root, "stephint", "r1")


def test_release_key_with_json_suffix(root: str):
    build(root, "r1", seed=1)
    build(root, "r1.json", seed=2)
    names = sorted(info.release for info in store.list_releases(root, "stephint"))
    assert names == ["r1", "r1.json"]
    assert store.release_dir(root, "stephint", "r1.json") != store.release_dir(
        root, "stephint", "r1"
    )


def test_unknown_store_rejected():
    with pytest.raises(ConfigError, match="Install the fsspec driver"):
        store.list_releases("nosuch://bucket/out", "stephint")
