"""Failures of language-model requests.

Two kinds exist. An `LLMFailure` belongs to one request: the record that needed
it goes to `quarantine/` with the failure's reason, and the shard goes on. An
`LLMError` stops the shard, because no later request can succeed either (a
rejected key, an exhausted quota, an endpoint that keeps failing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corpusforge.generators.base import Rejected
from corpusforge.generators.errors import CorpusforgeError

# Quarantine reasons of failed requests, counted in the manifest.
TRUNCATED = "llm_truncated"
REFUSAL = "llm_refusal"
CONTENT_FILTER = "llm_content_filter"
INVALID_JSON = "llm_invalid_json"
SCHEMA_MISMATCH = "llm_schema_mismatch"
INVALID_UNICODE = "llm_invalid_unicode"
EMPTY_REPLY = "llm_empty_reply"
INVALID_RESPONSE = "llm_invalid_response"
BAD_REQUEST = "llm_bad_request"
RETRIES_EXHAUSTED = "llm_retries_exhausted"
BATCH_ITEM_FAILED = "llm_batch_item_failed"
# Replies that parse but change the ground truth they were asked to keep.
FACT_DROPPED = "llm_fact_dropped"
POSITION_MISMATCH = "llm_position_mismatch"
OPTIONS_CHANGED = "llm_options_changed"
ANSWER_LEAKED = "llm_answer_leaked"
VERIFIER_REJECTED = "llm_verifier_rejected"
DUPLICATE_QUESTION = "llm_duplicate_question"

FAILURE_REASONS = (
    TRUNCATED,
    REFUSAL,
    CONTENT_FILTER,
    INVALID_JSON,
    SCHEMA_MISMATCH,
    INVALID_UNICODE,
    EMPTY_REPLY,
    INVALID_RESPONSE,
    BAD_REQUEST,
    RETRIES_EXHAUSTED,
    BATCH_ITEM_FAILED,
    FACT_DROPPED,
    POSITION_MISMATCH,
    OPTIONS_CHANGED,
    ANSWER_LEAKED,
    VERIFIER_REJECTED,
    DUPLICATE_QUESTION,
)


@dataclass(frozen=True)
class LLMFailure:
    """A request that produced no usable reply. `reason` is one of FAILURE_REASONS."""

    reason: str
    detail: str

    def to_rejected(
        self,
        *,
        source: str,
        source_id: str,
        line: int | None,
        record: dict[str, Any] | None = None,
    ) -> Rejected:
        """Return the quarantine record of the source record whose request failed."""
        return Rejected(self.reason, source, source_id, line, self.detail, record)


class LLMError(CorpusforgeError):
    """An endpoint problem that stops the shard. Messages never contain the API key."""


class LLMAuthError(LLMError):
    """The endpoint rejected the API key (HTTP 401 or 403). A retry cannot help."""


class LLMQuotaError(LLMError):
    """The account has no quota left (`insufficient_quota`). A retry cannot help."""


class LLMEndpointError(LLMError):
    """The endpoint or model does not exist (HTTP 404). A retry cannot help."""


class CircuitOpenError(LLMError):
    """The endpoint failed too many requests in a row, so the shard stopped.

    Replies received before that are cached, so running the shard again later
    resumes where it stopped.
    """

    retryable = True


class BatchError(LLMError):
    """A Batch API job failed as a whole, for example because its input file was invalid."""

    retryable = True


class TransientError(Exception):
    """A failed attempt that a later attempt may fix: 429, 5xx, a timeout, a dropped connection.

    Backends raise it and the client's retry loop handles it, so it never reaches callers.
    """

    def __init__(
        self, detail: str, *, retry_after: float | None = None, rate_limited: bool = False
    ):
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class RequestRejected(Exception):
    """The endpoint rejected one request for good (HTTP 400 or 422). The record is quarantined.

    Raised by backends and turned into an `LLMFailure` by the client.
    """

    def __init__(self, failure: LLMFailure):
        super().__init__(failure.detail)
        self.failure = failure
