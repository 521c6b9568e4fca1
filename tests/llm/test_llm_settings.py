"""Settings, usage accounting, retry delays, the cache file layout and progress reporting."""

from __future__ import annotations

import email.utils
import random
import time

import pytest

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.llm import progress
from corpusforge.generators.llm.backends import retry_after_seconds
from corpusforge.generators.llm.cache import ResponseCache, cache_key
from corpusforge.generators.llm.settings import DEFAULT_CACHE_DIR, LLMSettings
from corpusforge.generators.llm.throttle import MAX_RETRY_AFTER_SECONDS, backoff_delay
from corpusforge.generators.llm.usage import UsageStats, active_usage, collect_usage, merge_usage
from corpusforge.generators.manifest import content_fingerprint


def test_settings_defaults_are_offline():
    settings = LLMSettings.from_json(None)
    assert settings.backend == "offline"
    assert settings.mode == "online"
    assert settings.concurrency == 16


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"backend": "anthropic"}, "invalid llm_backend"),
        ({"backend": "openai"}, "llm_model is required"),
        ({"backend": "openai", "model": "  "}, "llm_model is required"),
        ({"mode": "stream"}, "invalid llm_mode"),
        ({"concurrency": 0}, "concurrency must be an integer from 1 to 256"),
        ({"concurrency": True}, "concurrency must be an integer"),
        ({"concurrency": "16"}, "concurrency must be an integer"),
        ({"timeout_seconds": 0}, "timeout_seconds must be positive"),
        ({"backoff_seconds": float("nan")}, "backoff_seconds must be 0 or more"),
        ({"batch_max_requests": 50_001}, "batch_max_requests"),
        ({"prices": {"m": {"input": -1}}}, "price input of model 'm'"),
        ({"prices": {"m": {"cached": 1}}}, "unknown price 'cached'"),
        ({"prices": ["m"]}, "prices must map model names"),
        ({"api_key": "sk-x"}, "unknown llm setting"),
    ],
)
def test_settings_reject_invalid_value(data, words):
    with pytest.raises(ConfigError, match=words):
        LLMSettings.from_json(data)


def test_settings_cache_defaults_under_output_root(tmp_path):
    settings = LLMSettings.from_json({}).with_cache_under(tmp_path)
    assert settings.cache == str(tmp_path.resolve() / DEFAULT_CACHE_DIR)
    explicit = LLMSettings.from_json({"cache": "memory://shared"}).with_cache_under(tmp_path)
    assert explicit.cache == "memory://shared"


def test_settings_batch_price_falls_back_to_online_price():
    settings = LLMSettings.from_json({"prices": {"m": {"input": 2, "output": 8, "batch_input": 1}}})
    assert settings.price("m", "batch_input") == 1.0
    assert settings.price("m", "batch_output") == 8.0
    assert settings.price("other", "input") is None


def test_usage_merge_sums_shards():
    first = UsageStats()
    first.note_client("openai", "m", "http://127.0.0.1:1/v1")
    first.add("requests", 3)
    first.add_failure("llm_truncated")
    first.add_tokens(100, 20, 0.5)
    second = UsageStats()
    second.note_client("openai", "m2", "http://127.0.0.1:1/v1")
    second.add("cached", 4)
    second.add_tokens(10, 2, 0.25)
    merged = merge_usage([first.to_json(), None, second.to_json()])
    assert merged["requests"] == 3
    assert merged["cached"] == 4
    assert merged["failed"] == 1
    assert merged["failures"] == {"llm_truncated": 1}
    assert merged["prompt_tokens"] == 110
    assert merged["models"] == ["m", "m2"]
    assert merged["endpoints"] == ["http://127.0.0.1:1/v1"]
    assert merged["estimated_cost_usd"] == pytest.approx(0.75)


def test_usage_merge_unknown_cost_and_empty():
    priced = UsageStats()
    priced.note_client("openai", "m", "e")
    priced.add_tokens(1, 1, 0.1)
    unpriced = UsageStats()
    unpriced.note_client("openai", "m", "e")
    unpriced.add_tokens(1, 1, None)
    assert unpriced.to_json()["estimated_cost_usd"] is None
    assert merge_usage([priced.to_json(), unpriced.to_json()])["estimated_cost_usd"] is None
    assert merge_usage([]) is None
    assert merge_usage([None, {}]) is None


def test_usage_collector_is_scoped():
    outside = active_usage()
    with collect_usage() as collected:
        assert active_usage() is collected
    assert active_usage() is not collected
    assert not outside.used


def test_fingerprint_ignores_llm_usage_and_cache_location():
    base = {
        "dataset": "stephint",
        "parameters": {"options": {"llm": {"backend": "openai", "model": "m", "cache": "/a"}}},
        "llm": {"requests": 10, "cached": 0},
    }
    rerun = {
        "dataset": "stephint",
        "parameters": {"options": {"llm": {"backend": "openai", "model": "m", "cache": "/b"}}},
        "llm": {"requests": 0, "cached": 10},
    }
    other_model = {
        "dataset": "stephint",
        "parameters": {"options": {"llm": {"backend": "openai", "model": "m2", "cache": "/a"}}},
    }
    assert content_fingerprint(base) == content_fingerprint(rerun)
    assert content_fingerprint(base) != content_fingerprint(other_model)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-4"}, 0.0),
        ({}, None),
    ],
)
def test_retry_after_header_parsing(headers, expected):
    assert retry_after_seconds(headers) == expected


def test_retry_after_http_date():
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after_seconds({"retry-after": date}) <= 31


def test_backoff_grows_with_jitter_and_honours_retry_after():
    rng = random.Random(1)
    delays = [backoff_delay(attempt, 1.0, 8.0, rng) for attempt in range(1, 7)]
    for attempt, delay in enumerate(delays, start=1):
        exponential = min(8.0, 2 ** (attempt - 1))
        assert exponential / 2 <= delay <= exponential
    assert backoff_delay(1, 1.0, 8.0, rng, retry_after=30.0) == 30.0
    assert backoff_delay(1, 1.0, 8.0, rng, retry_after=1e9) == MAX_RETRY_AFTER_SECONDS


def test_cache_key_separates_endpoint_body_and_sample():
    body = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
    key = cache_key("http://a/v1", "/chat/completions", body, 0)
    assert key == cache_key("http://a/v1", "/chat/completions", dict(body), 0)
    assert key != cache_key("http://b/v1", "/chat/completions", body, 0)
    assert key != cache_key("http://a/v1", "/chat/completions", body, 1)
    assert key != cache_key("http://a/v1", "/completions", body, 0)
    assert key != cache_key("http://a/v1", "/chat/completions", {**body, "seed": 1}, 0)


def test_cache_round_trip_keeps_lone_surrogates(tmp_path):
    cache = ResponseCache(str(tmp_path / "cache"))
    reply = {"choices": [{"message": {"content": "bad \ud800 text, 数学"}}]}
    cache.put("ab" * 32, reply, path="/chat/completions", sample=0)
    assert cache.get("ab" * 32) == reply
    assert cache.get("cd" * 32) is None
    assert [path.name for path in (tmp_path / "cache").rglob("*")] == [
        "responses",
        "ab",
        f"{'ab' * 32}.json",
    ]


def test_cache_works_on_fsspec_memory_filesystem():
    cache = ResponseCache("memory://corpusforge-llm-test")
    cache.put("ef" * 32, {"ok": True}, path="/completions", sample=2)
    assert cache.get("ef" * 32) == {"ok": True}
    cache.write_json({"batch_id": "b1"}, "batches", "job.json")
    assert cache.read_json("batches", "job.json") == {"batch_id": "b1"}
    cache.delete("batches", "job.json")
    assert cache.read_json("batches", "job.json") is None


def test_progress_reports_to_listener_and_log(caplog):
    snapshots = []
    progress.set_listener(snapshots.append)
    try:
        with caplog.at_level("INFO", logger="corpusforge.generators.llm.progress"):
            tracker = progress.Progress("shard 1 of 2", total=3, interval=0.0)
            tracker.advance(cached=True)
            tracker.advance(failed=True)
            tracker.advance()
            final = tracker.finish()
    finally:
        progress.set_listener(None)
    assert [snapshot.done for snapshot in snapshots] == [1, 2, 3]
    assert final.failed == 1
    assert final.cached == 1
    assert final.seconds_left == 0.0
    assert "shard 1 of 2: 3 of 3 requests done (1 failed, 1 cached)" in caplog.text
