"""The `corpusforge` program: build, releases, show, verify, export, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from corpusforge.main import main

CLI = [sys.executable, "-m", "corpusforge"]


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    code = main(
        [
            "build",
            "stephint",
            "--release",
            "c1",
            "--seed",
            "9",
            "--source",
            "synthetic_math:?count=30",
            "--shard-size",
            "10",
            "--output-root",
            str(root),
        ]
    )
    assert code == 0
    return root


def test_releases_and_show(published: Path, capsys):
    assert main(["releases", "stephint", "--output-root", str(published)]) == 0
    listing = capsys.readouterr().out
    assert "c1" in listing
    assert "(LATEST)" in listing

    assert main(["show", "stephint", "--output-root", str(published)]) == 0
    summary = capsys.readouterr().out
    assert "chains/train: 30 rows" in summary
    assert "contract results: passed" in summary
    assert "rules passed" in summary
    assert "quarantined: 0" in summary


def test_verify_passes_then_fails_on_modified_shard(published: Path, tmp_path: Path, capsys):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(published, root, symlinks=True)
    assert main(["verify", "stephint", "c1", "--output-root", str(root)]) == 0
    assert "OK 3 shards" in capsys.readouterr().out

    shard = next((root / "stephint" / "c1" / "data" / "chains").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    assert main(["verify", "stephint", "c1", "--output-root", str(root)]) == 1
    assert f"FAILED data/chains/{shard.name}" in capsys.readouterr().out


def test_export_verl(published: Path, tmp_path: Path, capsys):
    out = tmp_path / "verl"
    code = main(
        ["export", "stephint", "--format", "verl", "--out", str(out)]
        + ["--output-root", str(published)]
    )
    assert code == 0
    frame = pd.read_parquet(out / "train.parquet")
    assert set(frame.columns) >= {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    assert len(frame) > 30
    assert all(not info["answer_in_hint"] for info in frame["extra_info"])
    result = json.loads(capsys.readouterr().out)
    assert result["rows"]["train"] == len(frame)


def test_unknown_release_names_published_ones(published: Path, capsys):
    assert main(["show", "stephint", "nope", "--output-root", str(published)]) == 2
    error = capsys.readouterr().err
    assert "release 'nope' not found" in error
    assert "c1" in error


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b'{"question": "q", "answer": "#### 1"}\n{"question": \n', "line 2"),
        (b'{"question": "q\xff", "answer": "#### 1"}\n', "UTF-8"),
        (b"[1, 2]\n", "line 1"),
    ],
)
def test_structural_bad_input_exits_2_with_file_and_line(tmp_path: Path, content, expected):
    source = tmp_path / "bad.jsonl"
    source.write_bytes(content)
    result = subprocess.run(
        [*CLI, "build", "stephint", "--release", "b", "--source", f"gsm8k:{source}"]
        + ["--output-root", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(source) in result.stderr
    assert expected in result.stderr
    assert not (tmp_path / "out" / "stephint" / "b").exists()


def test_missing_source_file_and_unknown_format(tmp_path: Path, capsys):
    root = str(tmp_path / "out")
    code = main(["build", "stephint", "--source", "gsm8k:/no/such.jsonl", "--output-root", root])
    assert code == 2
    assert "not found" in capsys.readouterr().err

    code = main(["build", "stephint", "--source", "csv:x.csv", "--output-root", root])
    assert code == 2
    assert "known formats" in capsys.readouterr().err


def test_per_record_problems_are_quarantined_and_counted(tmp_path: Path):
    source = tmp_path / "mixed.jsonl"
    records = [
        {"question": "Ann has 2 apples and buys 3 more. How many?", "answer": "2+3=5\n#### 5"},
        {"question": "no answer here", "answer": "I am not sure."},
        {"question": "wrong", "answer": "1+1=2\n#### 2", "id": "x"},
        {"answer": "#### 3"},
        {"question": "Ann has 2 apples and buys 3 more. How many?", "answer": "2+3=5\n#### 5"},
        {"question": "\u00e9l\u00e8ve \u4f60\u597d: 10 + 5?", "answer": "10+5=15\n#### 15"},
    ]
    lines = [json.dumps(record) for record in records]
    lines.append('{"question": "bad \\ud800 surrogate", "answer": "#### 1"}')
    source.write_text("\n".join(lines) + "\n")
    math_source = tmp_path / "math.jsonl"
    math_records = [
        {"problem": "2+2?", "solution": "So $2+2=4$, giving $\\boxed{4}$.", "answer": "5"},
        {"problem": "3?", "solution": "It is $\\boxed{3$.", "answer": "3", "unique_id": "u1"},
        {"problem": "7?", "solution": "It is $\\boxed{7}$.", "answer": "7", "unique_id": "u2"},
        {"problem": "7?", "solution": "It is $\\boxed{7}$.", "answer": "7", "unique_id": "u2"},
        {"problem": "1/2?", "solution": "Half is $\\boxed{\\frac{1}{2}}$.", "answer": "0.5"},
    ]
    math_source.write_text("".join(json.dumps(record) + "\n" for record in math_records))
    root = tmp_path / "out"
    code = main(
        ["build", "stephint", "--release", "q", "--source", f"gsm8k:{source}?split=train"]
        + ["--source", f"math:{math_source}?split=train", "--output-root", str(root)]
    )
    assert code == 0
    manifest = json.loads((root / "stephint" / "q" / "manifest.json").read_text())
    reasons = manifest["quarantine"]["by_reason"]
    total = len(lines) + len(math_records)
    assert manifest["num_rows"] + manifest["quarantine"]["total"] == total
    assert reasons == {
        "answer_mismatch": 1,
        "duplicate_id": 1,
        "duplicate_record": 1,
        "empty_reference": 1,
        "invalid_unicode": 1,
        "missing_field": 1,
        "unbalanced_boxed": 1,
    }
    quarantined = [
        json.loads(line)
        for path in sorted((root / "stephint" / "q" / "quarantine").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    copies = [entry for entry in quarantined if entry["reason"] == "duplicate_record"]
    assert [(entry["line"], entry["detail"]) for entry in copies] == [
        (5, f"the same record as line 1 of {source.name}")
    ]
    frame = pd.read_parquet(root / "stephint" / "q" / "data" / "chains")
    assert any("\u4f60\u597d" in problem for problem in frame["problem"])
