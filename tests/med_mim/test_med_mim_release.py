"""A small release from the embedded default: layout, images, determinism, export and card."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from med_mim_helpers import build, stage
from PIL import Image

from corpusforge.generators import store
from corpusforge.generators.imaging.io import PHASH_DUPLICATE_THRESHOLD
from corpusforge.generators.med_mim.export import export_med_mim_json
from corpusforge.generators.med_mim.facts import ABILITIES


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("embedded")
    return Path(build(root).path)


@pytest.fixture(scope="module")
def table_mode(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("table")
    return Path(build(root, options={"image_storage": "table"}).path)


def _rows(release: Path, config: str = "qa") -> list[dict]:
    manifest = store.load_manifest(release)
    rows = []
    for shard in manifest["shards"]:
        if shard["config"] == config:
            for row in pq.read_table(release / shard["path"]).to_pylist():
                rows.append({**row, "split": shard["split"]})
    return rows


def test_all_abilities_and_splits(embedded: Path):
    manifest = store.load_manifest(embedded)
    assert manifest["splits"] == {"qa": {"train": 48, "heldin": 16, "heldout": 16}}
    rows = _rows(embedded)
    train_abilities = {row["ability"] for row in rows if row["split"] == "train"}
    assert train_abilities == set(ABILITIES)
    assert {row["source"] for row in rows if row["split"] == "heldout"} == {"embedded_dicom"}
    assert {row["source"] for row in rows if row["split"] != "heldout"} == {"phantom_series"}
    closed = Counter(row["question_type"] for row in rows if row["split"] == "train")
    assert closed == {"closed": 24, "open": 24}
    summary = json.loads((embedded / "validation" / "summary.json").read_text())
    assert summary["success"] is True
    assert store.verify_release(embedded) == []


def test_quarantine_counts_placeholder_dicom(embedded: Path):
    manifest = store.load_manifest(embedded)
    assert manifest["quarantine"]["by_reason"]["placeholder_pixels"] == 2


def test_no_patient_or_picture_crosses_splits(embedded: Path):
    split_of = defaultdict(set)
    hashes = defaultdict(set)
    for row in _rows(embedded):
        for image_id, metadata in zip(row["image_ids"], row["image_metadata"], strict=True):
            split_of[("patient", metadata["patient"])].add(row["split"])
            split_of[("image", image_id)].add(row["split"])
            hashes[row["split"]].add(int(metadata["phash"], 16))
    assert all(len(splits) == 1 for splits in split_of.values())
    for benchmark in ("heldin", "heldout"):
        for value in hashes[benchmark]:
            distances = [(value ^ other).bit_count() for other in hashes["train"]]
            assert min(distances) > PHASH_DUPLICATE_THRESHOLD


def test_letters_are_dealt_evenly(embedded: Path):
    groups = defaultdict(Counter)
    for row in _rows(embedded):
        if row["correct_option"] is not None:
            key = (row["split"], row["ability"], len(row["options"]))
            groups[key][row["correct_option"]] += 1
            assert row["answer"].startswith(row["correct_option"] + ": ")
    for (_, _, options), counter in groups.items():
        counts = [counter[letter] for letter in "ABCDEFGH"[:options]]
        assert max(counts) - min(counts) <= 1


def test_images_decode_in_datasets(embedded: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    dataset = datasets.load_dataset(str(embedded), "qa", cache_dir=str(tmp_path / "cache"))
    assert {split: len(dataset[split]) for split in dataset} == {
        "train": 48,
        "heldin": 16,
        "heldout": 16,
    }
    features = dataset["train"].features
    assert isinstance(features["images"], datasets.List)
    assert isinstance(features["images"].feature, datasets.Image)
    row = dataset["heldout"][0]
    assert len(row["images"]) == row["num_images"]
    for image, metadata in zip(row["images"], row["image_metadata"], strict=True):
        assert isinstance(image, Image.Image)
        assert image.size == (metadata["width"], metadata["height"])
        assert not image.info.get("exif")


def test_rerun_is_byte_identical(embedded: Path, tmp_path: Path):
    manifest = store.load_manifest(embedded)
    staging = stage(tmp_path, order="reverse", workers=2)
    parts = [
        json.loads(path.read_text()) for path in sorted((staging / "parts").glob("shard-*.json"))
    ]
    rebuilt = sorted(part["sha256"] for part in parts if part["sha256"])
    assert rebuilt == sorted(shard["sha256"] for shard in manifest["shards"])


def test_export_matches_the_med_mim_layout(embedded: Path, tmp_path: Path):
    out = tmp_path / "export"
    result = export_med_mim_json(embedded, out)
    assert result["records"] == {"heldin": 16, "heldout": 16, "train": 48}
    train = json.loads((out / "train.json").read_text())
    assert len(train) == 48
    referenced = set()
    for record in train:
        assert list(record) == ["id", "images", "conversation", "source"]
        assert [turn["role"] for turn in record["conversation"]] == ["user", "assistant"]
        tokens = record["conversation"][0]["content"].count("<image>")
        assert tokens == len(record["images"])
        for path in record["images"]:
            assert path.startswith("images/")
            assert (out / path).is_file()
            referenced.add(path)
        assert record["source"].startswith("phantom_series/")
    files = {f"images/{path.name}" for path in (out / "images").iterdir()}
    assert referenced <= files
    assert result["images"] == len(files)
    # Exporting again rewrites the JSON and leaves the images as they are.
    assert export_med_mim_json(embedded, out) == result


def test_card_has_counts_and_chart(embedded: Path):
    card = (embedded / "README.md").read_text()
    assert "## Records by split, ability and question type" in card
    assert "| train | coreference |" in card
    assert "![Records per ability and question type in each split](abilities.png)" in card
    with Image.open(embedded / "abilities.png") as chart:
        assert chart.format == "PNG"
        assert chart.width > 600


def test_table_mode_stores_images_once(table_mode: Path, embedded: Path, tmp_path: Path):
    manifest = store.load_manifest(table_mode)
    assert set(manifest["splits"]) == {"qa", "images"}
    qa_rows = _rows(table_mode)
    image_rows = _rows(table_mode, "images")
    assert all(row["images"] is None for row in qa_rows)
    stored = {row["image_id"]: row["split"] for row in image_rows}
    assert len(stored) == len(image_rows)
    for row in qa_rows:
        assert all(stored[image_id] == row["split"] for image_id in row["image_ids"])
    # Records and image ids do not depend on the storage mode.
    embedded_ids = sorted((row["id"], tuple(row["image_ids"])) for row in _rows(embedded))
    assert sorted((row["id"], tuple(row["image_ids"])) for row in qa_rows) == embedded_ids
    export_table = export_med_mim_json(table_mode, tmp_path / "from_table")
    export_embedded = export_med_mim_json(embedded, tmp_path / "from_embedded")
    assert export_table == {**export_embedded, "out": str(tmp_path / "from_table")}
    for split in ("train", "heldin", "heldout"):
        assert (tmp_path / "from_table" / f"{split}.json").read_bytes() == (
            tmp_path / "from_embedded" / f"{split}.json"
        ).read_bytes()


def test_load_attaches_images_in_both_modes(table_mode: Path, embedded: Path):
    import corpusforge

    from_table = corpusforge.load(table_mode, "qa", "heldout").to_pylist()
    from_embedded = corpusforge.load(embedded, "qa", "heldout").to_pylist()
    assert len(from_table) == len(from_embedded) == 16
    by_id = {row["id"]: row for row in from_embedded}
    for row in from_table:
        assert len(row["images"]) == row["num_images"]
        expected = by_id[row["id"]]["images"]
        assert row["images"] == expected
        assert [cell["path"] for cell in row["images"]] == [
            f"images/{image_id[:16]}.png" for image_id in row["image_ids"]
        ]


def test_loaded_table_mode_decodes(table_mode: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    import corpusforge

    dataset = datasets.Dataset(corpusforge.load(table_mode, "qa", "heldin"))
    row = dataset[0]
    assert len(row["images"]) == row["num_images"]
    assert all(isinstance(image, Image.Image) for image in row["images"])
