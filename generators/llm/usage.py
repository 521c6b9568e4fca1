"""Usage and cost accounting of language-model requests, per shard and per release.

`generate_shard` opens `collect_usage()` around a shard. Every client created in
that block adds its counts to the collector, and the shard's stats json gets
them under `llm`. `publish_release` sums the shards' sections into
`manifest["llm"]` with `merge_usage`. The section is left out of the content
fingerprint, because a rerun served from the cache makes no requests but
publishes the same rows.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

# Counters summed over shards. `requests` counts HTTP requests sent, retries
# included. `succeeded` counts replies received (cached ones included), `failed`
# requests that got no reply, and `cached` replies read from the cache.
COUNTERS = (
    "requests",
    "retries",
    "succeeded",
    "failed",
    "cached",
    "prompt_tokens",
    "completion_tokens",
    "batches",
)


@dataclass
class UsageStats:
    """Counts of one shard's language-model requests and their estimated cost.

    `estimated_cost_usd` is None when a model without a price in the price table
    used tokens.
    """

    backends: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    endpoints: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    failures: dict[str, int] = field(default_factory=dict)
    estimated_cost_usd: float | None = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, counter: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[counter] += amount

    def add_failure(self, reason: str) -> None:
        with self._lock:
            self.counts["failed"] += 1
            self.failures[reason] = self.failures.get(reason, 0) + 1

    def add_tokens(self, prompt: int, completion: int, cost: float | None) -> None:
        """Add one reply's tokens and its cost. A None cost makes the total unknown."""
        with self._lock:
            self.counts["prompt_tokens"] += prompt
            self.counts["completion_tokens"] += completion
            if cost is None:
                if prompt or completion:
                    self.estimated_cost_usd = None
            elif self.estimated_cost_usd is not None:
                self.estimated_cost_usd += cost

    def note_client(self, backend: str, model: str | None, endpoint: str | None) -> None:
        with self._lock:
            self.backends.add(backend)
            if model:
                self.models.add(model)
            if endpoint:
                self.endpoints.add(endpoint)

    @property
    def used(self) -> bool:
        return bool(self.backends)

    def to_json(self) -> dict[str, Any]:
        cost = self.estimated_cost_usd
        return {
            "backends": sorted(self.backends),
            "models": sorted(self.models),
            "endpoints": sorted(self.endpoints),
            **self.counts,
            "failures": dict(sorted(self.failures.items())),
            "estimated_cost_usd": round(cost, 6) if cost is not None else None,
        }


def merge_usage(sections: Iterable[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Sum the `llm` sections of shard stats into one release section, or None if all are empty."""
    present = [section for section in sections if section]
    if not present:
        return None
    merged: dict[str, Any] = {name: 0 for name in COUNTERS}
    lists: dict[str, set[str]] = {"backends": set(), "models": set(), "endpoints": set()}
    failures: dict[str, int] = {}
    cost: float | None = 0.0
    for section in present:
        for name in COUNTERS:
            merged[name] += int(section.get(name, 0))
        for name, values in lists.items():
            values.update(section.get(name, []))
        for reason, count in section.get("failures", {}).items():
            failures[reason] = failures.get(reason, 0) + int(count)
        shard_cost = section.get("estimated_cost_usd")
        cost = None if cost is None or shard_cost is None else cost + float(shard_cost)
    return {
        **{name: sorted(values) for name, values in lists.items()},
        **merged,
        "failures": dict(sorted(failures.items())),
        "estimated_cost_usd": round(cost, 6) if cost is not None else None,
    }


_ACTIVE: contextvars.ContextVar[UsageStats | None] = contextvars.ContextVar(
    "corpusforge_llm_usage", default=None
)


@contextlib.contextmanager
def collect_usage() -> Iterator[UsageStats]:
    """Collect the usage of every client created inside the `with` block into one UsageStats."""
    stats = UsageStats()
    token = _ACTIVE.set(stats)
    try:
        yield stats
    finally:
        _ACTIVE.reset(token)


def active_usage() -> UsageStats:
    """Return the collector opened by `collect_usage`, else a new one whose counts are discarded."""
    return _ACTIVE.get() or UsageStats()
