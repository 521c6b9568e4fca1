"""Language-model settings shared by every dataset: backend, model, concurrency, cache, prices.

They arrive as the DAG Params `llm_backend`, `llm_model`, `llm_conn_id`,
`llm_mode`, `llm_concurrency` and `llm_cache` (or the command-line flags
`--llm-backend`, `--llm-model` and `--llm-option key=value`), are checked when
the run is planned, and are stored in plan.json as the option `llm`. They never
contain the endpoint URL or the API key: see `endpoint.py`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from corpusforge.generators.errors import ConfigError

BACKENDS = ("offline", "openai")
MODES = ("online", "batch")

# Name of the response cache folder under the output root, shared by every dataset.
DEFAULT_CACHE_DIR = ".llm-cache"
MAX_CONCURRENCY = 256

# The Batch API accepts at most 50,000 requests per input file.
BATCH_API_MAX_REQUESTS = 50_000

PRICE_KINDS = ("input", "output", "batch_input", "batch_output")


@dataclass(frozen=True)
class LLMSettings:
    """Settings of the language-model backend, as stored in plan.json.

    Times are in seconds. `prices` maps a model name to US dollars per million
    tokens under the keys `input`, `output` and optionally `batch_input` and
    `batch_output` (the Batch API price, which defaults to the online price).
    """

    backend: str = "offline"
    model: str | None = None
    # Airflow Connection that contains the endpoint URL (host) and key (password).
    conn_id: str | None = None
    mode: str = "online"
    concurrency: int = 16
    # Attempts per request, the first one included.
    max_attempts: int = 6
    timeout_seconds: float = 120.0
    # Base of the exponential backoff: attempt n waits about backoff * 2**(n-1), with jitter.
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    # Consecutive failed attempts, over all requests of a shard, that open the circuit breaker.
    breaker_failures: int = 20
    # Consecutive 429 replies that halve the concurrency.
    rate_limit_streak: int = 3
    # fsspec URL of the response cache; empty means <output_root>/.llm-cache.
    cache: str | None = None
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    batch_poll_seconds: float = 30.0
    batch_max_requests: int = BATCH_API_MAX_REQUESTS
    # Minimum time between two progress log lines.
    progress_seconds: float = 30.0

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> LLMSettings:
        """Check `data` and return the settings, raising ConfigError naming the invalid key."""
        data = dict(data or {})
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown llm setting(s) {unknown}; known: {sorted(known)}")
        values = {key: value for key, value in data.items() if value is not None}
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Raise ConfigError when a setting is out of range or the backend lacks a model."""
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"invalid llm_backend {self.backend!r}; valid backends: {', '.join(BACKENDS)}"
            )
        if self.mode not in MODES:
            raise ConfigError(f"invalid llm_mode {self.mode!r}; valid modes: {', '.join(MODES)}")

        if self.backend == "openai" and not (isinstance(self.model, str) and self.model.strip()):
            raise ConfigError(
                "llm_model is required with llm_backend=openai: name the model the endpoint serves"
            )

        _check_int("concurrency", self.concurrency, 1, MAX_CONCURRENCY)
        _check_int("max_attempts", self.max_attempts, 1, 100)
        _check_int("breaker_failures", self.breaker_failures, 1, 1_000_000)
        _check_int("rate_limit_streak", self.rate_limit_streak, 1, 1_000)
        _check_int("batch_max_requests", self.batch_max_requests, 1, BATCH_API_MAX_REQUESTS)

        for name in (
            "timeout_seconds",
            "backoff_seconds",
            "max_backoff_seconds",
            "batch_poll_seconds",
            "progress_seconds",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"llm setting {name} must be a number of seconds, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"llm setting {name} must be 0 or more seconds, got {value!r}")
        if self.timeout_seconds <= 0:
            raise ConfigError(
                f"llm setting timeout_seconds must be positive, got {self.timeout_seconds}"
            )

        _check_prices(self.prices)

    def with_cache_under(self, output_root: str | Path) -> LLMSettings:
        """Return these settings with an empty `cache` set to <output_root>/.llm-cache."""
        if self.cache:
            return self
        cache = str(Path(output_root).resolve() / DEFAULT_CACHE_DIR)
        return LLMSettings(**{**asdict(self), "cache": cache})

    def price(self, model: str, kind: str) -> float | None:
        """Return US dollars per million tokens of `kind` for `model`, or None when unknown."""
        table = self.prices.get(model) or {}
        if kind.startswith("batch_") and kind not in table:
            kind = kind.removeprefix("batch_")
        value = table.get(kind)
        return float(value) if value is not None else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _check_int(name: str, value: Any, minimum: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ConfigError(
            f"llm setting {name} must be an integer from {minimum} to {maximum}, got {value!r}"
        )


def _check_prices(prices: Any) -> None:
    if not isinstance(prices, dict):
        raise ConfigError(
            f"llm setting prices must map model names to prices, got {type(prices).__name__}"
        )
    for model, table in prices.items():
        if not isinstance(table, dict):
            raise ConfigError(f"prices of model {model!r} must be an object, got {table!r}")
        for kind, value in table.items():
            if kind not in PRICE_KINDS:
                raise ConfigError(
                    f"unknown price {kind!r} for model {model!r}; known: {', '.join(PRICE_KINDS)}"
                )
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(
                    f"price {kind} of model {model!r} must be US dollars per million tokens "
                    f"(a number >= 0), got {value!r}"
                )
