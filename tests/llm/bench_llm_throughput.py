"""Benchmark LLMClient throughput against the mock server with a fixed reply delay.

The mock server runs in a separate process on 127.0.0.1 and replies to every chat
request after `--delay` seconds, so the bound is concurrency / delay requests
per second (160 at the defaults). The script sends `--requests` chat requests
once with an empty cache, then again with the same cache, and prints one JSON
object: the throughput, its share of the bound, and the requests the rerun sent.

    .venv/bin/python tests/llm/bench_llm_throughput.py --requests 1600

Pytest does not collect this file; it is not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from corpusforge.generators.llm.client import LLMClient
from corpusforge.generators.llm.endpoint import Endpoint, Secret
from corpusforge.generators.llm.settings import LLMSettings
from corpusforge.generators.llm.structured import chat_request
from corpusforge.generators.llm.usage import UsageStats

MOCK_SERVER = Path(__file__).with_name("mock_openai.py")


def run_once(base_url: str, cache: str, concurrency: int, requests: int) -> tuple[float, dict]:
    settings = LLMSettings.from_json(
        {
            "backend": "openai",
            "model": "bench-model",
            "concurrency": concurrency,
            "cache": cache,
            "progress_seconds": 3600,
        }
    )
    client = LLMClient.open(
        settings, label="benchmark", endpoint=Endpoint(base_url, Secret("sk-bench"))
    )
    client.usage = UsageStats()
    batch = [
        chat_request("bench-model", [{"role": "user", "content": f"question {i}"}])
        for i in range(requests)
    ]
    started = time.monotonic()
    replies = client.run(batch)
    seconds = time.monotonic() - started
    failed = sum(reply.failure is not None for reply in replies)
    if failed:
        raise SystemExit(f"{failed} of {requests} benchmark requests failed")
    return seconds, client.usage.to_json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1600, help="chat requests per run")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--delay", type=float, default=0.1, help="server reply delay, seconds")
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, str(MOCK_SERVER), "--delay", str(args.delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = server.stdout.readline().strip()
        # One request first, so imports and connection setup stay out of the timing.
        with tempfile.TemporaryDirectory() as warm_cache:
            run_once(base_url, warm_cache, 1, 1)
        with tempfile.TemporaryDirectory() as cache:
            seconds, usage = run_once(base_url, cache, args.concurrency, args.requests)
            rerun_seconds, rerun_usage = run_once(base_url, cache, args.concurrency, args.requests)
    finally:
        server.terminate()
        server.wait(timeout=10)

    bound = args.concurrency / args.delay
    rate = args.requests / seconds
    print(
        json.dumps(
            {
                "requests": args.requests,
                "concurrency": args.concurrency,
                "delay_seconds": args.delay,
                "bound_per_second": round(bound, 1),
                "throughput_per_second": round(rate, 1),
                "share_of_bound": round(rate / bound, 3),
                "first_run_requests_sent": usage["requests"],
                "rerun_requests_sent": rerun_usage["requests"],
                "rerun_cached": rerun_usage["cached"],
                "rerun_seconds": round(rerun_seconds, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
