"""Stable seeds, random streams and record ids.

Every value comes from sha256 over its parts, never from Python's per-process
salted `hash()`, so the same parameters give the same bytes on every machine.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np


def _digest(*parts: object) -> bytes:
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(text.encode("utf-8")).digest()


def derive_seed(*parts: object) -> int:
    """Return a 63-bit seed derived from `parts`."""
    return int.from_bytes(_digest(*parts)[:8], "big") >> 1


def shard_rng(dataset: str, seed: int, shard_index: int, purpose: str = "") -> random.Random:
    """Return the random stream of one shard; `purpose` separates independent streams."""
    return random.Random(derive_seed(dataset, seed, shard_index, purpose))


def shard_numpy_rng(
    dataset: str, seed: int, shard_index: int, purpose: str = ""
) -> np.random.Generator:
    """Return the NumPy random stream of one shard."""
    return np.random.default_rng(derive_seed(dataset, seed, shard_index, purpose))


def stable_id(*parts: object, length: int = 16) -> str:
    """Return a hex record id derived from `parts`, such as (source, source id, variant)."""
    return _digest(*parts).hex()[:length]
