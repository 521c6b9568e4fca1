"""Benchmark LLMClient throughput against the mock server with a fixed reply delay.

The mock server (tests/llm/mock_openai.py) runs in a separate process on
127.0.0.1 and replies to every chat request after `--delay` seconds, so the
bound is concurrency / delay requests per second (160 at the defaults). The
script sends `--requests` chat requests with an empty cache, then the same
requests again with the same cache, and prints one JSON object: throughput,
its share of the bound, the requests the rerun sent, and the machine's load.

`--block-size N` sends the requests in blocks of N through one client, as a
shard does. `--reconnect` closes the client's connections after every block,
which is what every block cost before the client kept them open.

    .venv/bin/python bench/llm_throughput_bench.py --requests 1600
    .venv/bin/python bench/llm_throughput_bench.py --requests 1600 --block-size 64 --reconnect
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

MOCK_SERVER = Path(__file__).resolve().parents[1] / "tests" / "llm" / "mock_openai.py"


def run_once(
    base_url: str, cache: str, concurrency: int, requests: int, block_size: int, reconnect: bool
) -> tuple[float, dict]:
    """Send the benchmark requests through a new client; return seconds and usage counts."""
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
    size = block_size or requests
    started = time.monotonic()
    replies = []
    for start in range(0, requests, size):
        replies += client.run(batch[start : start + size])
        if reconnect:
            client.close()
    seconds = time.monotonic() - started
    client.close()

    failed = sum(reply.failure is not None for reply in replies)
    if failed:
        raise SystemExit(f"{failed} of {requests} benchmark requests failed")
    return seconds, client.usage.to_json()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1600, help="chat requests per run")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--delay", type=float, default=0.1, help="server reply delay in seconds")
    parser.add_argument(
        "--block-size", type=int, default=0, help="requests per client.run call (0: all at once)"
    )
    parser.add_argument(
        "--reconnect", action="store_true", help="close the connections after every block"
    )
    parser.add_argument("--out", type=Path, help="also write the result JSON to this file")
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, str(MOCK_SERVER), "--delay", str(args.delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = server.stdout.readline().strip()
        # One request first, so imports stay out of the timing.
        with tempfile.TemporaryDirectory() as warm_cache:
            run_once(base_url, warm_cache, 1, 1, 0, False)
        load_before = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as cache:
            run = (args.concurrency, args.requests, args.block_size, args.reconnect)
            seconds, usage = run_once(base_url, cache, *run)
            rerun_seconds, rerun_usage = run_once(base_url, cache, *run)
        load_after = os.getloadavg()[0]
    finally:
        server.terminate()
        server.wait(timeout=10)

    bound = args.concurrency / args.delay
    rate = args.requests / seconds
    result = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "delay_seconds": args.delay,
        "block_size": args.block_size or args.requests,
        "reconnect": args.reconnect,
        "bound_per_second": round(bound, 1),
        "throughput_per_second": round(rate, 1),
        "share_of_bound": round(rate / bound, 3),
        "first_run_requests_sent": usage["requests"],
        "first_run_retries": usage["retries"],
        "rerun_requests_sent": rerun_usage["requests"],
        "rerun_cached": rerun_usage["cached"],
        "rerun_seconds": round(rerun_seconds, 2),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
            "python": platform.python_version(),
            "load_average_1min_before": round(load_before, 2),
            "load_average_1min_after": round(load_after, 2),
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
