"""The med_mim DAG through real Airflow on the ChestX-ray14 and VQA-RAD samples."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from med_mim_helpers import require_shared, stage

from corpusforge.generators import store
from corpusforge.generators.imaging.io import PHASH_DUPLICATE_THRESHOLD
from corpusforge.generators.med_mim.export import export_med_mim_json
from corpusforge.generators.med_mim.facts import ABILITIES

pytestmark = pytest.mark.airflow

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
OPTIONS = {"records": 48, "heldin_records": 16, "heldout_records": 16, "max_image_side": 128}
SEED = 17


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


@pytest.fixture(scope="module")
def real_sources(request) -> list[str]:
    return [
        f"nih_cxr14:{require_shared(request, 'nih_cxr14_longitudinal')}",
        f"vqa_rad:{require_shared(request, 'vqa_rad')}",
    ]


@pytest.fixture(scope="module")
def real_release(dagbag, airflow_db, real_sources, tmp_path_factory) -> Path:
    from airflow.utils.state import DagRunState

    root = tmp_path_factory.mktemp("published")
    conf = {
        "output_root": str(root),
        "release": "real",
        "seed": SEED,
        "sources": real_sources,
        "shard_size": 80,
        **OPTIONS,
    }
    dag_run = dagbag.dags["med_mim"].test(logical_date=None, run_conf=conf)
    assert dag_run.state == DagRunState.SUCCESS
    return root / "med_mim" / "real"


def _rows(release: Path) -> list[dict]:
    manifest = store.load_manifest(release)
    rows = []
    for shard in manifest["shards"]:
        table = pq.read_table(release / shard["path"]).drop(["images"])
        rows += [{**row, "split": shard["split"]} for row in table.to_pylist()]
    return rows


def test_param_defaults_match_builder(dagbag):
    from corpusforge.generators.registry import get_builder

    params = dagbag.dags["med_mim"].params
    for name, value in get_builder("med_mim").default_options().items():
        assert params[name] == value, name


def test_real_release_abilities_and_contract(real_release: Path):
    manifest = store.load_manifest(real_release)
    assert manifest["splits"]["qa"] == {"train": 48, "heldin": 16, "heldout": 16}
    rows = _rows(real_release)
    abilities = {row["ability"] for row in rows if row["split"] == "train"}
    assert abilities == set(ABILITIES)
    assert {row["source"] for row in rows if row["split"] == "heldout"} == {"vqa_rad"}
    assert {row["source"] for row in rows if row["ability"] == "temporal"} == {"nih_cxr14"}
    summary = json.loads((real_release / "validation" / "summary.json").read_text())
    assert summary["success"] is True
    assert "Contamination warning" in (real_release / "README.md").read_text()


def test_real_splits_share_no_patient(real_release: Path):
    seen = defaultdict(set)
    hashes = defaultdict(set)
    for row in _rows(real_release):
        for image_id, metadata in zip(row["image_ids"], row["image_metadata"], strict=True):
            seen[metadata["patient"]].add(row["split"])
            seen[image_id].add(row["split"])
            hashes[row["split"] == "train"].add(int(metadata["phash"], 16))
    assert all(len(splits) == 1 for splits in seen.values())
    for value in hashes[False]:
        assert min((value ^ other).bit_count() for other in hashes[True]) > (
            PHASH_DUPLICATE_THRESHOLD
        )


def test_temporal_answers_follow_labels(real_release: Path, real_sources):
    labels = {}
    patients = json.loads((Path(real_sources[0].split(":", 1)[1]) / "patients.json").read_text())
    for patient in patients:
        for visit in patient["visits"]:
            labels[visit["image"]] = visit
    for row in _rows(real_release):
        if row["ability"] != "temporal":
            continue
        visits = [labels[meta["source_image"]] for meta in row["image_metadata"]]
        follow_ups = [visit["follow_up"] for visit in visits]
        assert follow_ups == sorted(follow_ups)
        assert [meta["follow_up"] for meta in row["image_metadata"]] == follow_ups
        if row["task"] == "interval_follow_up" and row["correct_option"]:
            assert row["answer"].endswith(f": {follow_ups[-1] - follow_ups[0]}")


def test_real_images_decode_in_datasets(real_release: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    dataset = datasets.load_dataset(str(real_release), "qa", cache_dir=str(tmp_path / "cache"))
    row = dataset["train"][0]
    assert len(row["images"]) == row["num_images"]
    assert all(image.size[0] > 0 for image in row["images"])


def test_real_export_layout(real_release: Path, tmp_path: Path):
    result = export_med_mim_json(real_release, tmp_path / "export")
    assert result["records"] == {"heldin": 16, "heldout": 16, "train": 48}
    for split in ("train", "heldin", "heldout"):
        for record in json.loads((tmp_path / "export" / f"{split}.json").read_text()):
            assert set(record) == {"id", "images", "conversation", "source"}
            user = record["conversation"][0]["content"]
            assert user.count("<image>") == len(record["images"])
            assert all((tmp_path / "export" / path).is_file() for path in record["images"])


def test_rerun_is_byte_identical(real_release: Path, real_sources, tmp_path: Path):
    staging = stage(
        tmp_path,
        "real",
        sources=real_sources,
        options=OPTIONS,
        shard_size=80,
        seed=SEED,
        order="shuffled",
        workers=2,
    )
    parts = [json.loads(path.read_text()) for path in (staging / "parts").glob("shard-*.json")]
    published = store.load_manifest(real_release)["shards"]
    assert sorted(p["sha256"] for p in parts if p["sha256"]) == sorted(
        shard["sha256"] for shard in published
    )
