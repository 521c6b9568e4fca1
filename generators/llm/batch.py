"""Batch mode: send a run's uncached requests through the OpenAI Batch API.

For each API path, and each block of at most `batch_max_requests` requests,
the runner writes the JSONL input file (one line per request, `custom_id` =
the request's cache key), uploads it, creates the batch, polls it every
`batch_poll_seconds`, downloads the output and error files, and maps every
line back to its request by `custom_id`. Replies go to the response cache.

Resuming: the uploaded file id and the batch id are saved under
`<cache>/batches/<job>.json` as soon as they exist, where the job name is a
hash of the path and the sorted cache keys. A run that restarts after a crash
with the same requests finds that file and polls the batch it already
submitted instead of paying for a second one. The file is deleted once the
results are cached, or when the batch failed as a whole, so that a rerun
submits a new batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from corpusforge.generators.faults import crash_point
from corpusforge.generators.llm.endpoint import redact
from corpusforge.generators.llm.errors import (
    BATCH_ITEM_FAILED,
    BatchError,
    LLMFailure,
    RequestRejected,
    TransientError,
)
from corpusforge.generators.llm.progress import Progress
from corpusforge.generators.llm.throttle import backoff_delay

if TYPE_CHECKING:
    from corpusforge.generators.llm.client import LLMClient, LLMReply, LLMRequest

log = logging.getLogger(__name__)

TERMINAL_STATUSES = ("completed", "failed", "expired", "cancelled")
# Crash point after a batch was created and its id saved, for resume tests.
CRASH_AFTER_SUBMIT = "llm_batch_submitted"


def job_name(path: str, keys: list[str]) -> str:
    """Return the name under which a block of requests saves its batch state."""
    digest = hashlib.sha256(path.encode())
    for key in sorted(keys):
        digest.update(b"\n" + key.encode())
    return digest.hexdigest()[:32]


class BatchRunner:
    """Runs the uncached requests of one `LLMClient.run` call as Batch API jobs."""

    def __init__(self, client: LLMClient, backend: Any) -> None:
        self.client = client
        self.backend = backend
        self.settings = client.settings
        self.cache = client.cache

    async def run(self, pending: dict[str, LLMRequest], progress: Progress) -> dict[str, LLMReply]:
        by_path: dict[str, list[tuple[str, LLMRequest]]] = {}
        for key, request in pending.items():
            by_path.setdefault(request.path, []).append((key, request))
        results: dict[str, LLMReply] = {}
        size = self.settings.batch_max_requests
        for path, items in by_path.items():
            for start in range(0, len(items), size):
                block = items[start : start + size]
                results.update(await self._run_job(path, block, progress))
        return results

    async def _run_job(
        self, path: str, items: list[tuple[str, LLMRequest]], progress: Progress
    ) -> dict[str, LLMReply]:
        job = job_name(path, [key for key, _ in items])
        state_parts = ("batches", f"{job}.json")
        state = (self.cache.read_json(*state_parts) if self.cache else None) or {}
        label = self.client.label

        if state.get("batch_id"):
            batch_id = state["batch_id"]
            log.info("%s: resuming batch %s of %d requests", label, batch_id, len(items))
        else:
            if not state.get("input_file_id"):
                content = b"".join(_input_line(key, path, request) for key, request in items)
                state["input_file_id"] = await self._call(
                    "upload the batch input file",
                    lambda: self.backend.upload_batch_file(f"corpusforge-{job}.jsonl", content),
                )
                self._save_state(state_parts, state)
            batch = await self._call(
                "create the batch", lambda: self.backend.create_batch(state["input_file_id"], path)
            )
            batch_id = state["batch_id"] = batch["id"]
            self._save_state(state_parts, state)
            self.client.usage.add("batches")
            log.info("%s: submitted batch %s of %d requests", label, batch_id, len(items))
            crash_point(CRASH_AFTER_SUBMIT)

        batch = await self._poll(batch_id)
        if batch["status"] == "failed":
            if self.cache is not None:
                self.cache.delete(*state_parts)
            raise BatchError(
                f"{label}: batch {batch_id} failed as a whole: {self._batch_errors(batch)}. "
                "Run the shard again to submit a new batch."
            )
        results = await self._collect(batch, items, progress)
        if self.cache is not None:
            self.cache.delete(*state_parts)
        return results

    async def _poll(self, batch_id: str) -> dict[str, Any]:
        last_status = None
        while True:
            batch = await self._call(
                f"poll batch {batch_id}", lambda: self.backend.retrieve_batch(batch_id)
            )
            status = batch.get("status")
            if status != last_status:
                counts = batch.get("request_counts") or {}
                log.info(
                    "%s: batch %s is %s (%s of %s requests done, %s failed)",
                    self.client.label,
                    batch_id,
                    status,
                    counts.get("completed", "?"),
                    counts.get("total", "?"),
                    counts.get("failed", "?"),
                )
                last_status = status
            if status in TERMINAL_STATUSES:
                return batch
            await asyncio.sleep(self.settings.batch_poll_seconds)

    async def _collect(
        self, batch: dict[str, Any], items: list[tuple[str, LLMRequest]], progress: Progress
    ) -> dict[str, LLMReply]:
        from corpusforge.generators.llm.client import LLMReply

        requests = dict(items)
        lines: list[dict[str, Any]] = []
        for name in ("output_file_id", "error_file_id"):
            file_id = batch.get(name)
            if file_id:
                content = await self._call(
                    f"download batch file {file_id}",
                    lambda f=file_id: self.backend.download_file(f),
                )
                lines.extend(_parse_lines(content, file_id))

        results: dict[str, LLMReply] = {}
        for line in lines:
            key = line.get("custom_id")
            if key not in requests or key in results:
                continue
            request = requests[key]
            self.client.usage.add("requests")
            response = line.get("response") or {}
            body = response.get("body")
            if response.get("status_code") == 200 and isinstance(body, dict):
                await self.client.store_reply(key, request, body, batch=True)
                results[key] = LLMReply(body)
                progress.advance()
                continue
            failure = LLMFailure(BATCH_ITEM_FAILED, self._item_error(line))
            self.client.record_failure(request, failure)
            results[key] = LLMReply(None, failure)
            progress.advance(failed=True)

        for key, request in items:
            if key not in results:
                failure = LLMFailure(
                    BATCH_ITEM_FAILED,
                    f"batch {batch['id']} ended with status {batch['status']} before this "
                    "request ran",
                )
                self.client.record_failure(request, failure)
                results[key] = LLMReply(None, failure)
                progress.advance(failed=True)
        return results

    async def _call(self, what: str, make_call: Callable[[], Awaitable[Any]]) -> Any:
        """Await one Batch API call, retrying transient errors like `LLMClient` does."""
        attempts = self.settings.max_attempts
        for attempt in range(1, attempts + 1):
            self.client.breaker.check()
            try:
                result = await make_call()
            except TransientError as error:
                self.client.breaker.record_failure(error.detail)
                if attempt == attempts:
                    raise BatchError(
                        f"{self.client.label}: could not {what}: {error.detail}; "
                        f"gave up after {attempts} attempts"
                    ) from None
                delay = backoff_delay(
                    attempt,
                    self.settings.backoff_seconds,
                    self.settings.max_backoff_seconds,
                    self.client.jitter,
                    error.retry_after,
                )
                log.warning(
                    "%s: retrying to %s in %.1f s: %s", self.client.label, what, delay, error.detail
                )
                await asyncio.sleep(delay)
                continue
            except RequestRejected as error:
                raise BatchError(
                    f"{self.client.label}: could not {what}: {error.failure.detail}"
                ) from None
            self.client.breaker.record_success()
            return result
        raise AssertionError("unreachable")

    def _save_state(self, parts: tuple[str, str], state: dict[str, Any]) -> None:
        if self.cache is not None:
            self.cache.write_json(state, *parts)

    def _batch_errors(self, batch: dict[str, Any]) -> str:
        errors = (batch.get("errors") or {}).get("data") or []
        messages = [
            f"{error.get('code') or 'error'}: {error.get('message') or ''}".strip()
            for error in errors[:5]
            if isinstance(error, dict)
        ]
        return self._redact("; ".join(messages) or "no error details were given")

    def _item_error(self, line: dict[str, Any]) -> str:
        response = line.get("response") or {}
        error = line.get("error") or (response.get("body") or {}).get("error") or {}
        message = error.get("message") if isinstance(error, dict) else str(error)
        status = response.get("status_code")
        text = f"batch request failed with HTTP {status}" if status else "batch request failed"
        if message:
            text += f": {message}"
        return self._redact(text[:500])

    def _redact(self, text: str) -> str:
        return redact(text, getattr(self.backend, "api_key", None))


def _input_line(key: str, path: str, request: LLMRequest) -> bytes:
    line = {"custom_id": key, "method": "POST", "url": f"/v1{path}", "body": request.body}
    return json.dumps(line, ensure_ascii=True, sort_keys=True).encode("ascii") + b"\n"


def _parse_lines(content: bytes, file_id: str) -> list[dict[str, Any]]:
    lines = []
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            log.warning(
                "skipping line %d of batch file %s: invalid JSON (%s)", number, file_id, error
            )
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines
