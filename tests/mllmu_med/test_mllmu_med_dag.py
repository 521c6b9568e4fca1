"""The mllmu_med DAG on the public VQA-RAD, MedQA and PubMedQA samples, checked from the outside.

Every check here recomputes its property from the published files, independently
of the contract rules that already passed inside the run.
"""

from __future__ import annotations

import io
import json
import re
import struct
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from mllmu_med_helpers import part_hashes, require_shared
from PIL import Image

from corpusforge.generators.imaging.io import PHASH_DUPLICATE_THRESHOLD, phash
from corpusforge.generators.mllmu_med.splits import BANDS, FORGET_CONFIGS, LETTERS

pytestmark = pytest.mark.airflow

RELEASE = "vqa"
SEED = 11


@pytest.fixture(scope="module")
def sources(request: pytest.FixtureRequest) -> list[str]:
    vqa_rad = require_shared(request, "vqa_rad")
    medqa = require_shared(request, "medqa")
    return [
        f"vqa_rad:{vqa_rad}",
        f"medqa:{medqa / 'medqa_usmle_test_200.jsonl'}",
        f"pubmedqa:{medqa / 'pubmedqa_pqal_200.jsonl'}",
    ]


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    folder = Path(__file__).resolve().parents[2] / "dags"
    return DagBag(dag_folder=str(folder)).dags["mllmu_med"]


def test_dag_param_defaults_match_builder(dag):
    from corpusforge.generators.registry import get_builder

    for name, value in get_builder("mllmu_med").default_options().items():
        assert dag.params[name] == value, name


@pytest.fixture(scope="module")
def release(dag, sources: list[str], airflow_db, tmp_path_factory) -> Path:
    from airflow.utils.state import DagRunState

    root = tmp_path_factory.mktemp("published")
    conf = {"output_root": str(root), "release": RELEASE, "seed": SEED, "sources": sources}
    dag_run = dag.test(logical_date=None, run_conf=conf)
    assert dag_run.state == DagRunState.SUCCESS
    return root / "mllmu_med" / RELEASE


@pytest.fixture(scope="module")
def records(release: Path) -> list[dict]:
    rows = []
    for file in sorted((release / "data" / "records").glob("*.parquet")):
        split = file.name.split("-")[0]
        for row in pq.read_table(file).to_pylist():
            row["split"] = split
            rows.append(row)
    return rows


@pytest.fixture(scope="module")
def ledger(release: Path) -> list[dict]:
    return pq.read_table(release / "data" / "ledger").to_pylist()


def _card_splits(release: Path, config: str) -> dict[str, list[str]]:
    import yaml

    header = (release / "README.md").read_text().split("---\n")[1]
    entry = next(c for c in yaml.safe_load(header)["configs"] if c["config_name"] == config)
    return {
        item["split"]: [Path(path).name.split("-")[0] for path in item["path"]]
        for item in entry["data_files"]
    }


def test_release_counts_and_sources(release: Path, records: list[dict]):
    manifest = json.loads((release / "manifest.json").read_text())
    assert {source["format"] for source in manifest["sources"]} == {"vqa_rad", "medqa", "pubmedqa"}
    splits = manifest["splits"]["records"]
    assert set(splits) == {band.split for band in BANDS} | {"real"} | {
        band.test_split for band in BANDS[:3]
    }
    assert len({row["patient_id"] for row in records if row["patient_id"]}) >= 20
    assert {row["source"] for row in records} >= {"vqa_rad", "medqa", "pubmedqa", "profile"}
    assert any(row["corrupted"] for row in records)


def test_loads_in_datasets_with_images(release: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    names = datasets.get_dataset_split_names(str(release), "forget_10")
    assert set(names) == {"forget", "retain", "test", "real"}
    test = datasets.load_dataset(str(release), "forget_10", split="test", streaming=True)
    assert isinstance(test.features["image"], datasets.Image)
    picture = next(row["image"] for row in test if row["image_id"] is not None)
    assert isinstance(picture, Image.Image)
    assert picture.size[0] > 0
    ledger = datasets.load_dataset(str(release), "ledger", cache_dir=str(tmp_path / "cache"))
    assert len(ledger["entries"]) > 0


def test_loads_in_pandas_duckdb_polars(release: Path, records: list[dict]):
    import duckdb
    import pandas as pd
    import polars as pl

    pattern = str(release / "data" / "records" / "*.parquet")
    frame = pd.read_parquet(release / "data" / "records", columns=["id", "band"])
    assert len(frame) == len(records)
    assert frame["id"].is_unique
    count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchall()[0][0]
    assert count == len(records)
    assert pl.scan_parquet(pattern).select(pl.len()).collect().item() == len(records)


def _picture_hashes(rows: list[dict]) -> dict[str, int]:
    hashes = {}
    for row in rows:
        if row["image"] and row["image_id"] not in hashes:
            with Image.open(io.BytesIO(row["image"]["bytes"])) as image:
                hashes[row["image_id"]] = phash(image)
    return hashes


def test_forget_and_retain_disjoint(release: Path, records: list[dict]):
    hashes = _picture_hashes(records)
    for config in FORGET_CONFIGS:
        splits = _card_splits(release, config)
        forget = [r for r in records if r["split"] in splits["forget"]]
        other = [r for r in records if r["split"] in splits["retain"] + splits["real"]]
        assert {r["patient_id"] for r in forget}.isdisjoint({r["patient_id"] for r in other})
        forget_images = {r["image_id"] for r in forget if r["image_id"]}
        other_images = {r["image_id"] for r in other if r["image_id"]}
        assert forget_images and forget_images.isdisjoint(other_images)
        left = np.array([hashes[i] for i in forget_images], dtype=np.uint64)
        right = np.array([hashes[i] for i in other_images], dtype=np.uint64)
        distances = np.bitwise_count(left[:, None] ^ right[None, :])
        assert distances.min() > PHASH_DUPLICATE_THRESHOLD, config


def test_leak_audit(release: Path, records: list[dict], ledger: list[dict]):
    private = [entry for entry in ledger if entry["kind"] == "private_value"]
    texts = {
        row["id"]: "\n".join([row["question"], row["answer"], *row["options"]]) for row in records
    }
    for config in FORGET_CONFIGS:
        splits = _card_splits(release, config)
        forget_patients = {r["patient_id"] for r in records if r["split"] in splits["forget"]}
        values = sorted({e["value"] for e in private if e["patient_id"] in forget_patients})
        assert values
        for row in records:
            if row["split"] not in splits["retain"] + splits["real"]:
                continue
            text = texts[row["id"]]
            for value in values:
                if value in text:
                    pattern = r"(?<!\w)" + re.escape(value) + r"(?!\w)"
                    assert not re.search(pattern, text), (config, row["id"], value)


def test_ledger_matches_records(records: list[dict], ledger: list[dict]):
    carriers: dict[str, set[str]] = defaultdict(set)
    by_id = {row["id"]: row for row in records}
    for row in records:
        for ledger_id in row["ledger_ids"]:
            carriers[ledger_id].add(row["id"])
    entries = {entry["ledger_id"]: entry for entry in ledger}
    assert set(carriers) == set(entries)
    for ledger_id, entry in entries.items():
        assert set(entry["record_ids"]) | set(entry["test_record_ids"]) == carriers[ledger_id]
        for record_id in carriers[ledger_id]:
            row = by_id[record_id]
            assert row["patient_id"] == entry["patient_id"]
            if entry["kind"] == "corrupted_answer" and row["variant"] == "original":
                assert row["answer"] == entry["value"]
                assert row["correct_answer"] == entry["correct_value"]
    for row in records:
        if row["scenario"] == "privacy" and row["task"] != "train":
            values = {entries[i]["value"] for i in row["ledger_ids"]}
            assert row["answer"] in values


def test_letters_balanced(release: Path, records: list[dict]):
    checked = 0
    for config in FORGET_CONFIGS:
        for split, members in _card_splits(release, config).items():
            rows = [r for r in records if r["split"] in members and r["task"] == "classification"]
            groups = {"all": rows}
            for modality in ("image_text", "text_only"):
                groups[modality] = [r for r in rows if r["modality"] == modality]
            for name, group in groups.items():
                if len(group) < 100:
                    continue
                checked += 1
                counts = Counter(r["answer_letter"] for r in group)
                for letter in LETTERS:
                    share = counts[letter] / len(group)
                    assert abs(share - 0.25) <= 0.02, (config, split, name, counts)
    assert checked >= 6


def _png_chunks(data: bytes) -> list[bytes]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    chunks, position = [], 8
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        chunks.append(kind)
        position += 12 + length
    return chunks


def test_images_carry_no_metadata(records: list[dict]):
    seen = set()
    for row in records:
        if row["image"] and row["image_id"] not in seen:
            seen.add(row["image_id"])
            assert set(_png_chunks(row["image"]["bytes"])) <= {b"IHDR", b"PLTE", b"IDAT", b"IEND"}
            with Image.open(io.BytesIO(row["image"]["bytes"])) as image:
                assert not image.getexif()
                assert not image.info.get("icc_profile")
    assert len(seen) >= 40


def test_rerun_is_byte_identical(release: Path, sources: list[str], tmp_path: Path):
    """Regenerate some shards in reverse order: each must match the published file's sha256."""
    from corpusforge.generators.pipeline import (
        BuildParams,
        RunInfo,
        generate_shard,
        load_plan,
        plan_release,
    )

    manifest = json.loads((release / "manifest.json").read_text())
    staging = plan_release(
        BuildParams(
            dataset="mllmu_med",
            release=RELEASE,
            seed=SEED,
            output_root=str(tmp_path),
            sources=sources,
        ),
        RunInfo(run_id="rerun", started_at="2026-01-01T00:00:00+00:00"),
    )
    shards = load_plan(staging)["shards"]
    wanted = {
        ("records", "band_00_05"),
        ("records", "test_10_15"),
        ("records", "real"),
        ("ledger", "entries"),
    }
    chosen = [s["index"] for s in shards if (s["config"], s["split"]) in wanted]
    for index in reversed(chosen):
        generate_shard(staging, index)
    published = {(s["config"], s["split"], s["sha256"]) for s in manifest["shards"]}
    regenerated = part_hashes(staging)
    assert len(regenerated) == len(chosen)
    assert set(regenerated) <= published


def test_card_loads_forget_config_portably(release: Path):
    card = (release / "README.md").read_text()
    output_root = json.loads((release / "manifest.json").read_text())["output_root"]
    assert f'load_dataset("path/to/mllmu_med/{release.name}", "forget_05")' in card
    assert "FROM 'data/ledger/*.parquet'" in card
    # The card travels with the data, so it names no folder of the build machine.
    assert output_root not in card
    assert '"cache": "<output_root>/.llm-cache"' in card
