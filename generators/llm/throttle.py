"""Concurrency control of one client: adaptive limit, circuit breaker and retry delays."""

from __future__ import annotations

import asyncio
import logging
import random

from corpusforge.generators.llm.errors import CircuitOpenError

log = logging.getLogger(__name__)

# Maximum wait in seconds that a Retry-After header can impose. A server asking
# for more gets this much, and the request fails later if it is still limited.
MAX_RETRY_AFTER_SECONDS = 600.0


class AdaptiveLimiter:
    """An async semaphore whose size halves on sustained rate limiting and grows back slowly.

    `rate_limit_streak` consecutive 429 replies, with no success in between,
    halve the limit (down to 1). After each run of `limit` consecutive successes
    the limit grows by one, up to `maximum`: additive increase, multiplicative
    decrease, as TCP congestion control does.
    """

    def __init__(self, maximum: int, rate_limit_streak: int = 3) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.rate_limit_streak = rate_limit_streak
        self.lowest = maximum
        self._in_flight = 0
        self._rate_limited_in_row = 0
        self._successes_in_row = 0
        self._condition = asyncio.Condition()

    def start_loop(self) -> None:
        """Prepare for a new event loop. The limit itself carries over from earlier loops."""
        self._in_flight = 0
        self._condition = asyncio.Condition()

    async def acquire(self) -> None:
        async with self._condition:
            await self._condition.wait_for(lambda: self._in_flight < self.limit)
            self._in_flight += 1

    async def release(self) -> None:
        async with self._condition:
            self._in_flight -= 1
            self._condition.notify_all()

    def on_success(self) -> None:
        self._rate_limited_in_row = 0
        self._successes_in_row += 1
        if self._successes_in_row >= self.limit and self.limit < self.maximum:
            self.limit += 1
            self._successes_in_row = 0
            log.info("raised concurrency to %d after %d successes", self.limit, self.limit - 1)

    def on_rate_limit(self) -> bool:
        """Count one 429 reply and return True when it halved the limit."""
        self._successes_in_row = 0
        self._rate_limited_in_row += 1
        if self._rate_limited_in_row < self.rate_limit_streak:
            return False
        self._rate_limited_in_row = 0
        if self.limit == 1:
            return False
        self.limit = max(1, self.limit // 2)
        self.lowest = min(self.lowest, self.limit)
        log.warning(
            "halved concurrency to %d after %d rate-limited replies in a row",
            self.limit,
            self.rate_limit_streak,
        )
        return True


class CircuitBreaker:
    """Stops a shard once `threshold` attempts in a row failed, instead of retrying forever.

    Any success resets the count. There is no half-open state, because the
    breaker serves one shard: the shard fails, and a later run of the shard
    starts with a closed breaker and its cached replies.
    """

    def __init__(self, threshold: int, endpoint: str, label: str) -> None:
        self.threshold = threshold
        self.endpoint = endpoint
        self.label = label
        self.failures_in_row = 0
        self.error: CircuitOpenError | None = None

    def record_success(self) -> None:
        self.failures_in_row = 0

    def record_failure(self, detail: str) -> None:
        """Count one failed attempt and raise CircuitOpenError when the threshold is reached."""
        self.failures_in_row += 1
        if self.error is None and self.failures_in_row >= self.threshold:
            self.error = CircuitOpenError(
                f"circuit breaker opened for {self.label}: {self.failures_in_row} requests in a "
                f"row to {self.endpoint} failed (last error: {detail}). Check that the endpoint "
                "is up and not rate limiting, then run the shard again; replies received so far "
                "are cached and will not be requested again."
            )
        self.check()

    def check(self) -> None:
        """Raise the CircuitOpenError once the breaker has opened."""
        if self.error is not None:
            raise self.error


def backoff_delay(
    attempt: int,
    base: float,
    maximum: float,
    rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """Return the seconds to wait before attempt `attempt + 1`, with `attempt` counting from 1.

    The exponential delay base * 2**(attempt - 1), capped at `maximum`, gets
    "equal jitter": half of it plus a uniform random share of the other half,
    so clients that failed together do not retry together. A Retry-After value
    from the server is a lower bound, capped at MAX_RETRY_AFTER_SECONDS.
    """
    exponential = min(maximum, base * 2 ** (attempt - 1))
    delay = exponential / 2 + rng.uniform(0, exponential / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return delay
