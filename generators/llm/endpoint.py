"""The endpoint URL and API key of an OpenAI-compatible server, resolved at run time.

The key never enters plan.json, manifests, cards, logs or error messages. On the
command line it comes from the `openai` client's own environment variables,
`OPENAI_BASE_URL` and `OPENAI_API_KEY`. A DAG task resolves its Airflow
Connection inside the task and activates it with `use_endpoint` around the
shard, so only the connection id travels through XCom.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

BASE_URL_ENV = "OPENAI_BASE_URL"
API_KEY_ENV = "OPENAI_API_KEY"
# The `openai` client's default when OPENAI_BASE_URL is not set.
DEFAULT_BASE_URL = "https://api.openai.com/v1"

REDACTED = "***"
# Bearer tokens and OpenAI-style keys that an error body may echo back.
_TOKEN_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
)


class Secret:
    """A string that prints as `***`, so it cannot reach a log line or message by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself, for the HTTP client only."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __reduce__(self):
        # Pickling would copy the key into task results or process pools.
        raise TypeError("Secret values cannot be pickled")


@dataclass(frozen=True)
class Endpoint:
    """Base URL of an OpenAI-compatible API (ending in `/v1` for most servers) and its key."""

    base_url: str
    api_key: Secret = field(repr=False)

    @property
    def display_url(self) -> str:
        """Return the base URL without user info, query or fragment, safe to log and publish."""
        return display_url(self.base_url)


def display_url(url: str) -> str:
    """Return `url` without user info, query string or fragment, which may contain credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def redact(text: str, *secrets: Secret | str | None) -> str:
    """Return `text` with every given secret and every bearer token or `sk-` key replaced by ***."""
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value and len(value) >= 4:
            text = text.replace(value, REDACTED)
    text = _TOKEN_PATTERNS[0].sub(lambda match: match.group(1) + REDACTED, text)
    return _TOKEN_PATTERNS[1].sub(REDACTED, text)


def endpoint_from_env() -> Endpoint:
    """Return the endpoint from OPENAI_BASE_URL (default: the OpenAI API) and OPENAI_API_KEY."""
    base_url = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return Endpoint(base_url, Secret(os.environ.get(API_KEY_ENV, "")))


_ACTIVE: contextvars.ContextVar[Endpoint | None] = contextvars.ContextVar(
    "corpusforge_llm_endpoint", default=None
)


@contextlib.contextmanager
def use_endpoint(endpoint: Endpoint) -> Iterator[Endpoint]:
    """Make `endpoint` the one that `current_endpoint` returns inside the `with` block."""
    token = _ACTIVE.set(endpoint)
    try:
        yield endpoint
    finally:
        _ACTIVE.reset(token)


def current_endpoint() -> Endpoint:
    """Return the endpoint activated by `use_endpoint`, else the one from the environment."""
    return _ACTIVE.get() or endpoint_from_env()
