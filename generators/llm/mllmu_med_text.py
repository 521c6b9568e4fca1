"""MLLMU-Med's model text backend: test-split paraphrases and profiles written by a model.

`ModelTextBackend` implements MLLMU-Med's `TextBackend` (`text_backend=model`).
The record factory requests one text at a time, but a model should receive
many requests at once, so a shard builds each block of records twice through
`fill`. The first pass collects every text the records need, the client
sends them concurrently, and the second pass builds the records from the
checked replies. A paraphrase of a text that is itself a paraphrase (a study
reference around a reworded question) takes one more round.

Every reply is a chat completion with structured output (`{"text": ...}` in
strict JSON schema mode) and passes the checks of `structured.chat_structured`.
Then the text must keep the ground truth of its source: every private value
(and study date) verbatim, every number, the words left and right, and the
cloze blank `____`. A probe paraphrase must not state its answer either. A
reply that fails any check gives its record an `LLMFailure`, and the shard
quarantines the record instead of publishing it. Nothing is repaired.

With `llm_backend=offline` the backend returns every text unchanged, which
exercises the request path without a server.

NOTE: a band's records shard and its ledger shard request the same texts, and
agree through the reply cache. Two shards that both miss the cache at the same
time send a request each, and a model that samples differently for identical
requests can then pass one reply and reject the other, so the ledger and the
records disagree about that record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic

from corpusforge.generators.llm.backends import CHAT_COMPLETIONS
from corpusforge.generators.llm.client import LLMClient
from corpusforge.generators.llm.errors import ANSWER_LEAKED, FACT_DROPPED, LLMFailure
from corpusforge.generators.llm.settings import LLMSettings
from corpusforge.generators.llm.structured import (
    chat_completion_body,
    chat_request,
    chat_structured,
)

log = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")

PARAPHRASE = "paraphrase"
PROFILE = "profile"
# Completion token limits; a reply cut at the limit is quarantined as llm_truncated.
MAX_TOKENS = {PARAPHRASE: 512, PROFILE: 1024}
# Passes over a block of records. Three are needed when a paraphrase wraps another one.
MAX_ROUNDS = 4
# Value keys that a paraphrase or profile must keep verbatim: the private values
# that the ledger tracks, and the study date that a study reference names.
PROTECTED_KEYS = (
    "name",
    "date_of_birth",
    "address",
    "phone",
    "email",
    "medical_record_number",
    "insurance_id",
    "date",
)
BLANK = "____"
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")
_SIDE = re.compile(r"\b(left|right)\b", re.IGNORECASE)
# Marks a text whose reply failed. It contains NUL characters, which no source text does.
_FAILURE_MARK = "\x00llm-failure:{}\x00"
_FAILURE_PATTERN = re.compile("\x00llm-failure:(\\d+)\x00")

SYSTEM_PROMPT = (
    "You rewrite short texts of a synthetic medical dataset for machine-unlearning research. "
    "All people and records in it are fictional. Reply with a JSON object whose only key is "
    '"text", and nothing else.'
)
INSTRUCTIONS = {
    PARAPHRASE: (
        "Reword `text` so that it asks or states exactly the same thing in other words. "
        "Copy every string of `keep_verbatim` exactly, keep every number, keep the words "
        "left and right as they are used, keep the blank ____ if there is one, and never "
        "state the answer."
    ),
    PROFILE: (
        "Rewrite `text` as a short natural paragraph of a medical record. Copy every string "
        "of `keep_verbatim` exactly, keep every other fact and number, and add no facts."
    ),
}


class TextReply(pydantic.BaseModel):
    """The structured reply of a text request."""

    model_config = pydantic.ConfigDict(extra="forbid")

    text: str


@dataclass(frozen=True)
class TextJob:
    """One text to write: its kind, the source text, the values to keep and a forbidden answer."""

    kind: str
    source: str
    keep: tuple[str, ...]
    answer: str | None = None

    def user_message(self) -> str:
        payload = {
            "task": self.kind,
            "instructions": INSTRUCTIONS[self.kind],
            "text": self.source,
            "keep_verbatim": list(self.keep),
        }
        return json.dumps(payload, ensure_ascii=False)


def protected_values(values: dict[str, Any] | None, text: str) -> tuple[str, ...]:
    """Return the protected values of `values` that occur in `text` as whole words."""
    found: list[str] = []
    for key in PROTECTED_KEYS:
        value = (values or {}).get(key)
        if isinstance(value, str) and value and value not in found and _contains(text, value):
            found.append(value)
    return tuple(found)


def _contains(text: str, value: str) -> bool:
    """Return whether `value` occurs in `text` with no word character around it.

    This is the test that MLLMU-Med's ledger uses to find private values in records.
    """
    return re.search(r"(?<!\w)" + re.escape(value) + r"(?!\w)", text) is not None


def check_text(job: TextJob, text: str) -> LLMFailure | None:
    """Return the failure when `text` loses ground truth of `job.source`, else None."""
    missing = [value for value in job.keep if not _contains(text, value)]
    if missing:
        return LLMFailure(
            FACT_DROPPED,
            f"the {job.kind} dropped {len(missing)} value(s) it had to copy verbatim: "
            f"{', '.join(repr(value) for value in missing)}",
        )
    numbers = [number for number in _NUMBER.findall(job.source) if number not in text]
    if numbers:
        return LLMFailure(FACT_DROPPED, f"the {job.kind} dropped the number(s) {numbers}")
    source_sides = sorted(side.lower() for side in _SIDE.findall(job.source))
    sides = sorted(side.lower() for side in _SIDE.findall(text))
    if source_sides != sides:
        return LLMFailure(
            FACT_DROPPED,
            f"the {job.kind} changed the sides it names from {source_sides} to {sides}",
        )
    if text.count(BLANK) != job.source.count(BLANK):
        return LLMFailure(
            FACT_DROPPED,
            f"the {job.kind} has {text.count(BLANK)} blanks ({BLANK}); the source has "
            f"{job.source.count(BLANK)}",
        )
    if job.answer and _contains(text, job.answer) and not _contains(job.source, job.answer):
        return LLMFailure(ANSWER_LEAKED, f"the {job.kind} states the answer {job.answer!r}")
    return None


def offline_text_responder(body: dict[str, Any]) -> dict[str, Any]:
    """Reply to a text request with its source text unchanged, as a chat completion."""
    payload = json.loads(body["messages"][-1]["content"])
    content = json.dumps({"text": payload["text"]}, ensure_ascii=False)
    return chat_completion_body(body.get("model", "offline"), content)


class ModelTextBackend:
    """MLLMU-Med text written by the model of the `llm` settings; see the module docstring."""

    name = "model"

    def __init__(self, settings: LLMSettings, label: str = "mllmu_med text") -> None:
        self.settings = settings
        self.label = label
        self.model = settings.model if settings.backend == "openai" else "offline-identity"
        self._client: LLMClient | None = None
        self._results: dict[TextJob, str | LLMFailure] = {}
        self._missing: dict[TextJob, None] = {}
        self._failures: list[LLMFailure] = []

    # TextBackend ---------------------------------------------------------------------

    def paraphrase(
        self,
        text: str,
        rng: random.Random,
        template: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> str:
        if _FAILURE_PATTERN.search(text):
            # The text wraps a paraphrase that failed; the record is quarantined for that.
            return text
        answer = None
        if template is not None and template.startswith(("question:", "cloze:")):
            field_name = template.split(":")[1]
            answer = (values or {}).get(field_name)
        job = TextJob(PARAPHRASE, text, protected_values(values, text), answer)
        return self._resolve(job)

    def weave(
        self, profile: dict[str, Any], study: dict[str, Any] | None, rng: random.Random
    ) -> str:
        from corpusforge.generators.mllmu_med.text import TemplateBackend

        # The template text is the model's input, and its draw from `rng` is the template's.
        draft = TemplateBackend().weave(profile, study, rng)
        values = dict(profile)
        if study is not None:
            values["date"] = study["date"]
        return self._resolve(TextJob(PROFILE, draft, protected_values(values, draft)))

    # Prefetching ---------------------------------------------------------------------

    def fill(self, build: Callable[[], ResultT]) -> ResultT:
        """Call `build` until every text it requests has a reply, and return its last result.

        The texts that each pass requests are sent concurrently. `build` must ask for
        the same texts on every call, given the replies so far. Replies and
        failure marks stay valid until the next `fill`.
        """
        self._results.clear()
        self._failures.clear()
        for _ in range(MAX_ROUNDS):
            self._missing = {}
            result = build()
            if not self._missing:
                return result
            self._fetch(list(self._missing))
        raise RuntimeError(
            f"{self.label}: texts still missing after {MAX_ROUNDS} rounds of requests; the "
            "record builder asks for different texts on each pass"
        )

    def failure_in(self, texts: Iterable[str | None]) -> LLMFailure | None:
        """Return the failure of the first text that a failed reply left in `texts`, or None."""
        for text in texts:
            match = _FAILURE_PATTERN.search(text or "")
            if match:
                return self._failures[int(match.group(1))]
        return None

    def _resolve(self, job: TextJob) -> str:
        result = self._results.get(job)
        if result is None:
            self._missing[job] = None
            return job.source
        if isinstance(result, LLMFailure):
            self._failures.append(result)
            return _FAILURE_MARK.format(len(self._failures) - 1)
        return result

    def _fetch(self, jobs: list[TextJob]) -> None:
        client = self._open_client()
        requests = [
            chat_request(
                self.model or "",
                [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": job.user_message()},
                ],
                label=f"{job.kind} {hashlib.sha256(job.source.encode()).hexdigest()[:12]}",
                schema=TextReply,
                temperature=0.0,
                max_tokens=MAX_TOKENS[job.kind],
            )
            for job in jobs
        ]
        for job, reply in zip(jobs, client.run(requests), strict=True):
            parsed = chat_structured(reply, TextReply)
            if isinstance(parsed, LLMFailure):
                self._results[job] = parsed
                continue
            failure = check_text(job, parsed.text)
            if failure is not None:
                # The detail quotes private values, so the log names only the reason.
                log.warning("%s: rejected a %s reply (%s)", self.label, job.kind, failure.reason)
            self._results[job] = failure or parsed.text

    def _open_client(self) -> LLMClient:
        if self._client is None:
            self._client = LLMClient.open(
                self.settings,
                label=self.label,
                offline_responders={CHAT_COMPLETIONS: offline_text_responder},
            )
        return self._client

    def close(self) -> None:
        """Close the model client's connections, if it was opened."""
        if self._client is not None:
            self._client.close()
            self._client = None
