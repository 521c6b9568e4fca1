"""Bad source records are quarantined by reason; structural problems stop the plan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from med_mim_helpers import stage, write_csv
from PIL import Image

from corpusforge.generators.errors import ConfigError, SourceError
from corpusforge.generators.pipeline import BuildParams, quarantine_counts


def _noise_png(path: Path, seed: int, size: int = 48) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(path)


@pytest.fixture
def bad_sources(tmp_path: Path) -> list[str]:
    nih = tmp_path / "nih"
    for seed, name in enumerate(["a0", "a1", "a2", "b0", "c0", "c2", "d0", "e0", "e1"]):
        _noise_png(nih / "images" / f"{name}.png", seed)
    (nih / "images" / "c1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    _noise_png(tmp_path / "escape.png", 99)

    write_csv(
        nih / "Data_Entry_2017.csv",
        [
            "a0.png,Effusion,0,1,60,M,PA",
            "a1.png,Effusion|Mass,1,1,61,M,AP",
            "a2.png,No Finding,2,1,62,M,PA",
            "b0.png,Mass,0,2,50,F,PA",
            "b1.png,Mass,1,2,51,F,PA",
            "c0.png,Nodule,0,3,40,F,PA",
            "c1.png,Nodule,1,3,41,F,PA",
            "c2.png,Nodule|Edema,2,3,41,F,PA",
            "d0.png,Hernia,0,4,70,M,PA",
            "d9.png,Hernia|Unicorn,1,4,70,M,PA",
            "e0.png,Mass,0,5,30,F,PA",
            "e1.png,Mass,0,5,30,F,PA",
            "../escape.png,Mass,3,1,63,M,PA",
        ],
    )

    qa = tmp_path / "qa"
    for seed, name in enumerate(["q0", "q1", "q2", "q3"], start=50):
        _noise_png(qa / f"{name}.png", seed)
    (qa / "q4.png").write_bytes(b"not an image at all")
    rows = [
        {"id": "1", "image": "q0.png", "question": "Is there a mass?", "answer": "yes"},
        {"id": "2", "image": "q1.png", "question": "Is there a mass?", "answer": "no"},
        {"id": "3", "image": "q2.png", "question": "Which side?", "answer": "Left"},
        {"id": "4", "image": "q3.png", "question": "Is it normal?", "answer": "yes"},
        {"id": "5", "image": "q3.png", "question": "is it normal", "answer": "no"},
        {"id": "6", "image": "../escape.png", "question": "Is it?", "answer": "yes"},
        {"id": "7", "image": "missing.png", "question": "Is it?", "answer": "yes"},
        {"id": "8", "image": "q4.png", "question": "Is it?", "answer": "yes"},
        {"id": "1", "image": "q0.png", "question": "Again?", "answer": "yes"},
    ]

    manifest = qa / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return [f"nih_cxr14:{nih}", f"image_qa:{manifest}"]


def test_bad_records_are_counted_by_reason(tmp_path: Path, bad_sources: list[str]):
    options = {"records": 12, "heldin_records": 0, "heldout_records": 4}
    staging = stage(tmp_path / "out", sources=bad_sources, options=options)
    counts = quarantine_counts(staging)
    # Patient 2 loses b1 (missing) and patient 4 loses d9 (unknown label), so both are
    # single visits; both visits of patient 5 share follow-up 0.
    assert counts == {
        "conflicting_answers": 2,
        "corrupt_image": 1,
        "duplicate_follow_up": 2,
        "duplicate_id": 1,
        "missing_image": 2,
        "path_escapes_root": 2,
        "single_visit": 2,
        "unknown_label": 1,
        "unsupported_format": 1,
    }
    lines = []
    for path in (staging / "quarantine").glob("*.jsonl"):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    assert sum(counts.values()) == len(lines)
    unknown = next(line for line in lines if line["reason"] == "unknown_label")
    assert unknown["source"] == "nih_cxr14"
    assert unknown["line"] == 11
    assert "Unicorn" in unknown["detail"]


def test_missing_csv_column_stops_the_plan(tmp_path: Path):
    folder = tmp_path / "nih"
    folder.mkdir()
    (folder / "Data_Entry_2017.csv").write_text("Image Index,Patient ID\nx.png,1\n")
    with pytest.raises(SourceError) as raised:
        stage(tmp_path / "out", sources=[f"nih_cxr14:{folder}"])
    assert raised.value.path.endswith("Data_Entry_2017.csv")
    assert raised.value.line == 1


def test_malformed_manifest_line_stops_the_plan(tmp_path: Path):
    manifest = tmp_path / "qa.jsonl"
    manifest.write_text('{"image": "a.png", "question": "q?", "answer": "yes"}\n{broken\n')
    with pytest.raises(SourceError) as raised:
        stage(tmp_path / "out", sources=[f"image_qa:{manifest}"])
    assert raised.value.line == 2


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ("phantom_series:?colour=red", {}, "unknown option"),
        ("phantom_series:?split=test", {}, "invalid split"),
        ("phantom_series:somewhere", {}, "takes no path"),
        ("phantom_series:?visits=1-3", {}, "invalid visits"),
        ("phantom_series:", {"closed_share": 1.5}, "closed_share"),
        ("phantom_series:", {"ability_mix": "temporal:1,guessing:2"}, "unknown ability"),
        ("phantom_series:", {"image_storage": "zip"}, "image_storage"),
        ("phantom_series:", {"heldin_share": 0.6, "heldout_share": 0.5}, "heldin_share"),
        ("phantom_series:", {"max_images": 5}, "max_images"),
        ("phantom_series:", {"composer": "llm"}, "unknown composer"),
    ],
)
def test_invalid_parameters_name_the_fix(tmp_path: Path, source: str, options, message: str):
    with pytest.raises(ConfigError, match=message):
        stage(tmp_path, sources=[source], options=options)


def test_build_params_reject_unknown_option(tmp_path: Path):
    from corpusforge.generators.pipeline import plan_release

    params = BuildParams("med_mim", release="r1", output_root=str(tmp_path), options={"colour": 1})
    with pytest.raises(ConfigError, match="unknown option"):
        plan_release(params)


def _vqa_rad_catalog(folder: Path, items: list[dict]):
    from corpusforge.generators.base import ResolvedSource
    from corpusforge.generators.med_mim.catalog import build_catalog
    from corpusforge.generators.med_mim.images import ImageRenderer

    (folder / "qa.json").write_text(json.dumps(items), encoding="utf-8")
    source = ResolvedSource(f"vqa_rad:{folder}", "vqa_rad", str(folder), "vqa", {}, "0" * 64)
    renderer = ImageRenderer("med_mim", 1, 256, lambda index: ((2, 5), 96))
    return build_catalog("med_mim", 1, [source], None, renderer)


def test_vqa_rad_null_answer_quarantined_once(tmp_path: Path):
    _noise_png(tmp_path / "images" / "good.png", 1)
    (tmp_path / "images" / "bad.png").write_bytes(b"not an image at all")
    question = "What is the difference between the left and right costophrenic angles?"
    items = [
        {"qid": 1, "image_name": "good.png", "question": question, "answer": "Left is blunted"},
        {"qid": 2, "image_name": "good.png", "question": question, "answer": None},
        {"qid": 3, "image_name": "bad.png", "question": "Is this a CT?", "answer": "no"},
        {"qid": 4, "image_name": "bad.png", "question": "", "answer": "yes"},
        {"qid": 5, "image_name": "bad.png", "question": "Which organ?", "answer": None},
    ]
    catalog = _vqa_rad_catalog(tmp_path, items)
    reasons: dict[int, list[str]] = {}
    for rejected in catalog.rejected:
        reasons.setdefault(rejected.line, []).append(rejected.reason)
    assert reasons == {
        2: ["missing_field"],
        3: ["unsupported_format"],
        4: ["missing_field"],
        5: ["missing_field"],
    }
    details = {rejected.line: rejected.detail for rejected in catalog.rejected}
    assert details[2] == "the answer is missing or empty"
    assert details[4] == "the question is missing or empty"
    good = next(facts for facts in catalog.images.values() if facts.source_image == "good.png")
    assert [(pair.qid, pair.answer) for pair in good.qa] == [("1", "Left is blunted")]
