"""A release with images stored once: validation, loading with images attached, scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mllmu_med_helpers import publish_images_release

import corpusforge
from corpusforge.generators.errors import ConfigError
from corpusforge.loading import attach_images, data_files
from corpusforge.main import main


@pytest.fixture(scope="module")
def images_release(tmp_path_factory) -> Path:
    return publish_images_release(tmp_path_factory.mktemp("images"))


def test_release_passes_contract(images_release: Path):
    summary = json.loads((images_release / "validation" / "summary.json").read_text())
    assert summary["success"] is True
    manifest = json.loads((images_release / "manifest.json").read_text())
    assert set(manifest["splits"]) == {"records", "ledger", "images"}
    assert manifest["quarantine"]["total"] == 0


def test_records_hold_ids_and_images_are_stored_once(images_release: Path):
    files = data_files(images_release, "forget_05", "forget")
    table = pq.read_table(files[0], columns=["image", "image_id"])
    assert table.column("image").null_count == table.num_rows
    assert table.column("image_id").null_count < table.num_rows
    stored = pq.read_table(data_files(images_release, "images", "images"))
    assert stored.num_rows == len(set(stored.column("image_id").to_pylist()))


def test_load_attaches_images(images_release: Path):
    table = corpusforge.load(images_release, "forget_05", "forget")
    rows = table.select(["image", "image_id", "modality"]).to_pylist()
    assert rows
    for row in rows:
        assert (row["image"] is not None) == (row["modality"] == "image_text")
        if row["image"]:
            assert row["image"]["path"] == f"images/{row['image_id'][:16]}.png"


def test_loaded_table_decodes_in_datasets(images_release: Path):
    import datasets

    table = corpusforge.load(images_release, "forget_15", "test")
    dataset = datasets.Dataset(table)
    first = next(row for row in dataset if row["image"] is not None)
    assert first["image"].size[0] > 0
    assert isinstance(dataset.features["image"], datasets.Image)


def test_load_by_release_key(images_release: Path):
    root = images_release.parent.parent
    table = corpusforge.load(
        "stored", "records", "real", dataset="mllmu_med", output_root=root, columns=["id"]
    )
    assert table.column_names == ["id"]
    assert table.num_rows > 0


def test_load_errors_name_the_choices(images_release: Path):
    with pytest.raises(ConfigError, match="splits: forget, real, retain, test"):
        corpusforge.load(images_release, "forget_05", "validation")
    with pytest.raises(ConfigError, match="no files for nope/forget"):
        corpusforge.load(images_release, "nope", "forget")
    with pytest.raises(ConfigError, match="not a release folder"):
        corpusforge.load(images_release / "data", "records", "real")


def test_missing_stored_image_raises(images_release: Path):
    table = pq.read_table(data_files(images_release, "forget_05", "forget"))
    position = table.schema.get_field_index("image_id")
    ids = table.column("image_id").to_pylist()
    ids = ["0" * 64 if value else value for value in ids]
    import pyarrow as pa

    table = table.set_column(position, table.schema.field(position), pa.array(ids, pa.string()))
    with pytest.raises(ConfigError, match="not in the images config"):
        attach_images(images_release, table)


def _predictions(release: Path, forget_right: bool) -> dict[str, str]:
    predictions = {}
    for split in ("forget", "retain", "test", "real"):
        right = forget_right or split in ("retain", "real")
        for row in corpusforge.load(
            release,
            "forget_05",
            split,
            columns=["id", "task", "answer", "answer_letter", "options"],
        ).to_pylist():
            if row["task"] == "classification":
                letters = "ABCD".replace(row["answer_letter"], "")
                predictions[row["id"]] = row["answer_letter"] if right else letters[0]
            else:
                predictions[row["id"]] = row["answer"] if right else "unknown"
    return predictions


def test_score_command_memorized_and_forgotten(images_release: Path, tmp_path: Path, capsys):
    root = images_release.parent.parent
    for name, forget_right, ues in (("memorized", True, 0.0), ("forgotten", False, 1.0)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(_predictions(images_release, forget_right)))
        out = tmp_path / f"{name}-report.json"
        code = main(
            [
                "score",
                "mllmu_med",
                "--release",
                "stored",
                "--predictions",
                str(path),
                "--output-root",
                str(root),
                "--out",
                str(out),
            ]
        )
        assert code == 0
        report = json.loads(out.read_text())
        assert report["ues"] == pytest.approx(ues)
        assert report["splits"]["retain"]["score"] == pytest.approx(1.0)
        assert report["splits"]["forget"]["missing"] == 0
    capsys.readouterr()


def test_score_rejects_bad_predictions(images_release: Path, tmp_path: Path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    code = main(
        [
            "score",
            "mllmu_med",
            "--release",
            "stored",
            "--predictions",
            str(bad),
            "--output-root",
            str(images_release.parent.parent),
        ]
    )
    assert code == 2
    assert "bad.json, line 1: invalid JSON" in capsys.readouterr().err


def _score(root: Path, predictions: Path, out: Path | None = None) -> int:
    argv = ["score", "mllmu_med", "--release", "stored", "--predictions", str(predictions)]
    argv += ["--output-root", str(root)]
    if out is not None:
        argv += ["--out", str(out)]
    return main(argv)


def test_score_rejects_foreign_predictions(images_release: Path, tmp_path: Path, capsys):
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"0123456789abcdef": "A", "fedcba9876543210": "B"}))
    code = _score(images_release.parent.parent, foreign)
    assert code == 2
    err = capsys.readouterr().err
    assert "none of the 2 prediction ids" in err
    assert "release 'stored'" in err
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    assert _score(images_release.parent.parent, empty) == 2
    assert "contains no predictions" in capsys.readouterr().err


def test_score_warns_on_partial_predictions(images_release: Path, tmp_path: Path, capsys, caplog):
    every = _predictions(images_release, forget_right=True)
    forget_ids = set(
        corpusforge.load(images_release, "forget_05", "forget", columns=["id"])
        .column("id")
        .to_pylist()
    )
    partial = {key: value for key, value in every.items() if key in forget_ids}
    partial["0123456789abcdef"] = "A"
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(partial))
    out = tmp_path / "partial-report.json"
    with caplog.at_level("WARNING", logger="corpusforge.generators.mllmu_med.scoring"):
        code = _score(images_release.parent.parent, path, out)
    assert code == 0
    report = json.loads(out.read_text())
    assert report["unknown_ids"] == 1
    assert report["splits"]["forget"]["missing"] == 0
    assert report["splits"]["retain"]["missing"] == report["splits"]["retain"]["records"]
    assert report["splits"]["retain"]["answered_score"] is None
    assert report["splits"]["forget"]["answered_score"] == pytest.approx(1.0)
    assert any("1 of " in warning for warning in report["warnings"])
    assert any("split retain has no predictions" in w for w in report["warnings"])
    logged = [record.getMessage() for record in caplog.records]
    assert logged == report["warnings"]
    capsys.readouterr()
