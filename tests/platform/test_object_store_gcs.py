"""Publishing to Google Cloud Storage through pointer files, against an emulator on 127.0.0.1.

The emulator (gcp-storage-emulator) runs in this process on a free port, and
gcsfs reaches it through the standard `STORAGE_EMULATOR_HOST` variable, so the
library code runs unchanged. fsspec's configuration gives gcsfs `token="anon"`,
so no credential lookup leaves the machine.

NOTE: the tests use gcsfs's JSON API client (`gcsfs.core.GCSFileSystem`). gcsfs
2026.10 makes `gs://` use `ExtendedGcsFileSystem` by default, which first calls
the gRPC Storage Control API to get the bucket's layout (flat, hierarchical or
zonal). The emulator has no gRPC API, so that lookup times out after 60 s or
more on every operation before gcsfs falls back to the JSON API. The gRPC paths
are untested.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import socket
from collections.abc import Iterator
from http import HTTPStatus
from types import ModuleType

import fsspec
import pytest
from release_helpers import killed_store_build, store_build
from testsupport import in_ci

import corpusforge
from corpusforge.generators import objstore, store
from corpusforge.main import main


def _require(module: str) -> ModuleType:
    """Import a module of the dev extra: skip without it, or fail when CI=true."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        message = f"{module} is missing ({error}); install the dev extra: pip install -e '.[dev]'"
        if in_ci():
            pytest.fail(message + " (CI=true requires it)", pytrace=False)
        pytest.skip(message, allow_module_level=True)


gcsfs_core = _require("gcsfs.core")
emulator_server = _require("gcp_storage_emulator.server")
emulator_objects = _require("gcp_storage_emulator.handlers.objects")
emulator_settings = _require("gcp_storage_emulator.settings")
emulator_errors = _require("gcp_storage_emulator.exceptions")

SOURCES = ["synthetic_math:?count=20"]
ROWS = 20
GCS_PROTOCOLS = ("gs", "gcs")
# Objects moved with the JSON API's objects.move, as (source, destination) names.
MOVES: list[tuple[str, str]] = []


def _move_object(request, response, storage, *args, **kwargs) -> None:
    """Serve objects.move, which gcp-storage-emulator 2026.7.19 does not implement.

    gcsfs 2026.10's `mv` calls it first. On the emulator's 501 it tries 6 times,
    about 35 s in all, before it falls back to a copy and a delete. The emulator
    serves one request at a time, so the copy and the delete here are one atomic
    step. NOTE: this reuses the emulator's private `_copy`, which may change in
    another emulator version.
    """
    bucket = request.params["bucket_name"]
    source = request.params["object_id"]
    destination = request.params["dest_object_id"]
    try:
        moved = emulator_objects._copy(
            request.base_url, storage, bucket, source, bucket, destination
        )
    except emulator_errors.NotFound:
        response.status = HTTPStatus.NOT_FOUND
        return
    storage.delete_file(bucket, source)
    MOVES.append((source, destination))
    response.json(moved)


MOVE_ROUTE = (
    rf"^{emulator_settings.API_ENDPOINT}/b/(?P<bucket_name>[-.\w]+)/o/(?P<object_id>.*[^/]+)"
    rf"/moveTo/o/(?P<dest_object_id>.*[^/]+)$",
    {"POST": _move_object},
)


def gcs() -> fsspec.AbstractFileSystem:
    """Return the `gs://` filesystem that the library code gets, with the fixture's settings."""
    return fsspec.filesystem("gs")


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """Start the GCS emulator on a free port of 127.0.0.1 and point gcsfs at it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handlers = emulator_server.HANDLERS
    emulator_server.HANDLERS = (MOVE_ROUTE, *handlers)
    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)  # one line per request
    server = emulator_server.create_server("127.0.0.1", port, in_memory=True)
    server.start()
    url = f"http://127.0.0.1:{port}"

    saved_host = os.environ.get("STORAGE_EMULATOR_HOST")
    saved_config = {name: fsspec.config.conf.get(name) for name in GCS_PROTOCOLS}
    os.environ["STORAGE_EMULATOR_HOST"] = url
    for name in GCS_PROTOCOLS:
        fsspec.config.conf.pop(name, None)
        fsspec.register_implementation(name, gcsfs_core.GCSFileSystem, clobber=True)
    fsspec.config.conf["gs"] = {"token": "anon"}
    gcsfs_core.GCSFileSystem.clear_instance_cache()
    try:
        yield url
    finally:
        server.stop()
        emulator_server.HANDLERS = handlers
        if saved_host is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved_host
        for name, value in saved_config.items():
            fsspec.config.conf.pop(name, None)
            if value is not None:
                fsspec.config.conf[name] = value
        # `import gcsfs` picks the class that `gs://` uses by default.
        default = importlib.import_module("gcsfs").GCSFileSystem
        for name in GCS_PROTOCOLS:
            fsspec.register_implementation(name, default, clobber=True)
        gcsfs_core.GCSFileSystem.clear_instance_cache()


@pytest.fixture
def root(endpoint: str, request: pytest.FixtureRequest) -> str:
    """Return a fresh bucket URL for one test."""
    name = "t-" + request.node.name.lower().replace("_", "-").replace("[", "-").strip("]-")[:50]
    gcs().mkdir(name)
    MOVES.clear()
    return f"gs://{name}/out"


build = store_build
killed_build = killed_store_build


def read_object(url: str) -> bytes:
    fs = gcs()
    fs.invalidate_cache()
    return fs.cat_file(url)


def test_gcs_client_stays_local(root: str, endpoint: str):
    # The filesystem that the library opens for an output root talks only to the
    # emulator and skips the credential lookup, which can query a metadata server.
    fs = objstore.location(root).fs
    assert type(fs) is gcsfs_core.GCSFileSystem
    assert fs.credentials.method == "anon"
    assert fs._location == endpoint


def test_gcs_publish_and_read(root: str, endpoint: str):
    published = build(root, "r1", seed=1)

    fs = gcs()
    pointer = json.loads(fs.cat_file(f"{root}/stephint/r1.json"))
    assert published.path == f"{root}/stephint/{pointer['path']}"
    assert pointer["release"] == "r1"
    assert pointer["num_rows"] == ROWS
    assert pointer["content_fingerprint"] == published.content_fingerprint
    assert fs.cat_file(f"{root}/stephint/LATEST") == b"r1\n"
    assert not fs.exists(f"{root}/stephint/.staging")
    assert not fs.exists(f"{root}/stephint/{pointer['path']}/parts")

    # Publishing renamed each part with one server-side objects.move call.
    manifest = store.load_manifest(store.release_dir(root, "stephint", "r1"))
    moved_to = sorted(destination.rsplit("/", 1)[-1] for _, destination in MOVES)
    shard_names = sorted(shard["path"].rsplit("/", 1)[-1] for shard in manifest["shards"])
    assert moved_to == shard_names

    releases = store.list_releases(root, "stephint")
    assert [(info.release, info.latest, info.num_rows) for info in releases] == [("r1", True, ROWS)]
    folder = store.release_dir(root, "stephint", None)
    assert str(folder) == published.path
    assert store.verify_release(folder) == []

    table = corpusforge.load("r1", "chains", "train", dataset="stephint", output_root=root)
    assert table.num_rows == ROWS

    urls = [f"{published.path}/{shard['path']}" for shard in manifest["shards"]]
    card = fs.cat_file(f"{published.path}/README.md").decode()
    for url in urls:
        assert url in card

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    options = {"token": "anon", "endpoint_url": endpoint}
    frame = pd.concat(pd.read_parquet(url, storage_options=options) for url in urls)
    assert len(frame) == ROWS
    assert frame["id"].nunique() == ROWS

    from_arrow = pa.concat_tables(pq.read_table(url, filesystem=fs) for url in urls)
    assert from_arrow.num_rows == ROWS
    assert sorted(from_arrow.column("id").to_pylist()) == sorted(frame["id"])
    assert from_arrow.sort_by("id").equals(table.sort_by("id"))


def test_gcs_rerun_replaces_release(root: str):
    first = build(root, "r1", seed=1)
    first_pointer = json.loads(read_object(f"{root}/stephint/r1.json"))

    rerun = build(root, "r1", seed=2)

    pointer = json.loads(read_object(f"{root}/stephint/r1.json"))
    assert pointer["attempt"] != first_pointer["attempt"]
    assert pointer["content_fingerprint"] == rerun.content_fingerprint
    assert rerun.content_fingerprint != first.content_fingerprint
    assert rerun.path != first.path
    assert read_object(f"{root}/stephint/LATEST") == b"r1\n"

    # The old attempt folder is gone whole, and only the new one is left.
    fs = gcs()
    fs.invalidate_cache()
    assert fs.find(first.path) == []
    attempts = fs.ls(f"{root}/stephint/.releases")
    assert [path.rsplit("/", 1)[-1] for path in attempts] == [pointer["attempt"]]

    folder = store.release_dir(root, "stephint", "r1")
    assert str(folder) == rerun.path
    assert store.verify_release(folder) == []
    assert store.load_manifest(folder)["content_fingerprint"] == rerun.content_fingerprint
    releases = store.list_releases(root, "stephint")
    assert [(info.release, info.latest, info.num_rows) for info in releases] == [("r1", True, ROWS)]


def test_gcs_verify_catches_modified_shard(root: str, capsys: pytest.CaptureFixture):
    published = build(root, "r1", seed=1)
    fs = gcs()
    shard = f"{published.path}/data/chains/train-00000-of-00002.parquet"
    data = bytearray(fs.cat_file(shard))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(shard, bytes(data))
    fs.pipe_file(f"{published.path}/data/chains/extra.parquet", b"PAR1")

    problems = store.verify_release(store.release_dir(root, "stephint", "r1"))
    assert any("train-00000-of-00002.parquet: sha256" in problem for problem in problems)
    assert any("extra.parquet: not listed" in problem for problem in problems)

    assert main(["verify", "stephint", "r1", "--output-root", root]) == 1
    assert "FAILED data/chains/train-00000-of-00002.parquet" in capsys.readouterr().out


@pytest.mark.parametrize("kill_at", ["before_move_parts", "before_switch"])
def test_gcs_kill_keeps_previous(root: str, kill_at: str):
    first = build(root, "r1", seed=1)
    pointer = read_object(f"{root}/stephint/r1.json")

    assert killed_build(root, "r1", seed=2, kill_at=kill_at) == -signal.SIGKILL

    assert read_object(f"{root}/stephint/r1.json") == pointer
    assert read_object(f"{root}/stephint/LATEST") == b"r1\n"
    folder = store.release_dir(root, "stephint", "r1")
    assert str(folder) == first.path
    assert store.verify_release(folder) == []
    assert [info.release for info in store.list_releases(root, "stephint")] == ["r1"]
