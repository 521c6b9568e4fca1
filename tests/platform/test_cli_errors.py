"""The `corpusforge` program on bad options, empty releases and damaged releases."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from corpusforge.generators.errors import ConfigError, ValidationFailed
from corpusforge.loading import data_files
from corpusforge.main import main

CLI = [sys.executable, "-m", "corpusforge"]
DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """Publish release `good` with the CLI in a subprocess; return the root and the process."""
    root = tmp_path_factory.mktemp("cli-errors")
    result = subprocess.run(
        [*CLI, "build", "stephint", "--release", "good", "--seed", "3"]
        + ["--source", "synthetic_math:?count=4", "--output-root", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return root, result


@pytest.fixture
def root(built, tmp_path: Path) -> Path:
    """Return a copy of the published output root that a test may change."""
    copy = tmp_path / "copy"
    shutil.copytree(built[0], copy, symlinks=True)
    return copy


def _build(root: Path, *arguments: str, dataset: str = "stephint") -> int:
    return main(["build", dataset, "--release", "bad", *arguments, "--output-root", str(root)])


def test_build_logs_no_gx_info(built):
    stderr = built[1].stderr

    assert "Skipping registering function" not in stderr
    assert "great_expectations" not in stderr
    assert "[]" not in stderr.splitlines()
    assert "published stephint release good" in stderr


@pytest.mark.parametrize(
    ("source", "mapping"),
    [
        ("gsm8k", ""),
        ("jsonl", "?problem_field=nope&answer_field=a&solution_field=a"),
    ],
)
def test_all_quarantined_not_published(root: Path, tmp_path: Path, capsys, source, mapping):
    data = tmp_path / "qa.jsonl"
    data.write_text('{"q": "1 + 1?", "a": "#### 2"}\n{"q": "2 + 2?", "a": "#### 4"}\n')

    code = _build(root, "--source", f"{source}:{data}{mapping}")
    error = capsys.readouterr().err

    assert code == 2
    assert "has no rows, so it is not published" in error
    assert "missing_field 2" in error
    assert "problem_field" in error
    assert not (root / "stephint" / "bad").exists()
    assert (root / "stephint" / "LATEST").read_text().strip() == "good"


def test_empty_split_still_published(root: Path, tmp_path: Path, capsys):
    data = tmp_path / "qa.jsonl"
    data.write_text('{"q": "1 + 1?", "a": "#### 2"}\n')

    code = _build(
        root, "--source", "synthetic_math:?count=2", "--source", f"gsm8k:{data}?split=test"
    )
    manifest = json.loads((root / "stephint" / "bad" / "manifest.json").read_text())
    card = (root / "stephint" / "bad" / "README.md").read_text()

    assert code == 0
    assert manifest["num_rows"] == 2
    assert manifest["empty_splits"] == [{"config": "chains", "split": "test"}]
    assert "| chains | test | 0 (left out of the configs) |" in card
    assert (root / "stephint" / "LATEST").read_text().strip() == "bad"


@pytest.mark.parametrize(
    ("dataset", "arguments", "expected"),
    [
        ("stephint", ["--option", "min_step_chars=abc"], "invalid option min_step_chars='abc'"),
        ("stephint", ["--option", "min_step_chars=-5"], "invalid option min_step_chars=-5"),
        ("stephint", ["--option", "max_steps=abc"], "invalid option max_steps='abc'"),
        ("stephint", ["--option", "max_steps=1.5"], "invalid option max_steps=1.5"),
        (
            "stephint",
            ["--source", "synthetic_math:?count=abc"],
            "invalid count 'abc' in source 'synthetic_math:?count=abc'",
        ),
        (
            "stephint",
            ["--source", "synthetic_math:?count=0"],
            "invalid count 0 in source 'synthetic_math:?count=0'",
        ),
        (
            "mllmu_med",
            ["--source", "phantom:?patients=abc"],
            "invalid patients 'abc' in source 'phantom:?patients=abc'",
        ),
    ],
)
def test_bad_integer_option_exits_2(tmp_path: Path, capsys, dataset, arguments, expected):
    code = _build(tmp_path, *arguments, dataset=dataset)
    error = capsys.readouterr().err

    assert code == 2
    assert expected in error
    assert "use an integer of" in error
    assert not list(tmp_path.glob(f"{dataset}/.staging/*"))


STEPHINT_FORMATS = ["gsm8k", "math", "longcot", "jsonl", "parquet", "synthetic_math", "teacher"]
MLLMU_MED_FORMATS = [
    "vqa_rad",
    "image_qa",
    "medqa",
    "pubmedqa",
    "phantom",
    "embedded_dicom",
    "facts",
]


@pytest.mark.parametrize(
    ("dataset", "fmt"),
    [("stephint", fmt) for fmt in STEPHINT_FORMATS]
    + [("mllmu_med", fmt) for fmt in MLLMU_MED_FORMATS],
)
def test_unknown_source_option(tmp_path: Path, capsys, dataset, fmt):
    code = _build(tmp_path, "--source", f"{fmt}:data.jsonl?splt=test", dataset=dataset)
    error = capsys.readouterr().err

    assert code == 2
    assert f"unknown option(s) ['splt'] in source '{fmt}:data.jsonl?splt=test'" in error
    assert f"{fmt} takes:" in error


def test_split_is_known_option(tmp_path: Path, capsys):
    code = _build(tmp_path, "--source", "synthetic_math:?count=2&split=test&bogus=1")

    assert code == 2
    assert "unknown option(s) ['bogus']" in capsys.readouterr().err


def test_config_error_fails_task_at_once():
    pytest.importorskip("airflow")
    sys.path.insert(0, str(DAGS))
    try:
        from _factory import _permanent
    finally:
        sys.path.remove(str(DAGS))
    from airflow.sdk.exceptions import AirflowFailException

    for error in (ConfigError("invalid count"), ValidationFailed("release has no rows")):
        wrapped = _permanent(error)

        assert isinstance(wrapped, AirflowFailException)
        assert str(error) in str(wrapped)


def test_verify_missing_attempt_folder(root: Path, capsys):
    link = root / "stephint" / "good"
    shutil.rmtree(link.resolve())

    verify = main(["verify", "stephint", "good", "--output-root", str(root)])
    verify_output = capsys.readouterr().out
    releases = main(["releases", "stephint", "--output-root", str(root)])
    releases_output = capsys.readouterr().out

    assert verify == 1
    assert f"FAILED {link}/manifest.json: missing" in verify_output
    assert releases == 1
    assert f"good                             FAILED {link}/manifest.json: missing" in (
        releases_output
    )
    assert "1 damaged release(s)" in releases_output


def test_verify_invalid_manifest_json(root: Path, capsys):
    manifest = root / "stephint" / "good" / "manifest.json"
    manifest.write_text("{bad")

    verify = main(["verify", "stephint", "--output-root", str(root)])
    verify_output = capsys.readouterr().out
    releases = main(["releases", "stephint", "--output-root", str(root)])
    releases_output = capsys.readouterr().out

    assert verify == 1
    assert f"FAILED {manifest}: invalid JSON" in verify_output
    assert releases == 1
    assert f"FAILED {manifest}: invalid JSON" in releases_output


def test_show_into_closed_pipe(built):
    process = subprocess.Popen(
        [*CLI, "show", "stephint", "--output-root", str(built[0])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Close the read end before the program writes, as `head` does once it has its lines.
    process.stdout.close()
    stderr = process.stderr.read()
    process.wait(timeout=120)

    assert process.returncode == 1
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr


def test_export_onto_file(root: Path, tmp_path: Path, capsys):
    target = tmp_path / "afile"
    target.write_text("keep")

    code = main(
        ["export", "stephint", "--format", "verl", "--out", str(target)]
        + ["--output-root", str(root)]
    )

    assert code == 2
    assert f"--out {target} is a file" in capsys.readouterr().err
    assert target.read_text() == "keep"


def test_workers_zero_rejected(tmp_path: Path, capsys):
    code = _build(tmp_path, "--workers", "0")

    assert code == 2
    assert "invalid --workers 0" in capsys.readouterr().err
    assert not (tmp_path / "stephint").exists()


@pytest.mark.parametrize("command", ["releases", "show", "verify", "prune"])
def test_missing_output_root(tmp_path: Path, capsys, command):
    missing = tmp_path / "nonexistent"
    extra = ["--keep", "1"] if command == "prune" else []

    code = main([command, "stephint", *extra, "--output-root", str(missing)])

    assert code == 2
    assert f"output root {missing} does not exist" in capsys.readouterr().err
    assert not missing.exists()


def test_load_never_lists_validation(root: Path):
    release = root / "stephint" / "good"
    (release / "README.md").unlink()

    files = data_files(release, "chains", "train")

    assert files
    assert all(file.relative_to(release).parts[0] == "data" for file in files)
    with pytest.raises(ConfigError, match="no files for validation/train"):
        data_files(release, "validation", "train")
    assert os.path.isdir(release / "validation")


def test_unreachable_store_one_line(tmp_path: Path):
    # Port 9 (discard) is closed on 127.0.0.1, so every S3 request is refused at once.
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "test-key-id",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_MAX_ATTEMPTS": "1",
    }
    command = [sys.executable, "-m", "corpusforge", "releases", "stephint"]
    result = subprocess.run(
        [*command, "--output-root", "s3://no-bucket/out"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error: EndpointConnectionError" in result.stderr
    assert "Run again with -v for the traceback" in result.stderr
    assert "test-secret" not in result.stderr
