"""The `corpusforge` program on damaged releases, wrong output roots and unwritable outputs,
and the sizes in the dataset card's `dataset_info`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from release_helpers import build

from corpusforge.generators import card
from corpusforge.main import main

COMMANDS = ["releases", "show", "verify", "prune"]


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """Publish StepHint release `r1` once; return its output root."""
    root = tmp_path_factory.mktemp("release-problems")
    build(root, "r1", sources=["synthetic_math:?count=20"], shard_size=8)
    return root


@pytest.fixture
def root(published: Path, tmp_path: Path) -> Path:
    """Return a copy of the published output root that a test may change."""
    copy = tmp_path / "copy"
    shutil.copytree(published, copy, symlinks=True)
    return copy


def _run(capsys, *arguments: str) -> tuple[int, str, str]:
    code = main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _extra(command: str) -> list[str]:
    return ["--keep", "1"] if command == "prune" else []


def test_missing_manifest_in_linked_folder(root: Path, capsys):
    link = root / "stephint" / "r1"
    manifest = link / "manifest.json"
    manifest.unlink()
    expected = f"{manifest}: missing, so the release is damaged; build it again or remove it"

    verify, verify_out, _ = _run(capsys, "verify", "stephint", "r1", "--output-root", str(root))
    show, _, show_err = _run(capsys, "show", "stephint", "r1", "--output-root", str(root))
    releases, releases_out, _ = _run(capsys, "releases", "stephint", "--output-root", str(root))

    assert link.resolve().is_dir()
    assert verify == 1
    assert f"FAILED {expected}" in verify_out
    assert "which does not exist" not in verify_out
    assert show == 1
    assert f"error: {expected}" in show_err
    assert releases == 1
    assert expected in releases_out


def test_missing_attempt_folder_names_link(root: Path, capsys):
    link = root / "stephint" / "r1"
    shutil.rmtree(link.resolve())

    show, _, show_err = _run(capsys, "show", "stephint", "--output-root", str(root))

    assert show == 1
    assert f"the link {link} points to" in show_err
    assert "which does not exist" in show_err


@pytest.mark.parametrize("command", COMMANDS)
def test_output_root_is_file(tmp_path: Path, capsys, command):
    file = tmp_path / "README.md"
    file.write_text("# not a root\n")

    code, _, error = _run(capsys, command, "stephint", *_extra(command), "--output-root", str(file))

    assert code == 2
    assert f"output root {file} is a file, not a folder" in error
    assert "does not exist" not in error


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("value", ["", "  "])
def test_output_root_empty(tmp_path: Path, capsys, monkeypatch, command, value):
    monkeypatch.chdir(tmp_path)

    code, _, error = _run(capsys, command, "stephint", *_extra(command), "--output-root", value)

    assert code == 2
    assert "the output root is empty" in error
    assert "LATEST" not in error
    assert not (tmp_path / "stephint").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_dataset_folder_as_root(root: Path, capsys, command):
    dataset_dir = root / "stephint"

    code, _, error = _run(
        capsys, command, "stephint", *_extra(command), "--output-root", str(dataset_dir)
    )

    assert code == 2
    assert f"output root {dataset_dir} looks like a dataset folder" in error
    assert "because it contains LATEST and .releases" in error
    assert f"pass its parent {root} as --output-root" in error
    assert not (dataset_dir / "stephint").exists()


def test_dataset_folder_with_only_staging(tmp_path: Path, capsys):
    (tmp_path / "stephint" / ".staging").mkdir(parents=True)
    dataset_dir = tmp_path / "stephint"

    code, _, error = _run(capsys, "show", "stephint", "--output-root", str(dataset_dir))

    assert code == 2
    assert "because it contains .staging;" in error


def test_root_with_dataset_folder_accepted(root: Path, capsys):
    # A root that contains the dataset folder is a root, even with a LATEST of its own.
    (root / "LATEST").write_text("other\n")

    code, out, _ = _run(capsys, "releases", "stephint", "--output-root", str(root))

    assert code == 0
    assert "r1" in out


@pytest.mark.parametrize("out", ["/proc/nope", "/proc/nope/deeper"])
def test_export_out_not_creatable(root: Path, capsys, out):
    if not Path("/proc").is_dir():
        pytest.skip("needs /proc, where creating a folder fails")

    code, _, error = _run(
        capsys,
        "export",
        "stephint",
        "r1",
        "--format",
        "verl",
        "--out",
        out,
        "--output-root",
        str(root),
    )

    assert code == 2
    assert f"--out {out}: cannot create the folder" in error
    assert "give a folder that you can write to" in error
    assert "FileNotFoundError" not in error


def test_export_out_below_file(root: Path, tmp_path: Path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("keep")
    out = blocker / "sub" / "verl"

    code, _, error = _run(
        capsys,
        "export",
        "stephint",
        "--format",
        "verl",
        "--out",
        str(out),
        "--output-root",
        str(root),
    )

    assert code == 2
    assert f"--out {out}: {blocker} is a file, not a folder" in error
    assert blocker.read_text() == "keep"


def test_export_unknown_release_creates_nothing(root: Path, tmp_path: Path, capsys):
    out = tmp_path / "new" / "verl"

    code, _, error = _run(
        capsys,
        "export",
        "stephint",
        "nope",
        "--format",
        "verl",
        "--out",
        str(out),
        "--output-root",
        str(root),
    )

    assert code == 2
    assert "release 'nope' not found" in error
    assert not (tmp_path / "new").exists()


def test_export_into_new_nested_folder(root: Path, tmp_path: Path, capsys):
    out = tmp_path / "a" / "b" / "verl"

    code, _, _ = _run(
        capsys,
        "export",
        "stephint",
        "--format",
        "verl",
        "--out",
        str(out),
        "--output-root",
        str(root),
    )

    assert code == 0
    assert sorted(path.name for path in out.glob("*.parquet"))


@pytest.mark.parametrize("content", ["", " \n\n"])
@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_score_empty_predictions(tmp_path: Path, capsys, content, suffix):
    predictions = tmp_path / f"predictions{suffix}"
    predictions.write_text(content)

    code, _, error = _run(
        capsys,
        "score",
        "mllmu_med",
        "--predictions",
        str(predictions),
        "--output-root",
        str(tmp_path),
    )

    assert code == 2
    assert f"predictions file {predictions} is empty" in error
    assert "invalid JSON" not in error


def test_score_report_in_missing_folder(tmp_path: Path, capsys):
    predictions = tmp_path / "predictions.json"
    predictions.write_text('{"id-1": "yes"}\n')
    report = tmp_path / "missing" / "report.json"

    code, _, error = _run(
        capsys,
        "score",
        "mllmu_med",
        "--predictions",
        str(predictions),
        "--out",
        str(report),
        "--output-root",
        str(tmp_path),
    )

    assert code == 2
    assert f"the folder {report.parent} does not exist" in error


def test_latest_names_missing_release(root: Path, capsys):
    latest = root / "stephint" / "LATEST"
    latest.write_text("gone\n")
    expected = f"{latest} names release 'gone', which is not published (published: r1)"

    show, _, show_err = _run(capsys, "show", "stephint", "--output-root", str(root))
    named, _, named_err = _run(capsys, "show", "stephint", "gone", "--output-root", str(root))
    verify, verify_out, _ = _run(capsys, "verify", "stephint", "--output-root", str(root))
    releases, releases_out, _ = _run(capsys, "releases", "stephint", "--output-root", str(root))

    assert show == 1
    assert expected in show_err
    assert f"write the name of a published release into {latest}" in show_err
    assert named == 1
    assert expected in named_err
    assert verify == 1
    assert f"FAILED {expected}" in verify_out
    assert releases == 1
    assert f"LATEST                           FAILED {expected}" in releases_out
    assert "r1                                       20" in releases_out


def test_latest_missing_without_releases(tmp_path: Path, capsys):
    (tmp_path / "stephint").mkdir()
    (tmp_path / "stephint" / "LATEST").write_text("gone\n")

    code, out, _ = _run(capsys, "releases", "stephint", "--output-root", str(tmp_path))

    assert code == 1
    assert "no releases of stephint" in out
    assert "names release 'gone', which is not published (published: none)" in out


def test_unknown_release_still_bad_input(root: Path, capsys):
    code, _, error = _run(capsys, "show", "stephint", "nope", "--output-root", str(root))

    assert code == 2
    assert "release 'nope' not found" in error
    assert "LATEST" not in error


def test_store_without_credentials_hint(tmp_path: Path):
    pytest.importorskip("s3fs", reason="s3fs is in the dev extra")
    # No credentials anywhere, the instance metadata service off, and every endpoint on
    # 127.0.0.1, so botocore raises NoCredentialsError before it sends a request.
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        AWS_ENDPOINT_URL_S3="http://127.0.0.1:9",
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_MAX_ATTEMPTS="1",
        HOME=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "-m", "corpusforge", "releases", "stephint"]
        + ["--output-root", "s3://bucket/x"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert "error: NoCredentialsError" in result.stderr
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in result.stderr
    assert '"Object storage" in the README' in result.stderr
    assert "Traceback" not in result.stderr


def test_credentials_hint_only_for_credentials(capsys, tmp_path: Path, monkeypatch):
    from corpusforge.generators import store

    def raise_connection_error(*_args, **_kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(store, "list_releases", raise_connection_error)

    code, _, error = _run(capsys, "releases", "stephint", "--output-root", str(tmp_path))

    assert code == 1
    assert "error: OSError: connection refused" in error
    assert "AWS_ACCESS_KEY_ID" not in error


def _front_matter(release: Path) -> dict:
    text = (release / "README.md").read_text(encoding="utf-8")
    header, _, _ = text.removeprefix("---\n").partition("\n---\n")
    return yaml.safe_load(header)


def test_card_sizes_follow_hugging_face(published: Path):
    release = published / "stephint" / "r1"
    infos = _front_matter(release)["dataset_info"]

    assert infos
    for info in infos:
        config = info["config_name"]
        files = sorted((release / "data" / config).glob("*.parquet"))
        assert info["download_size"] == sum(file.stat().st_size for file in files)
        assert info["dataset_size"] == sum(split["num_bytes"] for split in info["splits"])
        for split in info["splits"]:
            split_files = [file for file in files if file.name.startswith(f"{split['name']}-")]
            compressed = sum(file.stat().st_size for file in split_files)
            in_memory = sum(pq.read_table(file).nbytes for file in split_files)
            assert split["num_bytes"] != compressed
            # Batches of 256 rows add at most a few offset entries to the whole table's size.
            assert abs(split["num_bytes"] - in_memory) <= 0.01 * in_memory


def test_card_size_of_repeated_values(tmp_path: Path):
    # Parquet stores these 100 equal 10 kB values once, in a dictionary page.
    shard = tmp_path / "repeated.parquet"
    pq.write_table(pa.table({"image": [b"x" * 10_000] * 100}), shard)
    footer = pq.read_metadata(shard).row_group(0).total_byte_size

    size = card._arrow_bytes(shard)

    assert size == pa.table({"image": [b"x" * 10_000] * 100}).nbytes
    assert size > 10 * footer


def test_card_loads_with_datasets(published: Path, tmp_path: Path):
    datasets = pytest.importorskip("datasets")
    release = published / "stephint" / "r1"
    info = _front_matter(release)["dataset_info"][0]

    loaded = datasets.load_dataset(
        str(release), info["config_name"], cache_dir=str(tmp_path / "cache")
    )

    for split in info["splits"]:
        name = split["name"]
        assert loaded[name].num_rows == split["num_examples"]
        # `datasets` measures the split again as it writes its Arrow cache.
        assert loaded[name].info.splits[name].num_bytes == split["num_bytes"]


def _build(capsys, output_root: str) -> tuple[int, str, str]:
    source = "synthetic_math:?count=5"
    return _run(
        capsys, "build", "stephint", "--release", "b1", "--source", source,
        "--output-root", output_root,
    )  # fmt: skip


@pytest.mark.parametrize("value", ["", "  "])
def test_build_rejects_empty_output_root(tmp_path: Path, capsys, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    code, _, error = _build(capsys, value)
    assert code == 2
    assert "the output root is empty" in error
    assert "to publish under" in error
    assert list(tmp_path.iterdir()) == []


def test_build_rejects_file_as_output_root(tmp_path: Path, capsys):
    target = tmp_path / "afile"
    target.write_text("x")
    code, _, error = _build(capsys, str(target))
    assert code == 2
    assert f"output root {target} is a file, not a folder" in error
    assert "NotADirectoryError" not in error


def test_build_rejects_dataset_folder_as_output_root(root: Path, capsys):
    dataset_folder = root / "stephint"
    code, _, error = _build(capsys, str(dataset_folder))
    assert code == 2
    assert f"pass its parent {dataset_folder.absolute().parent} as --output-root" in error
    assert not (dataset_folder / "stephint").exists()


def test_build_creates_a_missing_output_root(tmp_path: Path, capsys):
    code, _, _ = _build(capsys, str(tmp_path / "new" / "root"))
    assert code == 0
    assert (tmp_path / "new" / "root" / "stephint" / "b1" / "manifest.json").is_file()
