"""Crash points for tests: `CORPUSFORGE_KILL_AT=<name>` kills the process at that point.

Tests use them to prove that a kill between two publishing steps, or in the
middle of a shard, leaves no partial release. Unset, a crash point does nothing.
"""

from __future__ import annotations

import logging
import os
import signal

KILL_ENV = "CORPUSFORGE_KILL_AT"

log = logging.getLogger(__name__)


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when CORPUSFORGE_KILL_AT equals `name`."""
    if os.environ.get(KILL_ENV) == name:
        log.warning("%s=%s: killing this process for a crash test", KILL_ENV, name)
        os.kill(os.getpid(), signal.SIGKILL)
