"""Bad input: quarantined by reason, or stopped with the file and line when unusable."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from corpusforge.generators.base import Rejected, ResolvedSource
from corpusforge.generators.errors import SourceError
from corpusforge.generators.imaging import phantom
from corpusforge.generators.mllmu_med.sources import read_medqa, read_pubmedqa
from corpusforge.generators.pipeline import (
    BuildParams,
    RunInfo,
    generate_shard,
    load_plan,
    plan_release,
)


def _source(fmt: str, path: Path) -> ResolvedSource:
    return ResolvedSource(f"{fmt}:{path}", fmt, str(path), path.name, {}, "0" * 64)


def _write_lines(path: Path, lines: list) -> Path:
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


MEDQA_ROW = {
    "realidx": 1,
    "question": "Which drug reverses heparin?",
    "options": {"A": "protamine sulfate", "B": "vitamin K", "C": "naloxone", "D": "flumazenil"},
    "answer_idx": "A",
    "answer": "protamine sulfate",
}


def test_medqa_quarantines_per_record_problems(tmp_path: Path):
    rows = [
        MEDQA_ROW,
        {**MEDQA_ROW},
        {**MEDQA_ROW, "realidx": 2, "answer": "", "answer_idx": ""},
        {**MEDQA_ROW, "realidx": 3, "answer": "aspirin", "answer_idx": "Z"},
        {**MEDQA_ROW, "realidx": 4, "options": None},
        {**MEDQA_ROW, "realidx": 5, "question": "  "},
        {**MEDQA_ROW, "realidx": 6, "question": "Quel médicament? 心脏 🫀"},
    ]
    results = list(read_medqa(0, _source("medqa", _write_lines(tmp_path / "m.jsonl", rows))))
    reasons = Counter(item.reason for item in results if isinstance(item, Rejected))
    assert reasons == Counter(
        {
            "duplicate_id": 1,
            "empty_answer": 1,
            "invalid_answer": 1,
            "missing_field": 1,
            "empty_question": 1,
        }
    )
    kept = [item for item in results if not isinstance(item, Rejected)]
    assert [item.source_id for item in kept] == ["1", "6"]
    assert kept[1].question.endswith("🫀")


def test_pubmedqa_rejects_unknown_decision(tmp_path: Path):
    rows = [
        {"pmid": "1", "QUESTION": "Does it help?", "final_decision": "yes"},
        {"pmid": "2", "QUESTION": "Does it hurt?", "final_decision": "perhaps"},
    ]
    results = list(read_pubmedqa(0, _source("pubmedqa", _write_lines(tmp_path / "p.jsonl", rows))))
    assert [getattr(item, "reason", "kept") for item in results] == ["kept", "invalid_answer"]


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        (b'{"realidx": 1}\n{broken\n', "invalid JSON at column 2", 2),
        (b"[1, 2]\n", "expected a JSON object, got a JSON array", 1),
        (b"\n\n", "file is empty", None),
        (b'{"realidx": 1}\n{"question": "caf\xe9"}\n', "invalid UTF-8 byte 0xe9", 2),
        (b'\xef\xbb\xbf{"realidx": 1}\n[1]\n', "got a JSON array", 2),
    ],
)
def test_unusable_jsonl_stops_with_line(tmp_path: Path, content: bytes, message: str, line):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=message) as raised:
        list(read_medqa(0, _source("medqa", path)))
    assert raised.value.line == line
    assert str(path) in str(raised.value)


def _phantom_png(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    spec = phantom.random_spec(rng, phantom.random_anatomy(rng), modality="ct", region="head")
    phantom.draw_phantom(spec, 96).save(path)


@pytest.fixture(scope="module")
def manifest_release(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("manifest")
    images = root / "images"
    images.mkdir()
    rows = []
    for number in range(6):
        _phantom_png(images / f"ok{number}.png", number * 101)
        rows.append(
            {
                "id": f"q{number}",
                "image": f"images/ok{number}.png",
                "question": "Is there a lesion?",
                "answer": "yes" if number % 2 else "no",
            }
        )
    good_jpeg = root / "good.jpg"
    Image.new("L", (64, 64), 128).save(good_jpeg, format="JPEG")
    (images / "truncated.jpg").write_bytes(good_jpeg.read_bytes()[:200])
    Image.new("1", (8000, 8000)).save(images / "bomb.png")
    (images / "notes.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    (root.parent / "outside.png").write_bytes(b"")
    rows += [
        {"id": "q0", "image": "images/ok0.png", "question": "Duplicate?", "answer": "no"},
        {"id": "m1", "image": "images/missing.png", "question": "Where?", "answer": "no"},
        {"id": "c1", "image": "images/truncated.jpg", "question": "Corrupt?", "answer": "no"},
        {"id": "b1", "image": "images/bomb.png", "question": "Huge?", "answer": "no"},
        {"id": "u1", "image": "images/notes.eps", "question": "Format?", "answer": "no"},
        {"id": "e1", "image": "../outside.png", "question": "Escape?", "answer": "no"},
        {"id": "e2", "image": "/etc/passwd", "question": "Absolute?", "answer": "no"},
        {"id": "a1", "image": "images/ok1.png", "question": "Empty?", "answer": ""},
    ]
    manifest = _write_lines(root / "qa.jsonl", rows)
    staging = plan_release(
        BuildParams(
            dataset="mllmu_med",
            release="bad",
            seed=1,
            output_root=str(root / "out"),
            sources=[f"image_qa:{manifest}?role=patients"],
            options={"images_per_patient": 1},
        ),
        RunInfo(run_id="bad", started_at="2026-01-01T00:00:00+00:00"),
    )
    stats = generate_shard(staging, 0)
    return staging, stats


def test_bad_images_and_rows_quarantined_by_reason(manifest_release):
    staging, stats = manifest_release
    assert stats["quarantined"] == {
        "corrupt_image": 1,
        "decompression_bomb": 1,
        "duplicate_id": 1,
        "empty_answer": 1,
        "missing_image": 1,
        "path_escapes_root": 2,
        "unsupported_format": 1,
    }
    lines = (staging / stats["quarantine_file"]).read_text().splitlines()
    by_reason = {json.loads(line)["reason"]: json.loads(line) for line in lines}
    assert by_reason["decompression_bomb"]["source_id"] == "b1"
    assert "truncated.jpg" in by_reason["corrupt_image"]["detail"]


def test_good_images_still_make_patients(manifest_release):
    staging, _ = manifest_release
    plan = load_plan(staging, with_units=True)
    patients = sum(
        len([unit for unit in shard["units"] if "patient" in unit])
        for shard in plan["shards"]
        if shard["config"] == "records" and shard["split"].startswith("band_")
    )
    assert patients == 6
