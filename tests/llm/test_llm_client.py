"""LLMClient against the mock server: retries, fail-fast, throttling, circuit breaker, cache."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from llm_helpers import FAST_SETTINGS
from mock_openai import MockOpenAI

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.llm import errors
from corpusforge.generators.llm.backends import COMPLETIONS
from corpusforge.generators.llm.client import LLMClient, LLMRequest
from corpusforge.generators.llm.endpoint import Endpoint
from corpusforge.generators.llm.settings import LLMSettings
from corpusforge.generators.llm.structured import chat_request, chat_text
from corpusforge.generators.llm.usage import UsageStats

pytest_plugins = ["llm_fixtures"]


def make_client(
    endpoint: Endpoint, cache: Path | None = None, **overrides
) -> tuple[LLMClient, UsageStats]:
    settings = LLMSettings.from_json(
        {**FAST_SETTINGS, "cache": str(cache) if cache else None, **overrides}
    )
    client = LLMClient.open(settings, label="test", endpoint=endpoint)
    client.usage = UsageStats()
    return client, client.usage


def questions(count: int, sample: int = 0) -> list[LLMRequest]:
    return [
        chat_request("mock-model", [{"role": "user", "content": f"question {i}"}], sample=sample)
        for i in range(count)
    ]


def test_client_empty_request_list(endpoint, mock_server):
    client, _ = make_client(endpoint)
    assert client.run([]) == []
    assert mock_server.counts["/chat/completions"] == 0


def test_client_one_request_returns_reply(endpoint, mock_server):
    client, usage = make_client(endpoint)
    [reply] = client.run(questions(1))
    assert reply.failure is None
    assert chat_text(reply).content.endswith("\\boxed{42}.")
    assert usage.counts["requests"] == 1
    assert usage.counts["prompt_tokens"] == 10


@pytest.mark.parametrize("fault", ["429", "500", "drop", "slow"])
def test_client_retries_transient_fault(endpoint, mock_server, fault):
    mock_server.slow_seconds = 0.6
    mock_server.faults.extend([fault, fault])
    client, usage = make_client(endpoint, concurrency=1, timeout_seconds=0.3)
    [reply] = client.run(questions(1))
    assert reply.failure is None, reply.failure
    assert mock_server.counts["/chat/completions"] == 3
    assert usage.counts["retries"] == 2


def test_client_gives_up_after_max_attempts(endpoint, mock_server):
    mock_server.faults.extend(["500"] * 5)
    client, usage = make_client(endpoint, concurrency=1, max_attempts=3)
    [reply] = client.run(questions(1))
    assert reply.failure.reason == errors.RETRIES_EXHAUSTED
    assert "HTTP 500" in reply.failure.detail
    assert "3 attempts" in reply.failure.detail
    assert mock_server.counts["/chat/completions"] == 3
    assert usage.failures == {errors.RETRIES_EXHAUSTED: 1}


@pytest.mark.parametrize(
    ("fault", "error_type", "words"),
    [
        ("401", errors.LLMAuthError, "Check the API key"),
        ("quota", errors.LLMQuotaError, "no quota left"),
    ],
)
def test_client_fails_fast_without_retry(endpoint, mock_server, fault, error_type, words):
    mock_server.faults.append(fault)
    client, _ = make_client(endpoint, concurrency=1)
    with pytest.raises(error_type) as caught:
        client.run(questions(1))
    assert words in str(caught.value)
    assert mock_server.counts["/chat/completions"] == 1


def test_client_bad_request_is_item_failure(endpoint, mock_server):
    mock_server.rules["question 1"] = "bad_request"
    client, _ = make_client(endpoint)
    replies = client.run(questions(3))
    assert [reply.failure is None for reply in replies] == [True, False, True]
    assert replies[1].failure.reason == errors.BAD_REQUEST
    assert "HTTP 400" in replies[1].failure.detail
    assert mock_server.counts["/chat/completions"] == 3


def test_client_honours_retry_after(endpoint, mock_server):
    mock_server.retry_after = "0.6"
    mock_server.faults.append("429")
    client, _ = make_client(endpoint, concurrency=1)
    [reply] = client.run(questions(1))
    assert reply.failure is None
    first, second = mock_server.request_times
    # The backoff alone would wait at most max_backoff_seconds = 0.05 s.
    assert second - first >= 0.6


def test_client_circuit_breaker_stops_shard(endpoint, mock_server):
    mock_server.rules["question"] = "500"
    client, _ = make_client(endpoint, concurrency=2, max_attempts=10, breaker_failures=6)
    started = time.monotonic()
    with pytest.raises(errors.CircuitOpenError) as caught:
        client.run(questions(20))
    message = str(caught.value)
    assert "circuit breaker opened" in message
    assert "6 requests in a row" in message
    assert endpoint.display_url in message
    assert "HTTP 500" in message
    assert "run the shard again" in message
    assert mock_server.counts["/chat/completions"] < 10
    assert time.monotonic() - started < 5
    assert caught.value.retryable


def test_client_halves_concurrency_on_sustained_429(endpoint, mock_server, caplog):
    mock_server.delay = 0.05
    mock_server.faults.extend(["429"] * 12)
    client, _ = make_client(endpoint, concurrency=8, max_attempts=10, rate_limit_streak=3)
    with caplog.at_level("WARNING", logger="corpusforge.generators.llm.throttle"):
        replies = client.run(questions(40))
    assert all(reply.failure is None for reply in replies)
    halvings = [r.getMessage() for r in caplog.records if "halved concurrency" in r.getMessage()]
    assert [message.split(" after")[0] for message in halvings] == [
        "halved concurrency to 4",
        "halved concurrency to 2",
        "halved concurrency to 1",
    ]
    assert client.limiter.lowest == 1
    # The first requests after the 429s ran with the lowered limit of 1, then 2, then 3.
    # The server counts a request until its reply is written, so allow one more.
    assert max(mock_server.in_flight_history[12:18]) <= 4


def test_client_limiter_grows_back_slowly():
    from corpusforge.generators.llm.throttle import AdaptiveLimiter

    limiter = AdaptiveLimiter(8, rate_limit_streak=2)
    for _ in range(4):
        limiter.on_rate_limit()
    assert limiter.limit == 2
    for _ in range(2):
        limiter.on_success()
    assert limiter.limit == 3
    for _ in range(3):
        limiter.on_success()
    assert limiter.limit == 4
    for _ in range(1000):
        limiter.on_success()
    assert limiter.limit == 8


def test_client_cache_serves_rerun(endpoint, mock_server, tmp_path):
    client, usage = make_client(endpoint, cache=tmp_path / "cache")
    first = client.run(questions(5))
    assert mock_server.counts["/chat/completions"] == 5

    rerun_client, rerun_usage = make_client(endpoint, cache=tmp_path / "cache")
    second = rerun_client.run(questions(5))
    assert mock_server.counts["/chat/completions"] == 5
    assert [reply.response for reply in second] == [reply.response for reply in first]
    assert all(reply.cached for reply in second)
    assert rerun_usage.counts["cached"] == 5
    assert rerun_usage.counts["requests"] == 0


def test_client_keeps_connections_between_runs(endpoint, mock_server):
    client, _ = make_client(endpoint, concurrency=4)
    for block in range(3):
        requests = [
            chat_request("mock-model", [{"role": "user", "content": f"block {block} item {i}"}])
            for i in range(4)
        ]
        assert all(reply.failure is None for reply in client.run(requests))
    assert mock_server.counts["/chat/completions"] == 12
    assert mock_server.connections <= 4

    client.close()
    client.run(questions(4))
    assert 4 < mock_server.connections <= 8


def test_client_breaker_keeps_cached_replies(endpoint, mock_server, tmp_path):
    mock_server.rules["bad"] = "500"
    client, _ = make_client(
        endpoint, cache=tmp_path / "cache", concurrency=1, max_attempts=10, breaker_failures=3
    )
    good = [
        chat_request("mock-model", [{"role": "user", "content": f"good {i}"}]) for i in range(3)
    ]
    bad = [chat_request("mock-model", [{"role": "user", "content": f"bad {i}"}]) for i in range(3)]
    with pytest.raises(errors.CircuitOpenError):
        client.run(good + bad)
    sent = mock_server.counts["/chat/completions"]

    rerun, usage = make_client(endpoint, cache=tmp_path / "cache")
    replies = rerun.run(good)
    assert all(reply.cached for reply in replies)
    assert usage.counts["requests"] == 0
    assert mock_server.counts["/chat/completions"] == sent


def test_client_new_sample_index_sends_again(endpoint, mock_server, tmp_path):
    answers = iter(["first \\boxed{1}", "second \\boxed{2}"])
    mock_server.chat_responder = lambda body: next(answers)
    client, _ = make_client(endpoint, cache=tmp_path / "cache")
    [sample0] = client.run(questions(1, sample=0))
    [sample1] = client.run(questions(1, sample=1))
    [sample0_again] = client.run(questions(1, sample=0))
    assert mock_server.counts["/chat/completions"] == 2
    assert chat_text(sample0).content == "first \\boxed{1}"
    assert chat_text(sample1).content == "second \\boxed{2}"
    assert sample0_again.response == sample0.response


def test_client_sends_duplicate_requests_once(endpoint, mock_server):
    client, _ = make_client(endpoint)
    replies = client.run(questions(1) * 4)
    assert mock_server.counts["/chat/completions"] == 1
    assert len(replies) == 4
    assert all(reply.response == replies[0].response for reply in replies)


def test_client_cache_ignores_corrupt_entry(endpoint, mock_server, tmp_path):
    client, _ = make_client(endpoint, cache=tmp_path / "cache")
    client.run(questions(1))
    [entry] = (tmp_path / "cache" / "responses").rglob("*.json")
    entry.write_text("{truncated")
    [reply] = client.run(questions(1))
    assert reply.failure is None
    assert not reply.cached
    assert mock_server.counts["/chat/completions"] == 2
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_client_keeps_unicode_and_huge_prompts(endpoint, mock_server, tmp_path):
    problem = "Résous: ∑ 𝑥² = 42 ? 数学 " + "x" * 200_000
    request = chat_request("mock-model", [{"role": "user", "content": problem}])
    client, _ = make_client(endpoint, cache=tmp_path / "cache")
    [reply] = client.run([request])
    assert reply.failure is None
    assert mock_server.model_requests()[0]["messages"][0]["content"] == problem
    [cached] = client.run([request])
    assert cached.cached


def test_client_offline_backend_without_responder_raises():
    settings = LLMSettings.from_json({"backend": "offline"})
    client = LLMClient.open(settings, label="offline test")
    with pytest.raises(ConfigError, match="llm_backend=openai"):
        client.run(questions(1))


def test_client_offline_backend_is_deterministic():
    calls = []

    def respond(body):
        calls.append(body)
        return {"choices": [{"text": body["prompt"].upper()}]}

    settings = LLMSettings.from_json({"backend": "offline"})
    client = LLMClient.open(settings, label="offline", offline_responders={COMPLETIONS: respond})
    requests = [LLMRequest(COMPLETIONS, {"prompt": text}) for text in ("a", "b", "a")]
    first = client.run(requests)
    second = client.run(requests)
    assert [reply.response for reply in first] == [reply.response for reply in second]
    assert first[2].response["choices"][0]["text"] == "A"
    assert len(calls) == 4


def test_client_unknown_path_is_config_error(endpoint):
    client, _ = make_client(endpoint)
    with pytest.raises(ConfigError, match="unsupported API path"):
        client.run([LLMRequest("/embeddings", {"model": "m", "input": "x"})])


def test_client_counts_cost_from_price_table(endpoint, mock_server):
    prices = {"mock-model": {"input": 2.0, "output": 8.0}}
    client, usage = make_client(endpoint, prices=prices)
    client.run(questions(2))
    completion_tokens = usage.counts["completion_tokens"]
    expected = (20 * 2.0 + completion_tokens * 8.0) / 1_000_000
    assert usage.to_json()["estimated_cost_usd"] == pytest.approx(expected)


def test_client_cost_unknown_without_price(endpoint, mock_server):
    client, usage = make_client(endpoint)
    client.run(questions(1))
    assert usage.to_json()["estimated_cost_usd"] is None


def test_client_runs_inside_running_event_loop(endpoint, mock_server):
    import asyncio

    client, _ = make_client(endpoint)

    async def call_from_loop():
        return client.run(questions(2))

    replies = asyncio.run(call_from_loop())
    assert all(reply.failure is None for reply in replies)


def test_client_reply_not_json_is_retried(endpoint, mock_server, monkeypatch):
    original = MockOpenAI.model_reply
    broken = {"left": 1}

    def reply_once_broken(self, path, body, fault):
        if broken["left"]:
            broken["left"] -= 1
            return 200, {}, ["not", "an", "object"]
        return original(self, path, body, fault)

    monkeypatch.setattr(MockOpenAI, "model_reply", reply_once_broken)
    client, usage = make_client(endpoint, concurrency=1)
    [reply] = client.run(questions(1))
    assert reply.failure is None
    assert usage.counts["retries"] == 1
