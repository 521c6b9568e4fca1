"""Backends send one request to a model and return the reply JSON, or raise a typed error.

`OpenAIBackend` talks to any OpenAI-compatible server (OpenAI, a gateway, vLLM,
SGLang) through the official `openai` client, created with `max_retries=0` so
that `LLMClient` is the only retry layer. `OfflineBackend` returns replies from
deterministic functions that the caller registers per API path, without a network.

A backend raises `TransientError` for failures a retry may fix (429, 408, 409,
5xx, timeouts, dropped connections), `RequestRejected` for a request the server
rejects for good (400, 422), and an `LLMError` subclass for failures that stop
the shard (401, 403, 404, `insufficient_quota`).
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.llm.endpoint import Endpoint, redact
from corpusforge.generators.llm.errors import (
    BAD_REQUEST,
    LLMAuthError,
    LLMEndpointError,
    LLMFailure,
    LLMQuotaError,
    RequestRejected,
    TransientError,
)

log = logging.getLogger(__name__)

CHAT_COMPLETIONS = "/chat/completions"
COMPLETIONS = "/completions"
API_PATHS = (CHAT_COMPLETIONS, COMPLETIONS)

# Characters of an error body kept in messages.
MAX_ERROR_CHARS = 300
QUOTA_CODE = "insufficient_quota"


class Backend(Protocol):
    """Sends requests to one model endpoint. Methods are coroutines of one event loop."""

    name: str
    endpoint: str
    supports_batch: bool

    async def send(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send one request to `path` (such as /chat/completions) and return the reply JSON."""
        ...

    async def aclose(self) -> None: ...


Responder = Callable[[dict[str, Any]], dict[str, Any]]


class OfflineBackend:
    """Deterministic replies from local functions, one per API path; no network.

    A generator that supports the offline backend registers a responder for
    each path it uses. A path without one raises ConfigError naming the fix.
    """

    name = "offline"
    endpoint = "offline"
    supports_batch = False

    def __init__(self, responders: Mapping[str, Responder]) -> None:
        self.responders = dict(responders)

    async def send(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        responder = self.responders.get(path)
        if responder is None:
            raise ConfigError(
                f"the offline llm backend has no responder for {path} requests of this task; "
                "set llm_backend=openai and llm_model to use a model endpoint"
            )
        return responder(body)

    async def aclose(self) -> None:
        return None


class OpenAIBackend:
    """Requests through `openai.AsyncOpenAI`, one client per event loop, with SDK retries off."""

    name = "openai"
    supports_batch = True

    def __init__(self, endpoint: Endpoint, timeout_seconds: float) -> None:
        import openai

        self._openai = openai
        self._endpoint = endpoint
        self.endpoint = endpoint.display_url
        # Kept to redact the key from messages that quote the server.
        self.api_key = endpoint.api_key
        self.client = openai.AsyncOpenAI(
            base_url=endpoint.base_url,
            # The SDK refuses to start without a key; local servers often need none.
            api_key=endpoint.api_key.reveal() or "not-needed",
            max_retries=0,
            timeout=timeout_seconds,
        )

    async def send(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path not in API_PATHS:
            raise ConfigError(f"unsupported API path {path!r}; supported: {', '.join(API_PATHS)}")
        # The generic `post` sends the body as given, so server-specific fields (such as
        # vLLM's) pass through, and costs less CPU than the typed `create` methods.
        text = await self._call(
            f"POST {path}", lambda: self.client.post(path, body=body, cast_to=str)
        )
        try:
            reply = json.loads(text)
        except json.JSONDecodeError as error:
            detail = f"reply to POST {path} is not JSON ({error.msg} at character {error.pos})"
        else:
            if isinstance(reply, dict):
                return reply
            detail = f"reply to POST {path} is a JSON {type(reply).__name__}, not an object"
        raise TransientError(detail)

    async def upload_batch_file(self, name: str, content: bytes) -> str:
        uploaded = await self._call(
            "POST /files",
            lambda: self.client.files.create(
                file=(name, content, "application/jsonl"), purpose="batch"
            ),
        )
        return uploaded.id

    async def create_batch(self, input_file_id: str, path: str) -> dict[str, Any]:
        batch = await self._call(
            "POST /batches",
            lambda: self.client.batches.create(
                input_file_id=input_file_id, endpoint=f"/v1{path}", completion_window="24h"
            ),
        )
        return batch.model_dump(mode="json")

    async def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        batch = await self._call(
            f"GET /batches/{batch_id}", lambda: self.client.batches.retrieve(batch_id)
        )
        return batch.model_dump(mode="json")

    async def download_file(self, file_id: str) -> bytes:
        content = await self._call(
            f"GET /files/{file_id}/content", lambda: self.client.files.content(file_id)
        )
        return content.content

    async def aclose(self) -> None:
        await self.client.close()

    async def _call(self, what: str, make_call: Callable[[], Awaitable[Any]]) -> Any:
        """Await `make_call()`, turning `openai` exceptions into this module's errors.

        The translated error is raised outside the `except` block, so it carries
        no reference to the SDK exception, whose text or chained traceback could
        contain an error body that echoes the API key.
        """
        try:
            return await make_call()
        except self._openai.OpenAIError as error:
            translated = translate_error(self._openai, error, what, self._endpoint)
        raise translated


def translate_error(openai: Any, error: Exception, what: str, endpoint: Endpoint) -> Exception:
    """Return the TransientError, RequestRejected or LLMError for one `openai` exception."""
    where = f"{what} to {endpoint.display_url}"
    if isinstance(error, openai.APITimeoutError):
        return TransientError(f"{where} timed out")
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error.__context__
        reason = type(cause).__name__ if cause is not None else "connection error"
        return TransientError(f"{where} failed: connection lost ({reason})")
    if not isinstance(error, openai.APIStatusError):
        return TransientError(f"{where} failed: {type(error).__name__}")

    status = error.status_code
    text = f"{where} returned HTTP {status}: {_error_message(error, endpoint)}"
    if status == 429:
        if QUOTA_CODE in (error.code, error.type):
            return LLMQuotaError(
                f"{text}. The account behind the API key has no quota left; add credit or "
                "use another key, then run again."
            )
        return TransientError(
            text, retry_after=retry_after_seconds(error.response.headers), rate_limited=True
        )
    if status in (401, 403):
        return LLMAuthError(
            f"{text}. Check the API key: OPENAI_API_KEY on the command line, or the password "
            "of the Airflow Connection named by llm_conn_id."
        )
    if status == 404:
        return LLMEndpointError(
            f"{text}. Check the base URL (it usually ends in /v1) and llm_model."
        )
    if status in (408, 409) or status >= 500:
        return TransientError(text, retry_after=retry_after_seconds(error.response.headers))
    return RequestRejected(LLMFailure(BAD_REQUEST, text))


def _error_message(error: Any, endpoint: Endpoint) -> str:
    """Return the error body's message, with the key redacted and cut to MAX_ERROR_CHARS."""
    body = error.body
    if isinstance(body, dict):
        message = body.get("message") or json.dumps(body, ensure_ascii=True)
        if body.get("code"):
            message = f"{message} (code {body['code']})"
    elif body is not None:
        message = str(body)
    else:
        message = error.message
    message = redact(str(message), endpoint.api_key)
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS] + "..."
    return message


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Return the delay in seconds that a reply requests in `retry-after-ms` or `retry-after`.

    `retry-after` may be a number of seconds or an HTTP date. None means no usable header.
    """
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            value = float(milliseconds) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    header = headers.get("retry-after")
    if header is None:
        return None
    try:
        value = float(header)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        value = parsed.timestamp() - time.time()
    if not math.isfinite(value):
        return None
    return max(0.0, value)
