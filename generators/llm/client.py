"""The language-model client that every generator uses.

`LLMClient.run` takes a list of requests and returns one reply per request, in
the same order. It serves what it can from the response cache, sends the rest
with bounded async concurrency (or through the Batch API in batch mode), and
retries only transient failures, with exponential backoff and jitter and at
least the delay that a `Retry-After` header requests. Requests that fail for
good come back as `LLMReply.failure`, for the caller to quarantine. Failures
that no retry can fix (a rejected key, no quota, an open circuit breaker)
raise and stop the shard.

Callers run `run` from synchronous code, typically in the main thread, which
matters to callers that verify replies with math-verify: its timeout uses
signals, which work only in the main thread.

A client keeps one event loop and one backend across `run` calls. So the HTTP
connections of one block stay open for the next block, which would otherwise
open `concurrency` new ones. `close` ends them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from corpusforge.generators.errors import CorpusforgeError
from corpusforge.generators.llm.backends import Backend, OfflineBackend, OpenAIBackend, Responder
from corpusforge.generators.llm.cache import ResponseCache, cache_key
from corpusforge.generators.llm.endpoint import Endpoint, current_endpoint
from corpusforge.generators.llm.errors import (
    RETRIES_EXHAUSTED,
    LLMFailure,
    RequestRejected,
    TransientError,
)
from corpusforge.generators.llm.progress import Progress
from corpusforge.generators.llm.settings import LLMSettings
from corpusforge.generators.llm.throttle import AdaptiveLimiter, CircuitBreaker, backoff_delay
from corpusforge.generators.llm.usage import UsageStats, active_usage

log = logging.getLogger(__name__)

# Retry messages that a client logs one by one. After these it logs every RETRY_LOG_EVERY-th.
RETRY_LOG_FIRST = 10
RETRY_LOG_EVERY = 100
# Threads that read cache entries before a run, because object stores respond faster in parallel.
CACHE_READ_THREADS = 16


@dataclass(frozen=True)
class LLMRequest:
    """One request: the API path (such as /chat/completions), its JSON body and a sample index.

    Requests that differ only in `sample` are separate cache entries, so sample
    k + 1 gets a new reply. `label` names the record in log lines.
    """

    path: str
    body: dict[str, Any]
    sample: int = 0
    label: str = ""


@dataclass(frozen=True)
class LLMReply:
    """The reply JSON of one request, or the failure that left it without one."""

    response: dict[str, Any] | None = None
    failure: LLMFailure | None = None
    cached: bool = False


class LLMClient:
    """Sends requests to one backend with caching, retries, throttling and a circuit breaker."""

    def __init__(
        self,
        settings: LLMSettings,
        backend_factory: Callable[[], Backend],
        *,
        backend_name: str,
        endpoint: str,
        label: str,
        cache: ResponseCache | None,
        usage: UsageStats | None = None,
    ) -> None:
        self.settings = settings
        self.backend_factory = backend_factory
        self.backend_name = backend_name
        self.endpoint = endpoint
        self.label = label
        self.cache = cache
        self.usage = usage if usage is not None else active_usage()
        self.usage.note_client(backend_name, settings.model, endpoint)
        self.limiter = AdaptiveLimiter(settings.concurrency, settings.rate_limit_streak)
        self.breaker = CircuitBreaker(settings.breaker_failures, endpoint, label)
        self.jitter = random.Random()
        self._retries_logged = 0
        self._cache_writes: list[asyncio.Future[None]] = []
        self._session = _Session(backend_factory)
        # Closes the loop and the connections of a client that was never closed.
        self._finalizer = weakref.finalize(self, self._session.close)

    @classmethod
    def open(
        cls,
        settings: LLMSettings,
        *,
        label: str,
        offline_responders: Mapping[str, Responder] | None = None,
        endpoint: Endpoint | None = None,
    ) -> LLMClient:
        """Return a client for `settings.backend`.

        The offline backend replies with `offline_responders` and uses no cache.
        The openai backend uses `endpoint`, else the one activated with
        `use_endpoint`, else OPENAI_BASE_URL and OPENAI_API_KEY.
        """
        if settings.backend == "offline":
            responders = dict(offline_responders or {})
            return cls(
                settings,
                lambda: OfflineBackend(responders),
                backend_name="offline",
                endpoint="offline",
                label=label,
                cache=None,
            )
        resolved = endpoint or current_endpoint()
        return cls(
            settings,
            lambda: OpenAIBackend(resolved, settings.timeout_seconds),
            backend_name="openai",
            endpoint=resolved.display_url,
            label=label,
            cache=ResponseCache(settings.cache) if settings.cache else None,
        )

    def run(self, requests: Sequence[LLMRequest]) -> list[LLMReply]:
        """Return one reply per request, in order; identical requests are sent once."""
        if not requests:
            return []
        keys = [cache_key(self.endpoint, r.path, r.body, r.sample) for r in requests]
        unique: dict[str, LLMRequest] = {}
        for key, request in zip(keys, requests, strict=True):
            unique.setdefault(key, request)

        progress = Progress(self.label, len(unique), self.settings.progress_seconds)
        replies = self._read_cache(list(unique), progress)
        pending = {key: request for key, request in unique.items() if key not in replies}
        if pending:
            replies.update(
                self._session.run(lambda backend: self._run_async(backend, pending, progress))
            )
        progress.finish()
        return [replies[key] for key in keys]

    def close(self) -> None:
        """Close the backend's connections and the client's event loop. `run` opens them again."""
        self._session.close()

    def _read_cache(self, keys: list[str], progress: Progress) -> dict[str, LLMReply]:
        if self.cache is None:
            return {}
        with ThreadPoolExecutor(max_workers=min(CACHE_READ_THREADS, len(keys))) as pool:
            entries = list(pool.map(self.cache.get, keys))
        replies = {}
        for key, response in zip(keys, entries, strict=True):
            if response is not None:
                replies[key] = LLMReply(response, None, cached=True)
                self.usage.add("cached")
                self.usage.add("succeeded")
                progress.advance(cached=True)
        return replies

    async def _run_async(
        self, backend: Backend, pending: dict[str, LLMRequest], progress: Progress
    ) -> dict[str, LLMReply]:
        self.limiter.start_loop()
        if self.settings.mode == "batch" and backend.supports_batch:
            from corpusforge.generators.llm.batch import BatchRunner

            return await BatchRunner(self, backend).run(pending, progress)
        return await self._run_online(backend, pending, progress)

    async def _run_online(
        self, backend: Backend, pending: dict[str, LLMRequest], progress: Progress
    ) -> dict[str, LLMReply]:
        queue = iter(list(pending.items()))
        results: dict[str, LLMReply] = {}

        async def worker() -> None:
            for key, request in queue:
                reply = await self._send_with_retries(backend, key, request)
                results[key] = reply
                progress.advance(failed=reply.failure is not None)

        workers = min(self.settings.concurrency, len(pending))
        fatal: BaseException | None = None
        self._cache_writes = []
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        except BaseExceptionGroup as errors:
            fatal = _first_error(errors)
        # Replies received before a fatal error are cached too, so a rerun resumes.
        write_errors = await asyncio.gather(*self._cache_writes, return_exceptions=True)
        self._cache_writes = []
        fatal = fatal or next((e for e in write_errors if isinstance(e, BaseException)), None)
        if fatal is not None:
            # Raised outside the except block, so the task group's traceback does not repeat it.
            raise fatal
        return results

    async def _send_with_retries(self, backend: Backend, key: str, request: LLMRequest) -> LLMReply:
        attempts = self.settings.max_attempts
        failure: LLMFailure | None = None
        for attempt in range(1, attempts + 1):
            self.breaker.check()
            await self.limiter.acquire()
            self.usage.add("requests")
            if attempt > 1:
                self.usage.add("retries")
            try:
                response = await backend.send(request.path, request.body)
            except TransientError as error:
                transient: TransientError | None = error
            except RequestRejected as error:
                self.breaker.record_success()
                failure = error.failure
                break
            else:
                transient = None
            finally:
                await self.limiter.release()

            if transient is None:
                self.limiter.on_success()
                self.breaker.record_success()
                self.count_reply(response, batch=False)
                if self.cache is not None:
                    # Written in the background: the worker sends its next request meanwhile,
                    # and _run_online waits for every write before it returns.
                    write = asyncio.to_thread(
                        self.cache.put, key, response, path=request.path, sample=request.sample
                    )
                    self._cache_writes.append(asyncio.ensure_future(write))
                return LLMReply(response)

            if transient.rate_limited:
                self.limiter.on_rate_limit()
            self.breaker.record_failure(transient.detail)
            if attempt == attempts:
                failure = LLMFailure(
                    RETRIES_EXHAUSTED, f"{transient.detail}; gave up after {attempts} attempts"
                )
                break
            delay = backoff_delay(
                attempt,
                self.settings.backoff_seconds,
                self.settings.max_backoff_seconds,
                self.jitter,
                transient.retry_after,
            )
            self._log_retry(request, transient, attempt, delay)
            await asyncio.sleep(delay)

        assert failure is not None
        self.record_failure(request, failure)
        return LLMReply(None, failure)

    async def store_reply(
        self, key: str, request: LLMRequest, response: dict[str, Any], *, batch: bool
    ) -> None:
        """Count a received reply's tokens and cost, and write it to the cache."""
        self.count_reply(response, batch=batch)
        if self.cache is not None:
            await asyncio.to_thread(
                self.cache.put, key, response, path=request.path, sample=request.sample
            )

    def count_reply(self, response: dict[str, Any], *, batch: bool) -> None:
        """Count a received reply, its tokens and its cost."""
        self.usage.add("succeeded")
        self.count_tokens(response, batch=batch)

    def record_failure(self, request: LLMRequest, failure: LLMFailure) -> None:
        self.usage.add_failure(failure.reason)
        log.warning(
            "%s: request for %s failed (%s): %s",
            self.label,
            request.label or "a record",
            failure.reason,
            failure.detail,
        )

    def count_tokens(self, response: dict[str, Any], *, batch: bool) -> None:
        usage = response.get("usage") if isinstance(response, dict) else None
        usage = usage if isinstance(usage, dict) else {}
        prompt = _token_count(usage.get("prompt_tokens"))
        completion = _token_count(usage.get("completion_tokens"))
        model = self.settings.model or ""
        prefix = "batch_" if batch else ""
        input_price = self.settings.price(model, prefix + "input")
        output_price = self.settings.price(model, prefix + "output")
        if self.backend_name == "offline":
            cost: float | None = 0.0
        elif input_price is None or output_price is None:
            cost = None
        else:
            cost = (prompt * input_price + completion * output_price) / 1_000_000
        self.usage.add_tokens(prompt, completion, cost)

    def _log_retry(
        self, request: LLMRequest, error: TransientError, attempt: int, delay: float
    ) -> None:
        self._retries_logged += 1
        count = self._retries_logged
        if count <= RETRY_LOG_FIRST or count % RETRY_LOG_EVERY == 0:
            suffix = "" if count <= RETRY_LOG_FIRST else f" ({count} retries so far)"
            log.warning(
                "%s: retrying %s in %.1f s after attempt %d of %d: %s%s",
                self.label,
                request.label or "a request",
                delay,
                attempt,
                self.settings.max_attempts,
                error.detail,
                suffix,
            )


def _token_count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _first_error(errors: BaseExceptionGroup) -> BaseException:
    """Return the exception that stopped a task group: a shard-stopping error if there is one."""
    flat: list[BaseException] = []

    def collect(group: BaseExceptionGroup) -> None:
        for error in group.exceptions:
            if isinstance(error, BaseExceptionGroup):
                collect(error)
            else:
                flat.append(error)

    collect(errors)
    for error in flat:
        if isinstance(error, CorpusforgeError):
            return error
    return flat[0]


class _Session:
    """The event loop and backend that a client reuses across `run` calls.

    The loop is an `asyncio.Runner` of the calling thread. When that thread
    already runs an event loop, each call runs in a worker thread with its own
    loop and backend, closed after the call, because a backend's connections
    belong to the loop that opened them.
    """

    def __init__(self, backend_factory: Callable[[], Backend]) -> None:
        self.backend_factory = backend_factory
        self.runner: asyncio.Runner | None = None
        self.backend: Backend | None = None
        self.thread: int | None = None

    def run(self, make_coroutine: Callable[[Backend], Any]) -> Any:
        """Run `make_coroutine(backend)` to completion from synchronous code."""
        # Decided outside an `except` block, so errors of the run carry no RuntimeError context.
        if _loop_running():
            with ThreadPoolExecutor(max_workers=1) as pool:
                return pool.submit(asyncio.run, self._run_once(make_coroutine)).result()
        if self.runner is not None and self.thread != threading.get_ident():
            # An event loop belongs to one thread: a call from another one starts afresh.
            self.close()
        if self.runner is None:
            self.runner = asyncio.Runner()
            self.thread = threading.get_ident()
        return self.runner.run(self._run_kept(make_coroutine))

    async def _run_kept(self, make_coroutine: Callable[[Backend], Any]) -> Any:
        if self.backend is None:
            self.backend = self.backend_factory()
        return await make_coroutine(self.backend)

    async def _run_once(self, make_coroutine: Callable[[Backend], Any]) -> Any:
        backend = self.backend_factory()
        try:
            return await make_coroutine(backend)
        finally:
            await backend.aclose()

    def close(self) -> None:
        runner, backend = self.runner, self.backend
        self.runner = self.backend = self.thread = None
        if runner is None:
            return
        if _loop_running():
            # Garbage collection inside a running event loop finalized the client: its
            # loop cannot run here, so the connections close when the process ends.
            log.debug("left an unclosed llm client's event loop to the garbage collector")
            return
        try:
            if backend is not None:
                runner.run(backend.aclose())
            runner.close()
        except RuntimeError as error:
            log.debug("could not close the llm client's event loop: %s", error)


def _loop_running() -> bool:
    """Return whether the calling thread is running an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
