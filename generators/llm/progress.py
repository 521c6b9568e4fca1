"""Progress of language-model requests: log lines for task logs, and a hook for progress bars.

A client reports every finished request. At most every `interval` seconds, and
once at the end, a log line gives requests done, failed and cached, the rate
and the estimated time left. The command line registers a listener with
`set_listener` to show the same figures on its progress bar.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressSnapshot:
    """Counts of one client run. `rate` is requests finished per second, cached ones excluded."""

    label: str
    total: int
    done: int
    failed: int
    cached: int
    rate: float
    seconds_left: float | None

    def describe(self) -> str:
        left = "unknown" if self.seconds_left is None else _duration(self.seconds_left)
        return (
            f"{self.label}: {self.done} of {self.total} requests done "
            f"({self.failed} failed, {self.cached} cached), {self.rate:.1f}/s, {left} left"
        )


Listener = Callable[[ProgressSnapshot], None]

_listener: Listener | None = None
_listener_lock = threading.Lock()


def set_listener(listener: Listener | None) -> None:
    """Send every progress update of this process to `listener`; None removes it."""
    global _listener
    with _listener_lock:
        _listener = listener


class Progress:
    """Counts finished requests of one run and reports them."""

    def __init__(self, label: str, total: int, interval: float) -> None:
        self.label = label
        self.total = total
        self.interval = interval
        self.done = 0
        self.failed = 0
        self.cached = 0
        self._started = time.monotonic()
        self._last_log = self._started

    def advance(self, *, failed: bool = False, cached: bool = False) -> None:
        self.done += 1
        self.failed += failed
        self.cached += cached
        now = time.monotonic()
        snapshot = self.snapshot(now)
        if _listener is not None:
            _listener(snapshot)
        if now - self._last_log >= self.interval and self.done < self.total:
            self._last_log = now
            log.info("%s", snapshot.describe())

    def finish(self) -> ProgressSnapshot:
        snapshot = self.snapshot(time.monotonic())
        if self.total:
            log.info("%s", snapshot.describe())
        return snapshot

    def snapshot(self, now: float) -> ProgressSnapshot:
        elapsed = max(now - self._started, 1e-9)
        sent = self.done - self.cached
        rate = sent / elapsed
        remaining = self.total - self.done
        if remaining == 0:
            seconds_left: float | None = 0.0
        elif rate > 0:
            seconds_left = remaining / rate
        else:
            seconds_left = None
        return ProgressSnapshot(
            self.label, self.total, self.done, self.failed, self.cached, rate, seconds_left
        )


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
