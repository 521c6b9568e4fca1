"""Batch mode through the mock Batch API: submit, poll, map by custom id, resume after a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from llm_helpers import API_KEY, FAST_SETTINGS

from corpusforge.generators.faults import KILL_ENV
from corpusforge.generators.llm import errors
from corpusforge.generators.llm.batch import CRASH_AFTER_SUBMIT
from corpusforge.generators.llm.client import LLMClient
from corpusforge.generators.llm.settings import LLMSettings
from corpusforge.generators.llm.structured import chat_request, chat_text
from corpusforge.generators.llm.usage import UsageStats

pytest_plugins = ["llm_fixtures"]

REPO = Path(__file__).resolve().parents[2]


def batch_client(endpoint, cache: Path) -> LLMClient:
    settings = LLMSettings.from_json({**FAST_SETTINGS, "mode": "batch", "cache": str(cache)})
    client = LLMClient.open(settings, label="batch test", endpoint=endpoint)
    client.usage = UsageStats()
    return client


def questions(count: int):
    return [
        chat_request("mock-model", [{"role": "user", "content": f"question {i}"}])
        for i in range(count)
    ]


def answer_by_question(body):
    return f"Reply to {body['messages'][0]['content']}: \\boxed{{1}}"


def test_batch_maps_results_by_custom_id(endpoint, mock_server, tmp_path):
    mock_server.chat_responder = answer_by_question
    client = batch_client(endpoint, tmp_path / "cache")
    replies = client.run(questions(5))
    texts = [chat_text(reply).content for reply in replies]
    assert texts == [f"Reply to question {i}: \\boxed{{1}}" for i in range(5)]
    assert mock_server.counts["files"] == 1
    assert mock_server.counts["batches"] == 1
    assert mock_server.counts["/chat/completions"] == 0
    assert client.usage.counts["batches"] == 1
    assert client.usage.counts["requests"] == 5
    input_file = mock_server.files["file-1"].decode().splitlines()
    assert [json.loads(line)["url"] for line in input_file] == ["/v1/chat/completions"] * 5
    assert not list((tmp_path / "cache" / "batches").glob("*.json"))


def test_batch_rerun_is_served_from_cache(endpoint, mock_server, tmp_path):
    batch_client(endpoint, tmp_path / "cache").run(questions(3))
    rerun = batch_client(endpoint, tmp_path / "cache")
    replies = rerun.run(questions(3))
    assert all(reply.cached for reply in replies)
    assert mock_server.counts["batches"] == 1
    assert rerun.usage.counts["requests"] == 0


def test_batch_item_error_is_failure(endpoint, mock_server, tmp_path):
    mock_server.rules["question 1"] = "500"
    replies = batch_client(endpoint, tmp_path / "cache").run(questions(3))
    assert replies[0].failure is None
    assert replies[1].failure.reason == errors.BATCH_ITEM_FAILED
    assert "HTTP 500" in replies[1].failure.detail
    assert replies[2].failure is None


def test_batch_failed_as_whole_raises_and_forgets_it(endpoint, mock_server, tmp_path):
    mock_server.batch_failure = "line 1: unknown field"
    with pytest.raises(errors.BatchError, match="failed as a whole: invalid_input: line 1"):
        batch_client(endpoint, tmp_path / "cache").run(questions(2))
    assert not list((tmp_path / "cache" / "batches").glob("*.json"))

    mock_server.batch_failure = None
    replies = batch_client(endpoint, tmp_path / "cache").run(questions(2))
    assert all(reply.failure is None for reply in replies)
    assert mock_server.counts["batches"] == 2


CRASHING_RUN = textwrap.dedent(
    """
    import json
    import sys

    from corpusforge.generators.llm.client import LLMClient
    from corpusforge.generators.llm.endpoint import Endpoint, Secret
    from corpusforge.generators.llm.settings import LLMSettings
    from corpusforge.generators.llm.structured import chat_request

    base_url, cache, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    settings = LLMSettings.from_json({**settings, "mode": "batch", "cache": cache})
    endpoint = Endpoint(base_url, Secret(sys.argv[4]))
    client = LLMClient.open(settings, label="crash", endpoint=endpoint)
    requests = [
        chat_request("mock-model", [{"role": "user", "content": f"question {i}"}])
        for i in range(4)
    ]
    client.run(requests)
    """
)


def test_batch_resumes_after_crash(endpoint, mock_server, tmp_path):
    mock_server.chat_responder = answer_by_question
    mock_server.batch_polls_to_complete = 1
    cache = tmp_path / "cache"
    crashed = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASHING_RUN,
            mock_server.base_url,
            str(cache),
            json.dumps(FAST_SETTINGS),
            API_KEY,
        ],
        env={**os.environ, KILL_ENV: CRASH_AFTER_SUBMIT},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    [state_file] = (cache / "batches").glob("*.json")
    state = json.loads(state_file.read_text())
    assert state["batch_id"] == "batch_1"
    assert mock_server.counts["batches"] == 1

    replies = batch_client(endpoint, cache).run(questions(4))
    texts = [chat_text(reply).content for reply in replies]
    assert texts == [f"Reply to question {i}: \\boxed{{1}}" for i in range(4)]
    assert mock_server.counts["batches"] == 1
    assert mock_server.counts["files"] == 1
    assert not state_file.exists()
