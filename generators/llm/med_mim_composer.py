"""Med-MIM's model composer: questions reworded by a model, then checked by a second request.

The planner draws every record with the offline templates, so the answer,
the options and the referenced image positions come from source labels. When
a shard runs, `ModelComposer.revise` sends each record's draft to the model
in two passes, each a chat completion with structured output in strict JSON
schema mode:

1. compose: the model rewrites the question in natural clinical language,
   given the image facts, the options and the answer, and returns the
   question with the options and answer it kept;
2. verify: a second request, without the answer, asks the model whether the
   new question is self-contained and to answer it from the image facts.

A record is kept only when every check passes, and is otherwise quarantined
with the reason of the first failure. Each reply must pass the checks of
`structured.chat_structured` (`llm_truncated`, `llm_refusal`,
`llm_invalid_json`, ...). The compose reply must return the options and the
answer unchanged (`llm_options_changed`). Its question must name the same
image positions ("the second image") as the draft (`llm_position_mismatch`)
and must not state the answer (`llm_answer_leaked`). It must also pass
`verify_draft`. The verifier must find the question self-contained and give
the draft's answer (`llm_verifier_rejected`). A question that another record of
the shard already has for the same images is rejected too
(`llm_duplicate_question`), because (question, image set) pairs are unique in
a release. Nothing is repaired.

With `llm_backend=offline` the compose pass returns the draft unchanged and the
verifier returns the draft's answer, which exercises the request path without
a server.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pydantic

from corpusforge.generators.llm.backends import CHAT_COMPLETIONS
from corpusforge.generators.llm.client import LLMClient, LLMRequest
from corpusforge.generators.llm.errors import (
    ANSWER_LEAKED,
    DUPLICATE_QUESTION,
    OPTIONS_CHANGED,
    POSITION_MISMATCH,
    VERIFIER_REJECTED,
    LLMFailure,
)
from corpusforge.generators.llm.settings import LLMSettings
from corpusforge.generators.llm.structured import (
    chat_completion_body,
    chat_request,
    chat_structured,
)
from corpusforge.generators.med_mim.drafts import Draft, verify_draft
from corpusforge.generators.med_mim.facts import ORDINALS, ImageFacts
from corpusforge.generators.med_mim.letters import LETTERS

log = logging.getLogger(__name__)

COMPOSE = "compose"
VERIFY = "verify"
# Completion token limit of both passes; a reply cut there is quarantined as llm_truncated.
MAX_TOKENS = 512
# Records whose requests are sent together.
BLOCK_SIZE = 64
# Answers this short, or yes and no, are common words, so a question may contain them.
MIN_LEAK_CHARS = 3
_COMMON_ANSWERS = {"yes", "no"}

_ORDINAL_REFERENCE = re.compile(
    r"\b(" + "|".join(ORDINALS) + r")[\s-]+(?:image|scan|picture|radiograph|study|visit)s?\b",
    re.IGNORECASE,
)
_NUMBERED_REFERENCE = re.compile(r"\b(?:image|scan|picture)\s+#?(\d)\b", re.IGNORECASE)

SYSTEM_PROMPT = (
    "You write and check questions of a multi-image medical visual question answering "
    "dataset. Images are numbered by their position in the set. Reply with a JSON object "
    "in the requested schema, and nothing else."
)
COMPOSE_INSTRUCTIONS = (
    "Rewrite `draft_question` as a natural, self-contained question a radiologist would ask "
    "about these images. It must ask exactly the same thing, so that `answer` stays the only "
    "correct answer. Refer to images by their position exactly as the draft does (such as "
    "'the second image') and to no other position. Do not state the answer or any option in "
    "the question. Return the question, and copy `options` and `answer` unchanged."
)
VERIFY_INSTRUCTIONS = (
    "Answer `question` from the image facts alone. Set `self_contained` to false when the "
    "question cannot be understood or answered without information that is not given. For a "
    "question with options, `answer` is the text of the one correct option."
)


class ComposedQuestion(pydantic.BaseModel):
    """The compose reply: the new question, and the options and answer it was given."""

    model_config = pydantic.ConfigDict(extra="forbid")

    question: str
    options: list[str]
    answer: str


class VerifierVerdict(pydantic.BaseModel):
    """The verify reply: whether the question is self-contained, and the model's answer."""

    model_config = pydantic.ConfigDict(extra="forbid")

    self_contained: bool
    answer: str


def referenced_positions(question: str) -> set[int]:
    """Return the 1-based image positions a question names: "the third image", "image 3"."""
    positions = {ORDINALS.index(word.lower()) + 1 for word in _ORDINAL_REFERENCE.findall(question)}
    positions |= {int(number) for number in _NUMBERED_REFERENCE.findall(question)}
    return positions


def _normalize(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").split()).rstrip(".")


def _states(text: str, answer: str) -> bool:
    """Return whether `answer`, as whole words, appears in `text`, ignoring case."""
    pattern = r"(?<!\w)" + re.escape(_normalize(answer)) + r"(?!\w)"
    return re.search(pattern, _normalize(text)) is not None


@dataclass(frozen=True)
class Item:
    """One planned record to revise: its shard unit and the facts of its images, in order."""

    unit: dict[str, Any]
    images: list[ImageFacts]

    @property
    def closed(self) -> bool:
        return bool(self.unit["closed"])

    @property
    def options(self) -> list[str]:
        return list(self.unit["options"]) if self.closed else []

    @property
    def answer(self) -> str:
        """The correct option's text of a closed question, or the reference answer."""
        if self.closed:
            return self.unit["options"][LETTERS.index(self.unit["letter"])]
        return self.unit["answer"]

    def image_facts(self) -> list[dict[str, Any]]:
        facts = []
        for position, image in enumerate(self.images, 1):
            entry: dict[str, Any] = {"position": position, "ordinal": ORDINALS[position - 1]}
            for name in ("view", "modality", "region", "plane", "follow_up", "age", "sex"):
                value = getattr(image, name)
                if value is not None:
                    entry[name] = value
            if image.findings is not None:
                entry["findings"] = list(image.findings)
            if image.lesion_count is not None:
                entry["lesion_count"] = image.lesion_count
                entry["largest_lesion_mm"] = image.largest_lesion_mm
            if image.qa:
                entry["qa"] = [
                    {"question": pair.question, "answer": pair.answer} for pair in image.qa
                ]
            facts.append(entry)
        return facts

    def compose_message(self) -> str:
        payload = {
            "task": COMPOSE,
            "instructions": COMPOSE_INSTRUCTIONS,
            "ability": self.unit["ability"],
            "question_type": "closed" if self.closed else "open",
            "images": self.image_facts(),
            "draft_question": self.unit["question"],
            "options": self.options,
            "answer": self.answer,
        }
        return json.dumps(payload, ensure_ascii=False)

    def verify_message(self, question: str) -> str:
        payload = {
            "task": VERIFY,
            "instructions": VERIFY_INSTRUCTIONS,
            "images": self.image_facts(),
            "question": question,
            "options": self.options,
        }
        return json.dumps(payload, ensure_ascii=False)


def check_composed(item: Item, reply: ComposedQuestion) -> LLMFailure | None:
    """Return the failure when a compose reply changes the draft's ground truth, else None."""
    if reply.options != item.options:
        return LLMFailure(
            OPTIONS_CHANGED,
            f"the reply changed the options from {item.options} to {reply.options}",
        )
    if reply.answer != item.answer:
        return LLMFailure(
            OPTIONS_CHANGED,
            f"the reply changed the answer from {item.answer!r} to {reply.answer!r}",
        )

    expected = referenced_positions(item.unit["question"])
    found = referenced_positions(reply.question)
    if found != expected:
        return LLMFailure(
            POSITION_MISMATCH,
            f"the question names image positions {sorted(found)}; the draft names "
            f"{sorted(expected)}: {reply.question!r}",
        )

    answer = item.answer
    if (
        len(answer) >= MIN_LEAK_CHARS
        and _normalize(answer) not in _COMMON_ANSWERS
        and _states(reply.question, answer)
        and not _states(item.unit["question"], answer)
    ):
        return LLMFailure(ANSWER_LEAKED, f"the question states the answer: {reply.question!r}")

    draft = Draft(
        ability=item.unit["ability"],
        task=item.unit["task"],
        question=reply.question,
        closed=item.closed,
        correct=answer if item.closed else "",
        distractors=[option for option in item.options if option != answer],
        answer="" if item.closed else answer,
        referenced=list(item.unit["referenced"]),
    )
    problem = verify_draft(draft, len(item.images))
    if problem is not None:
        return LLMFailure(
            OPTIONS_CHANGED, f"the composed question fails the draft checks: {problem}"
        )
    return None


def check_verdict(item: Item, verdict: VerifierVerdict) -> LLMFailure | None:
    """Return the failure when the verifier rejects a question or answers it otherwise."""
    if not verdict.self_contained:
        return LLMFailure(VERIFIER_REJECTED, "the verifier found the question not self-contained")
    verifier_answer = _normalize(verdict.answer)
    expected = _normalize(item.answer)
    if item.closed:
        letter = LETTERS[item.options.index(item.answer)]
        accepted = {expected, letter.lower(), _normalize(f"{letter}: {item.answer}")}
    else:
        accepted = {expected}
    if verifier_answer not in accepted:
        return LLMFailure(
            VERIFIER_REJECTED,
            f"the verifier answered {verdict.answer!r}; the draft's answer is {item.answer!r}",
        )
    return None


class _OfflineResponder:
    """Offline replies: the compose pass returns the draft, the verifier its known answer."""

    def __init__(self) -> None:
        # Verify-pass user message -> answer, filled before each verify run.
        self.answers: dict[str, str] = {}

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        message = body["messages"][-1]["content"]
        payload = json.loads(message)
        if payload["task"] == COMPOSE:
            reply: dict[str, Any] = {
                "question": payload["draft_question"],
                "options": payload["options"],
                "answer": payload["answer"],
            }
        else:
            reply = {"self_contained": True, "answer": self.answers[message]}
        content = json.dumps(reply, ensure_ascii=False)
        return chat_completion_body(body.get("model", "offline"), content)


class ModelComposer:
    """Med-MIM's `model` composer: template drafts at plan time, model rewrites in each shard."""

    name = "model"

    def __init__(self, settings: LLMSettings, label: str = "med_mim composer") -> None:
        from corpusforge.generators.med_mim.composer import TemplateComposer

        self.settings = settings
        self.label = label
        self.model = settings.model if settings.backend == "openai" else "offline-identity"
        self.templates = TemplateComposer()
        self._offline = _OfflineResponder()
        # (question, image keys) of the records kept so far, which must stay unique.
        # NOTE: only within one shard; the contract rule question_image_sets_unique
        # still fails a release whose shards got the same question for one image set.
        self._kept: set[tuple[str, tuple[str, ...]]] = set()

    def compose(
        self, ability: str, images: list[ImageFacts], rng: Any, closed: bool
    ) -> Draft | None:
        """Return the template draft, which fixes the record's answer, options and positions."""
        return self.templates.compose(ability, images, rng, closed)

    def revise(self, items: Sequence[Item]) -> list[dict[str, Any] | LLMFailure]:
        """Return each item's unit with the model's question, or the failure that rejects it."""
        client = LLMClient.open(
            self.settings,
            label=self.label,
            offline_responders={CHAT_COMPLETIONS: self._offline},
        )
        results: list[dict[str, Any] | LLMFailure] = []
        try:
            for start in range(0, len(items), BLOCK_SIZE):
                results.extend(self._revise_block(client, items[start : start + BLOCK_SIZE]))
        finally:
            client.close()
        return results

    def _request(self, item: Item, content: str, schema: type[pydantic.BaseModel], pass_name: str):
        return chat_request(
            self.model or "",
            [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}],
            label=f"{pass_name} record {item.unit['id']}",
            schema=schema,
            temperature=0.0,
            max_tokens=MAX_TOKENS,
        )

    def _revise_block(
        self, client: LLMClient, items: Sequence[Item]
    ) -> list[dict[str, Any] | LLMFailure]:
        results: list[dict[str, Any] | LLMFailure | None] = [None] * len(items)
        composed: dict[int, ComposedQuestion] = {}
        requests = [
            self._request(item, item.compose_message(), ComposedQuestion, COMPOSE) for item in items
        ]
        for number, reply in enumerate(client.run(requests)):
            parsed = chat_structured(reply, ComposedQuestion)
            failure = parsed if isinstance(parsed, LLMFailure) else None
            if failure is None:
                failure = check_composed(items[number], parsed)
            if failure is None:
                composed[number] = parsed
            else:
                results[number] = failure

        numbers = sorted(composed)
        verify_requests: list[LLMRequest] = []
        for number in numbers:
            message = items[number].verify_message(composed[number].question)
            self._offline.answers[message] = items[number].answer
            verify_requests.append(self._request(items[number], message, VerifierVerdict, VERIFY))
        for number, reply in zip(numbers, client.run(verify_requests), strict=True):
            verdict = chat_structured(reply, VerifierVerdict)
            failure = verdict if isinstance(verdict, LLMFailure) else None
            if failure is None:
                failure = check_verdict(items[number], verdict)
            signature = (composed[number].question, tuple(items[number].unit["keys"]))
            if failure is None and signature in self._kept:
                failure = LLMFailure(
                    DUPLICATE_QUESTION,
                    "the model wrote the same question as for another record on these images",
                )
            if failure is not None:
                results[number] = failure
                continue
            self._kept.add(signature)
            unit = dict(items[number].unit)
            unit["metadata"] = {**unit["metadata"], "template_question": unit["question"]}
            unit["question"] = composed[number].question
            unit["generator"] = f"{self.name}:{self.model}"
            results[number] = unit
        self._offline.answers.clear()
        failed = sum(isinstance(result, LLMFailure) for result in results)
        if failed:
            log.info("%s: %d of %d records failed the model checks", self.label, failed, len(items))
        assert all(result is not None for result in results)
        return results  # type: ignore[return-value]
