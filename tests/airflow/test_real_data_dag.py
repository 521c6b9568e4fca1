"""A DAG run on the public reasoning samples, read back with the readers our users use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def real_release(reasoning_dir: Path, airflow_db, tmp_path_factory) -> Path:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState

    root = tmp_path_factory.mktemp("published")
    dag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags")).dags["stephint"]
    sources = [
        f"gsm8k:{reasoning_dir / 'gsm8k_test_200.jsonl'}",
        f"math:{reasoning_dir / 'math500_200.jsonl'}?split=test",
        f"longcot:{reasoning_dir / 'longcot_sky_t1_120.jsonl'}?split=train",
    ]
    conf = {"output_root": str(root), "release": "real", "sources": sources, "shard_size": 128}
    dag_run = dag.test(logical_date=None, run_conf=conf)
    assert dag_run.state == DagRunState.SUCCESS
    return root / "stephint" / "real"


def test_real_release_counts(real_release: Path):
    manifest = json.loads((real_release / "manifest.json").read_text())
    splits = manifest["splits"]["chains"]
    quarantined = manifest["quarantine"]["total"]
    assert splits["test"] + splits["train"] + quarantined == 520
    assert splits["test"] >= 390
    assert manifest["quarantine"]["by_reason"].get("no_final_answer", 0) >= 2
    assert {source["format"] for source in manifest["sources"]} == {"gsm8k", "math", "longcot"}
    lines = []
    for file in (real_release / "quarantine").glob("*.jsonl"):
        lines.extend(json.loads(line) for line in file.read_text().splitlines())
    assert len(lines) == quarantined
    assert all(line["reason"] and line["source"] for line in lines)


def test_card_warns_about_test_split_sources(real_release: Path):
    card = (real_release / "README.md").read_text()
    assert "Contamination warning" in card
    assert "arXiv:2507.02841" in card
    assert "cobbe2021gsm8k" in card


def test_loads_in_datasets(real_release: Path, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    manifest = json.loads((real_release / "manifest.json").read_text())
    expected = manifest["splits"]["chains"]

    by_card = datasets.load_dataset(str(real_release), "chains", cache_dir=str(tmp_path / "c1"))
    assert {split: len(by_card[split]) for split in by_card} == expected
    features = by_card["test"].features
    assert isinstance(features["hints"], datasets.List)
    assert features["hints"].feature["level"] == datasets.Value("int32")

    data_files = {
        split: str(real_release / "data" / "chains" / f"{split}-*.parquet") for split in expected
    }
    by_files = datasets.load_dataset(
        "parquet", data_files=data_files, cache_dir=str(tmp_path / "c2")
    )
    assert {split: len(by_files[split]) for split in by_files} == expected
    row = by_files["train"][0]
    assert "".join(row["steps"]) == row["chain"]


def test_loads_in_pandas_duckdb_polars(real_release: Path):
    import duckdb
    import pandas as pd
    import polars as pl

    manifest = json.loads((real_release / "manifest.json").read_text())
    total = manifest["num_rows"]
    pattern = str(real_release / "data" / "chains" / "*.parquet")

    frame = pd.read_parquet(real_release / "data" / "chains")
    assert len(frame) == total
    assert frame["id"].is_unique

    count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchall()[0][0]
    assert count == total
    max_level = duckdb.sql(
        f"SELECT max(h.level) FROM (SELECT unnest(hints) AS h FROM read_parquet('{pattern}'))"
    ).fetchall()[0][0]
    assert max_level >= 2

    polars_frame = pl.scan_parquet(pattern).select(pl.len()).collect()
    assert polars_frame.item() == total
    steps = pl.read_parquet(pattern).select(pl.col("steps").list.len().alias("n"))
    assert steps["n"].min() >= 1
