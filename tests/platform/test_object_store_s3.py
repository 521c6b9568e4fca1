"""Publishing to S3 through pointer files, against moto's S3 server on 127.0.0.1.

The server runs in this process (moto's ThreadedMotoServer on a free port), and
s3fs reaches it through the standard `AWS_ENDPOINT_URL_S3` variable, so the
library code runs unchanged. Crash tests fork a child that SIGKILLs itself at
a crash point of `CORPUSFORGE_KILL_AT`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import socket
from collections.abc import Iterator

import pytest
from release_helpers import killed_store_build, store_build
from upath import UPath

import corpusforge
from corpusforge.generators import store
from corpusforge.generators.errors import ValidationFailed
from corpusforge.generators.pipeline import local_staging
from corpusforge.generators.retention import prune
from corpusforge.main import main

s3fs = pytest.importorskip("s3fs", reason="s3fs is in the dev extra")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")

SOURCES = ["synthetic_math:?count=20"]
ROWS = 20
KILL_POINTS = [
    "mid_shard",
    "after_part_upload",
    "before_move_parts",
    "before_rename_staging",
    "before_switch",
]
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """Start moto's S3 server on a free port of 127.0.0.1 and point s3fs at it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server.start()
    url = f"http://127.0.0.1:{port}"
    saved = {name: os.environ.get(name) for name in [*AWS_ENV, "AWS_ENDPOINT_URL_S3"]}
    os.environ.update(AWS_ENV, AWS_ENDPOINT_URL_S3=url)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield url
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def root(endpoint: str, request: pytest.FixtureRequest) -> str:
    """Return a fresh bucket URL for one test."""
    name = "t-" + request.node.name.lower().replace("_", "-").replace("[", "-").strip("]-")[:50]
    fs = s3fs.S3FileSystem()
    fs.mkdir(name)
    return f"s3://{name}/out"


def _clear_s3_clients() -> None:
    s3fs.S3FileSystem.clear_instance_cache()


build = store_build


def killed_build(root: str, release: str, seed: int, kill_at: str) -> int | None:
    return killed_store_build(root, release, seed, kill_at, prepare=_clear_s3_clients)


def read_object(url: str) -> bytes:
    s3fs.S3FileSystem.clear_instance_cache()
    return s3fs.S3FileSystem().cat_file(url)


def snapshot(root: str, release: str) -> tuple[dict, str]:
    pointer = json.loads(read_object(f"{root}/stephint/{release}.json"))
    manifest = store.load_manifest(store.release_dir(root, "stephint", release))
    return pointer, manifest["content_fingerprint"]


def test_s3_publish_and_read(root: str, endpoint: str):
    published = build(root, "r1", seed=1)

    fs = s3fs.S3FileSystem()
    pointer = json.loads(fs.cat_file(f"{root}/stephint/r1.json"))
    assert published.path == f"{root}/stephint/{pointer['path']}"
    assert pointer["content_fingerprint"] == published.content_fingerprint
    assert fs.cat_file(f"{root}/stephint/LATEST") == b"r1\n"
    assert not fs.exists(f"{root}/stephint/.staging")
    assert not fs.exists(f"{root}/stephint/{pointer['path']}/parts")

    releases = store.list_releases(root, "stephint")
    assert [(info.release, info.latest, info.num_rows) for info in releases] == [("r1", True, ROWS)]
    folder = store.release_dir(root, "stephint", None)
    assert str(folder) == published.path
    assert store.verify_release(folder) == []

    table = corpusforge.load("r1", "chains", "train", dataset="stephint", output_root=root)
    assert table.num_rows == ROWS
    assert corpusforge.load(published.path, "chains", "train").num_rows == ROWS

    manifest = store.load_manifest(folder)
    urls = [f"{published.path}/{shard['path']}" for shard in manifest["shards"]]
    card = fs.cat_file(f"{published.path}/README.md").decode()
    for url in urls:
        assert url in card
    assert f"{published.path}/data/chains/train-*.parquet" in card

    import pandas as pd

    options = {"client_kwargs": {"endpoint_url": endpoint}}
    frame = pd.concat(pd.read_parquet(url, storage_options=options) for url in urls)
    assert len(frame) == ROWS

    import duckdb

    connection = duckdb.connect()
    connection.register_filesystem(s3fs.S3FileSystem())
    count = connection.sql(f"SELECT count(*) FROM '{published.path}/data/chains/*.parquet'")
    assert count.fetchall() == [(ROWS,)]


def test_s3_datasets_reads_card_files(root: str, endpoint: str, monkeypatch):
    # The packaged `parquet` builder resolves locally; only the data files are read from S3.
    import datasets.config
    from datasets import load_dataset

    # Other tests set HF_DATASETS_OFFLINE before `datasets` is first imported, and
    # `datasets` then blocks every remote URL for the rest of the process, s3:// too.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)

    from corpusforge.loading import card_configs

    published = build(root, "r1", seed=1)
    # The card's front matter lists files relative to the attempt folder it sits in.
    (config,) = card_configs(store.release_dir(root, "stephint", "r1"))
    data_files = {
        entry["split"]: f"{published.path}/{entry['path']}" for entry in config["data_files"]
    }
    options = {"client_kwargs": {"endpoint_url": endpoint}}
    dataset = load_dataset("parquet", data_files=data_files, storage_options=options)
    assert dataset["train"].num_rows == ROWS


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_s3_kill_keeps_previous(root: str, kill_at: str):
    build(root, "r1", seed=1)
    before = snapshot(root, "r1")

    assert killed_build(root, "r1", seed=2, kill_at=kill_at) == -signal.SIGKILL

    assert snapshot(root, "r1") == before
    assert store.verify_release(store.release_dir(root, "stephint", "r1")) == []
    assert read_object(f"{root}/stephint/LATEST") == b"r1\n"
    assert [info.release for info in store.list_releases(root, "stephint")] == ["r1"]

    # A rerun after the crash replaces the release whole and removes the old attempt.
    rerun = build(root, "r1", seed=2)
    assert rerun.content_fingerprint != before[1]
    folder = store.release_dir(root, "stephint", "r1")
    assert store.verify_release(folder) == []
    assert store.load_manifest(folder)["num_rows"] == ROWS
    fs = s3fs.S3FileSystem()
    assert not fs.exists(f"{root}/stephint/{before[0]['path']}/manifest.json")


def test_s3_killed_shard_not_done(root: str):
    from corpusforge.data_contracts import validate_staging

    assert killed_build(root, "r1", seed=1, kill_at="mid_shard") == -signal.SIGKILL
    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    (attempt,) = fs.ls(f"{root}/stephint/.releases")
    # Only the plan is there: plan.json and the planned units of each shard.
    found = fs.find(attempt)
    assert [path for path in found if "/parts/units-" not in path] == [f"{attempt}/plan.json"]

    assert killed_build(root, "r2", seed=1, kill_at="after_part_upload") == -signal.SIGKILL
    staging = next(
        UPath(f"s3://{path}")
        for path in fs.ls(f"{root}/stephint/.releases", refresh=True)
        if path.rsplit("/", 1)[-1].startswith("r2.")
    )
    names = sorted(path.rsplit("/", 1)[-1] for path in fs.find(str(staging.path)))
    assert [name for name in names if not name.startswith("units-")] == [
        "plan.json",
        "shard-00000.parquet",
    ]
    with pytest.raises(ValidationFailed), local_staging(staging) as local:
        validate_staging(local)
    assert store.list_releases(root, "stephint") == []


def test_s3_kill_before_latest(root: str):
    build(root, "r1", seed=1)
    assert killed_build(root, "r2", seed=2, kill_at="before_latest") == -signal.SIGKILL

    # The pointer of r2 is written, so r2 is complete, but LATEST moves last.
    assert read_object(f"{root}/stephint/LATEST") == b"r1\n"
    assert store.verify_release(store.release_dir(root, "stephint", "r2")) == []
    assert store.verify_release(store.release_dir(root, "stephint", "r1")) == []


def test_s3_latest_moves_forward_only(root: str):
    from corpusforge.generators.pipeline import RunInfo

    def run(date: str) -> RunInfo:
        return RunInfo(run_id=f"run-{date}", logical_date=f"{date}T00:00:00+00:00")

    assert build(root, "2026-03-01", run=run("2026-03-01")).latest
    older = build(root, "2026-02-01", run=run("2026-02-01"))
    assert not older.latest
    assert read_object(f"{root}/stephint/LATEST") == b"2026-03-01\n"

    # Republishing the newest key keeps LATEST on it.
    assert build(root, "2026-03-01", seed=5, run=run("2026-03-01")).latest
    names = [info.release for info in store.list_releases(root, "stephint")]
    assert names == ["2026-02-01", "2026-03-01"]


def test_s3_verify_catches_modified_shard(root: str, capsys: pytest.CaptureFixture):
    published = build(root, "r1", seed=1)
    fs = s3fs.S3FileSystem()
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


def test_s3_prune_keeps_latest(root: str):
    from corpusforge.generators.pipeline import RunInfo

    paths = {}
    for day in ("01", "02", "03"):
        run = RunInfo(run_id=f"run-{day}", logical_date=f"2026-01-{day}T00:00:00+00:00")
        paths[day] = build(root, f"2026-01-{day}", run=run).path
    assert killed_build(root, "r9", seed=9, kill_at="before_switch") == -signal.SIGKILL

    dry = prune(root, "stephint", keep=1, max_age=dt.timedelta(0), dry_run=True)
    assert dry.removed_releases == ["2026-01-01", "2026-01-02"]
    assert len(dry.removed_attempts) == 1
    assert len(store.list_releases(root, "stephint")) == 3

    result = prune(root, "stephint", keep=1, max_age=dt.timedelta(0))
    assert result.kept == ["2026-01-03"]
    assert result.removed_releases == ["2026-01-01", "2026-01-02"]
    assert result.removed_attempts == dry.removed_attempts
    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    attempts = fs.ls(f"{root}/stephint/.releases")
    assert [path.rsplit("/", 1)[-1] for path in attempts] == [paths["03"].rsplit("/", 1)[-1]]
    assert [info.release for info in store.list_releases(root, "stephint")] == ["2026-01-03"]


def test_s3_cli_build_and_read(root: str, tmp_path, capsys: pytest.CaptureFixture):
    argv = ["--output-root", root]
    assert (
        main(
            [
                "build",
                "stephint",
                "--release",
                "c1",
                "--shard-size",
                "10",
                *argv,
                "--source",
                "synthetic_math:?count=20",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["num_rows"] == ROWS

    assert main(["releases", "stephint", *argv]) == 0
    assert "(LATEST)" in capsys.readouterr().out
    assert main(["show", "stephint", *argv]) == 0
    show_output = capsys.readouterr().out
    assert f"at {root}/stephint/.releases/c1." in show_output
    assert "contract results: passed" in show_output
    assert main(["verify", "stephint", "c1", *argv]) == 0
    assert "OK 2 shards" in capsys.readouterr().out

    out = tmp_path / "verl"
    assert main(["export", "stephint", "c1", "--format", "verl", "--out", str(out), *argv]) == 0
    assert (out / "train.parquet").is_file()


def _card_python_block(card: str) -> str:
    """Return the first Python code block of the card's Loading section."""
    loading = card.split("## Loading", 1)[1]
    return loading.split("```python\n", 1)[1].split("```", 1)[0]


def test_s3_polars_reads_card_files(root: str, endpoint: str):
    pl = pytest.importorskip("polars")
    import pyarrow as pa
    import pyarrow.parquet as pq

    build(root, "r1", seed=1)
    fs = s3fs.S3FileSystem()

    # A reader without corpusforge follows LATEST, then the release's pointer file,
    # to the attempt folder, and copies the loading code from the card there.
    latest = fs.cat_file(f"{root}/stephint/LATEST").decode().strip()
    pointer = json.loads(fs.cat_file(f"{root}/stephint/{latest}.json"))
    folder = f"{root}/stephint/{pointer['path']}"
    code = _card_python_block(fs.cat_file(f"{folder}/README.md").decode())
    assert "import polars as pl" in code
    files_code = code[code.index("\nfiles = ") : code.index("df = pd.concat")]
    polars_code = code[code.index("import polars as pl") :]

    # Polars reads S3 with its own client (the Rust object_store crate), not s3fs, so
    # its storage_options take object_store keys instead of s3fs's client_kwargs.
    options = {
        "aws_endpoint_url": endpoint,
        "aws_allow_http": "true",
        "aws_region": AWS_ENV["AWS_DEFAULT_REGION"],
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    }
    namespace: dict = {}
    exec(files_code, namespace)
    files = namespace["files"]
    assert files == [f"{folder}/data/chains/train-0000{i}-of-00002.parquet" for i in range(2)]
    exec(
        polars_code.replace("storage_options={}", "storage_options=options"),
        {"options": options, "files": files},
        namespace,
    )
    from_card = namespace["lf"].collect()

    expected = pa.concat_tables(pq.read_table(url, filesystem=fs) for url in files)
    assert from_card.height == ROWS
    assert from_card.columns == expected.column_names
    assert from_card.sort("id").to_dicts() == expected.sort_by("id").to_pylist()

    # The card's front matter gives a glob per split, relative to the attempt folder.
    glob = f"{folder}/data/chains/train-*.parquet"
    scanned = pl.scan_parquet(glob, storage_options=options).collect()
    assert scanned.sort("id").equals(from_card.sort("id"))
    eager = pl.read_parquet(files, storage_options=options)
    assert eager.sort("id").equals(from_card.sort("id"))


def test_s3_polars_reads_endpoint_from_environment(root: str, endpoint: str):
    # The endpoint fixture sets only AWS_ENDPOINT_URL_S3 and the AWS_* keys, the
    # variables that the README's object storage section documents for s3fs.
    pl = pytest.importorskip("polars")

    published = build(root, "r1", seed=1)
    frame = pl.read_parquet(f"{published.path}/data/chains/*.parquet")
    assert frame.height == ROWS
    assert frame["id"].n_unique() == ROWS
