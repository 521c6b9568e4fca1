"""DAG runs with the model backend, endpoint and key from an Airflow Connection."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from llm_helpers import API_KEY, QuestionWriter, TextWriter, read_rows

pytest_plugins = ["llm_fixtures"]

pytestmark = pytest.mark.airflow

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
CONNECTION_ID = "corpusforge_llm_mock"


def test_dag_model_backend_hides_key(airflow_db, mock_server, tmp_path, monkeypatch, caplog, capfd):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    # OPENAI_* must not be what makes the run work: the Connection has to.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    connection = {"conn_type": "openai", "host": mock_server.base_url, "password": API_KEY}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONNECTION_ID.upper()}", json.dumps(connection))

    replies = {
        "What is 2+3?": "Two plus three is 5.\n\nSo the answer is \\boxed{5}.",
        "What is 6*7?": "Six times seven is 42.\n\nSo the answer is \\boxed{42}.",
    }
    mock_server.chat_responder = lambda body: replies[body["messages"][1]["content"]]
    problems = tmp_path / "teacher_problems.jsonl"
    problems.write_text(
        json.dumps({"id": "p1", "problem": "What is 2+3?", "answer": "5"})
        + "\n"
        + json.dumps({"id": "p2", "problem": "What is 6*7?", "answer": "42"})
        + "\n"
    )
    conf = {
        "output_root": str(tmp_path / "out"),
        "release": "llm",
        "sources": [f"teacher:{problems}"],
        "shard_size": 1,
        "scorer": "model",
        "llm_backend": "openai",
        "llm_model": "mock-model",
        "llm_conn_id": CONNECTION_ID,
    }
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["stephint"]
    with caplog.at_level(logging.DEBUG):
        dag_run = dag.test(logical_date=None, run_conf=conf)
    assert dag_run.state == DagRunState.SUCCESS

    release = tmp_path / "out" / "stephint" / "llm"
    manifest = json.loads((release / "manifest.json").read_text())
    rows = []
    for shard in manifest["shards"]:
        rows.extend(pq.read_table(release / shard["path"]).to_pylist())
    assert {row["problem"]: row["chain"] for row in rows} == replies
    assert manifest["llm"]["endpoints"] == [mock_server.base_url]
    assert manifest["llm"]["requests"] == len(mock_server.model_requests())
    assert manifest["parameters"]["options"]["llm"]["conn_id"] == CONNECTION_ID

    with create_session() as session:
        values = [
            json.dumps(row.value, default=str)
            for row in session.query(XComModel).filter(XComModel.run_id == dag_run.run_id)
        ]
    assert values, "the run pushed no XCom"
    assert not [value for value in values if API_KEY in value]
    captured = capfd.readouterr()
    assert API_KEY not in captured.out + captured.err
    assert API_KEY not in caplog.text
    leaked = [
        p
        for p in (tmp_path / "out").rglob("*")
        if p.is_file() and API_KEY.encode() in p.read_bytes()
    ]
    assert leaked == []


def run_dag(dag_id: str, conf: dict, mock_server, monkeypatch):
    """Run a DAG with dag.test against the mock server, through an Airflow Connection."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    connection = {"conn_type": "openai", "host": mock_server.base_url, "password": API_KEY}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONNECTION_ID.upper()}", json.dumps(connection))
    model = {"llm_backend": "openai", "llm_model": "mock-model", "llm_conn_id": CONNECTION_ID}
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags[dag_id]
    dag_run = dag.test(logical_date=None, run_conf={**conf, **model})
    assert dag_run.state == DagRunState.SUCCESS
    output = Path(conf["output_root"])
    leaked = [p for p in output.rglob("*") if p.is_file() and API_KEY.encode() in p.read_bytes()]
    assert leaked == []
    release = output / dag_id / conf["release"]
    return release, json.loads((release / "manifest.json").read_text())


def test_dag_mllmu_med_model_texts(airflow_db, mock_server, tmp_path, monkeypatch):
    writer = TextWriter()
    mock_server.chat_responder = writer
    conf = {
        "output_root": str(tmp_path / "out"),
        "release": "llm",
        "sources": ["phantom:?patients=6&visits=1&questions=1&size=64"],
        "shard_size": 50,
        "text_backend": "model",
    }

    release, manifest = run_dag("mllmu_med", conf, mock_server, monkeypatch)

    rows = read_rows(release, "records")
    tests = [row for row in rows if row["variant"] == "test"]
    profiles = [row for row in rows if row["field"] == "profile"]
    assert tests
    assert profiles
    assert [row["id"] for row in tests if row["question"] not in writer.written] == []
    assert [row["id"] for row in profiles if row["answer"] not in writer.written] == []
    assert manifest["llm"]["endpoints"] == [mock_server.base_url]
    assert manifest["llm"]["requests"] == len(mock_server.model_requests())
    assert manifest["quarantine"]["total"] == 0


def test_dag_med_mim_model_composer(airflow_db, mock_server, tmp_path, monkeypatch):
    writer = QuestionWriter()
    mock_server.chat_responder = writer
    conf = {
        "output_root": str(tmp_path / "out"),
        "release": "llm",
        "sources": ["phantom_series:?patients=6&visits=2-3&size=64"],
        "shard_size": 50,
        "records": 8,
        "heldin_records": 2,
        "heldout_records": 0,
        "composer": "model",
    }

    release, manifest = run_dag("med_mim", conf, mock_server, monkeypatch)

    rows = read_rows(release, "qa")
    assert len(rows) == 10
    for row in rows:
        template = json.loads(row["metadata"])["template_question"]
        assert row["question"] == QuestionWriter.PREFIX + template
        assert row["generator"] == "model:mock-model"
    assert manifest["llm"]["requests"] == 2 * len(rows)
    assert manifest["quarantine"]["total"] == 0
