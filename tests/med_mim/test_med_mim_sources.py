"""The ChestX-ray14 reader on the public sample and on malformed metadata files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from med_mim_helpers import CSV_HEADER, require_shared, write_csv

from corpusforge.generators.errors import SourceError
from corpusforge.generators.med_mim.sources import parse_age, parse_labels, read_nih


@pytest.fixture(scope="module")
def nih_dir(request) -> Path:
    return require_shared(request, "nih_cxr14_longitudinal")


def test_patients_json_orders_visits_by_follow_up(nih_dir: Path):
    source = read_nih(nih_dir, {})
    assert source.layout == "patients"
    assert len(source.patients) == 14
    assert source.rejected == []
    patient = next(p for p in source.patients if p.patient_id == "3")
    assert [visit.follow_up for visit in patient.visits] == list(range(8))
    # Upstream, the file 00000003_000.png is follow-up 7, not the first visit.
    assert patient.visits[-1].image.endswith("00000003_000.png")
    assert patient.visits[0].findings == ("Hernia",)


def test_csv_layout_matches_patients_json(nih_dir: Path):
    from_json = read_nih(nih_dir, {})
    from_csv = read_nih(nih_dir / "Data_Entry_2017_subset.csv", {})
    assert from_csv.layout == "csv"
    assert from_csv.rejected == []
    json_series = {
        p.patient_id: [(Path(v.relative_path).name, v.follow_up, v.findings) for v in p.visits]
        for p in from_json.patients
    }
    csv_series = {
        p.patient_id: [(Path(v.relative_path).name, v.follow_up, v.findings) for v in p.visits]
        for p in from_csv.patients
    }
    assert csv_series == json_series
    # The CSV names bare files; the reader finds them in images/ under the root.
    assert from_csv.patients[0].visits[0].relative_path.startswith("images/")


def test_fullres_csv_orders_by_follow_up_not_name(nih_dir: Path):
    source = read_nih(nih_dir / "fullres" / "Data_Entry_2017_rows.csv", {})
    patient = next(p for p in source.patients if p.patient_id == "13")
    names = [visit.image for visit in patient.visits]
    assert [visit.follow_up for visit in patient.visits] == [13, 29, 43, 44, 46]
    assert names == [
        "00000013_035.png",
        "00000013_004.png",
        "00000013_018.png",
        "00000013_019.png",
        "00000013_021.png",
    ]
    single = [p.patient_id for p in source.patients if len(p.visits) == 1]
    assert sorted(single) == ["3", "32"]


def test_bad_rows_are_quarantined_by_reason(tmp_path: Path):
    rows = [
        "p1_0.png,Effusion,0,1,60,M,PA",
        "p1_1.png,Effusion|Nodule,1,1,61,M,PA",
        "p1_2.png,Bad_Label,2,1,61,M,PA",
        "p1_3.png,No Finding|Mass,3,1,61,M,PA",
        "p2_0.png,Mass,,2,50,F,AP",
        "p2_1.png,Mass,x,2,50,F,AP",
        "p3_0.png,No Finding,0,3,40,F,PA",
        "p3_1.png,Mass,1,3,41,F,PA",
        "p3_2.png,Nodule,1,3,41,F,PA",
        "p1_0.png,Effusion,5,1,60,M,PA",
        ",Mass,0,4,40,F,PA",
    ]
    csv_file = write_csv(tmp_path / "Data_Entry_2017_bad.csv", rows)
    source = read_nih(csv_file, {})
    reasons = sorted(rejected.reason for rejected in source.rejected)
    assert reasons == [
        "duplicate_follow_up",
        "duplicate_follow_up",
        "duplicate_id",
        "missing_field",
        "missing_follow_up",
        "missing_follow_up",
        "unknown_label",
        "unknown_label",
    ]
    lines = {rejected.source_id: rejected.line for rejected in source.rejected}
    assert lines["p1_2.png"] == 4
    patients = {p.patient_id: [v.image for v in p.visits] for p in source.patients}
    assert patients == {"1": ["p1_0.png", "p1_1.png"], "3": ["p3_0.png"]}


def test_missing_column_names_file_and_line(tmp_path: Path):
    path = tmp_path / "Data_Entry_2017.csv"
    path.write_text("Image Index,Finding Labels,Patient ID\nx.png,Mass,1\n", encoding="utf-8")
    with pytest.raises(SourceError) as raised:
        read_nih(path, {})
    assert raised.value.path == str(path)
    assert raised.value.line == 1
    assert "Follow-up #" in str(raised.value)


def test_empty_csv_raises(tmp_path: Path):
    path = tmp_path / "Data_Entry_2017.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(SourceError, match="empty"):
        read_nih(path, {})


def test_invalid_json_names_line(tmp_path: Path):
    path = tmp_path / "patients.json"
    path.write_text('[\n {"patient_id": 1,\n "visits": [}\n]', encoding="utf-8")
    with pytest.raises(SourceError) as raised:
        read_nih(tmp_path, {})
    assert raised.value.line == 3


def test_not_utf8_csv_raises(tmp_path: Path):
    path = tmp_path / "Data_Entry_2017.csv"
    path.write_bytes((CSV_HEADER + "\n").encode() + b"caf\xe9.png,Mass,0,1,50,F,PA\n")
    with pytest.raises(SourceError, match="UTF-8"):
        read_nih(path, {})


def test_folder_without_metadata_raises(tmp_path: Path):
    with pytest.raises(SourceError, match="neither"):
        read_nih(tmp_path, {})


def test_unicode_ids_and_limit(tmp_path: Path):
    patients = [
        {
            "patient_id": "pätient-ü",
            "visits": [
                {"image": f"images/ü{n}.png", "finding_labels": ["Mass"], "follow_up": n}
                for n in (1, 0)
            ],
        },
        {"patient_id": 7, "visits": [{"image": "x.png", "finding_labels": [], "follow_up": 0}]},
    ]
    (tmp_path / "patients.json").write_text(json.dumps(patients), encoding="utf-8")
    source = read_nih(tmp_path, {}, limit=1)
    assert [p.patient_id for p in source.patients] == ["pätient-ü"]
    assert [v.relative_path for v in source.patients[0].visits] == [
        "images/ü0.png",
        "images/ü1.png",
    ]
    full = read_nih(tmp_path, {})
    # An empty label list is neither a finding nor `No Finding`.
    assert [r.reason for r in full.rejected] == ["unknown_label"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(58, 58), ("58", 58), ("058Y", 58), ("412", None), (None, None), (True, None), (-1, None)],
)
def test_parse_age(value, expected):
    assert parse_age(value) == expected


def test_parse_labels():
    assert parse_labels("No Finding") == ((), [])
    assert parse_labels("Nodule|Effusion") == (("Effusion", "Nodule"), [])
    assert parse_labels(["Pleural_Thickening"]) == (("Pleural_Thickening",), [])
    assert parse_labels("Nodule|Tumour")[0] is None
    assert parse_labels(42)[0] is None


def test_patients_json_invalid_age_quarantined(tmp_path: Path):
    ages = ["old", 58, "058Y", 412, -1, True, None, "", [60]]
    visits = [
        {"image": f"images/{n}.png", "finding_labels": ["Mass"], "follow_up": n, "age": age}
        for n, age in enumerate(ages)
    ]
    patients = [{"patient_id": 1, "visits": visits}]
    (tmp_path / "patients.json").write_text(json.dumps(patients), encoding="utf-8")
    source = read_nih(tmp_path, {})
    rejected = {r.source_id: r for r in source.rejected}
    assert sorted(rejected) == [f"images/{n}.png" for n in (0, 3, 4, 5, 8)]
    assert {r.reason for r in rejected.values()} == {"invalid_age"}
    assert rejected["images/0.png"].detail == (
        "age 'old' is not a whole number of years from 0 to 120"
    )
    assert rejected["images/0.png"].record["age"] == "old"
    ages_by_image = {v.image: v.age for v in source.patients[0].visits}
    assert ages_by_image == {
        "images/1.png": 58,
        "images/2.png": 58,
        "images/6.png": None,
        "images/7.png": None,
    }


def test_csv_implausible_age_kept_unknown(tmp_path: Path):
    rows = ["a.png,Mass,0,1,412,M,PA", "b.png,Mass,1,1,old,M,PA"]
    source = read_nih(write_csv(tmp_path / "Data_Entry_2017.csv", rows), {})
    assert source.rejected == []
    assert [visit.age for visit in source.patients[0].visits] == [None, None]
