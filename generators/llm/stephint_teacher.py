"""Teacher generation for StepHint: reasoning chains from a model for problems that have none.

Source format `teacher`: a JSONL file with a problem and a reference answer per
line. For each problem the teacher model writes a chain. The chain's final
answer (the last `\\boxed{...}`, or a `#### N` line) is verified against the
reference with `answers.verify`, and a chain that fails is sampled again, with
sample index k + 1, up to `samples` times. Only verified chains become
records. A problem without a verified chain goes to quarantine as
`teacher_unverified`, or with the failure reason of its last sample when no
sample produced a chain at all (such as `llm_truncated` or `llm_refusal`).

All samples of one round are sent at once, and verification runs afterwards in
the calling thread, because math-verify's timeout uses signals, which work only
in the main thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from corpusforge.generators.base import Rejected
from corpusforge.generators.errors import ConfigError
from corpusforge.generators.llm.client import LLMClient, LLMRequest
from corpusforge.generators.llm.errors import LLMFailure
from corpusforge.generators.llm.structured import ChatText, chat_request, chat_text
from corpusforge.generators.seeding import derive_seed
from corpusforge.generators.stephint import sources
from corpusforge.generators.stephint.answers import extract_final_answer, verify
from corpusforge.generators.stephint.chain import THINK_CLOSE, THINK_OPEN, normalize_chain

FORMAT = "teacher"
UNVERIFIED = "teacher_unverified"

DEFAULT_SAMPLES = 4
MAX_SAMPLES = 64
DEFAULT_TEMPERATURE = 0.6
DEFAULT_MAX_TOKENS = 8192
DEFAULT_SYSTEM_PROMPT = (
    "Solve the problem. Reason step by step, and put the final answer in \\boxed{}."
)
# Option names of the `teacher` format.
OPTION_KEYS = (
    "problem_field",
    "answer_field",
    "id_field",
    "style",
    "samples",
    "temperature",
    "max_tokens",
    "split",
)
# Characters of each attempt's detail kept in a quarantine record.
MAX_ATTEMPT_DETAIL_CHARS = 200


@dataclass(frozen=True)
class TeacherOptions:
    """Options of one `teacher` source, parsed from its `?key=value` part."""

    problem_field: str = "problem"
    answer_field: str = "answer"
    id_field: str = "id"
    style: str = "math"
    samples: int = DEFAULT_SAMPLES
    temperature: float = DEFAULT_TEMPERATURE
    max_tokens: int = DEFAULT_MAX_TOKENS

    @classmethod
    def parse(cls, options: dict[str, str]) -> TeacherOptions:
        """Return the options, raising ConfigError that names an invalid or unknown one."""
        unknown = sorted(set(options) - set(OPTION_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown option(s) {unknown} for source format teacher; known: "
                f"{', '.join(OPTION_KEYS)}"
            )
        style = options.get("style") or "math"
        if style not in ("math", "gsm8k"):
            raise ConfigError(
                f"invalid style {style!r} for source format teacher: use math (the answer field "
                "is the reference answer) or gsm8k (the reference is its #### line)"
            )
        return cls(
            problem_field=options.get("problem_field") or "problem",
            answer_field=options.get("answer_field") or "answer",
            id_field=options.get("id_field") or "id",
            style=style,
            samples=_number(options, "samples", DEFAULT_SAMPLES, int, 1, MAX_SAMPLES),
            temperature=_number(options, "temperature", DEFAULT_TEMPERATURE, float, 0.0, 2.0),
            max_tokens=_number(options, "max_tokens", DEFAULT_MAX_TOKENS, int, 1, 1_000_000),
        )

    def jsonl_options(self) -> dict[str, str]:
        """Return the options under which the `jsonl` reader maps a teacher record."""
        options = {
            "problem_field": self.problem_field,
            "solution_field": self.answer_field,
            "id_field": self.id_field,
            "style": self.style,
        }
        if self.style == "math":
            options["answer_field"] = self.answer_field
        return options


def _number(options: dict[str, str], key: str, default, kind, minimum, maximum):
    raw = options.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = kind(str(raw).strip())
    except ValueError:
        raise ConfigError(
            f"option {key} of a teacher source must be a number, got {raw!r}"
        ) from None
    if not minimum <= value <= maximum:
        raise ConfigError(
            f"option {key} of a teacher source must be from {minimum} to {maximum}, got {value}"
        )
    return value


def to_example(raw: sources.RawRecord, options: TeacherOptions) -> sources.Example | Rejected:
    """Map one teacher record to an Example whose `source_text` is empty, or reject it.

    The record goes through the `jsonl` reader's checks (missing or structured
    fields, lone surrogates), and its reference answer must not be empty.
    """
    example = sources.to_example("jsonl", raw, options.jsonl_options())
    if isinstance(example, Rejected):
        return dataclasses.replace(example, source=FORMAT)
    if not example.reference_answer:
        return Rejected(
            "empty_reference",
            FORMAT,
            raw.source_id,
            raw.line,
            f"field {options.answer_field!r} has no reference answer",
            dict(raw.fields),
        )
    return dataclasses.replace(example, source_text="")


@dataclass
class TeacherResult:
    """The verified chain of one problem, or the attempts that failed."""

    chain: str | None = None
    sample: int | None = None
    attempts: list[tuple[int, str, str]] = field(default_factory=list)

    def failure(self) -> LLMFailure:
        """Return the quarantine reason and detail of a problem without a verified chain."""
        produced_chain = any(
            reason in (UNVERIFIED, "no_final_answer") for _, reason, _ in self.attempts
        )
        reason = UNVERIFIED if produced_chain or not self.attempts else self.attempts[-1][1]
        described = "; ".join(
            f"sample {sample}: {why} ({detail[:MAX_ATTEMPT_DETAIL_CHARS]})"
            for sample, why, detail in self.attempts
        )
        return LLMFailure(
            reason, f"no verified chain in {len(self.attempts)} sample(s): {described}"
        )


class TeacherGenerator:
    """Writes and verifies chains with a teacher model, sampling again up to `samples` times."""

    def __init__(
        self,
        client: LLMClient,
        model: str,
        *,
        seed: int,
        options: TeacherOptions,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    ) -> None:
        self.client = client
        self.model = model
        self.seed = seed
        self.options = options
        self.system_prompt = system_prompt

    def request(self, record_id: str, problem: str, sample: int) -> LLMRequest:
        """Return the chat request of sample `sample` for one problem.

        The body's `seed` comes from (release seed, record id, sample), so a
        server that honours seeds returns the same sample again, and samples
        differ from each other.
        """
        messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": problem},
        ]
        return chat_request(
            self.model,
            messages,
            sample=sample,
            label=f"record {record_id} sample {sample}",
            temperature=self.options.temperature,
            max_tokens=self.options.max_tokens,
            seed=derive_seed("stephint-teacher", self.seed, record_id, sample) % 2**31,
        )

    def generate(self, problems: Sequence[tuple[str, str, str]]) -> list[TeacherResult]:
        """Return one result per (record id, problem, reference), in order."""
        results = [TeacherResult() for _ in problems]
        open_items = list(range(len(problems)))
        for sample in range(self.options.samples):
            if not open_items:
                break
            requests = [self.request(problems[i][0], problems[i][1], sample) for i in open_items]
            replies = self.client.run(requests)
            still_open = []
            for index, reply in zip(open_items, replies, strict=True):
                result = results[index]
                text = chat_text(reply)
                if isinstance(text, LLMFailure):
                    result.attempts.append((sample, text.reason, text.detail))
                    still_open.append(index)
                    continue
                chain = assemble_chain(text)
                problem_reason, detail = check_chain(chain, problems[index][2])
                if problem_reason is None:
                    result.chain = chain
                    result.sample = sample
                else:
                    result.attempts.append((sample, problem_reason, detail))
                    still_open.append(index)
            open_items = still_open
        return results


def assemble_chain(text: ChatText) -> str:
    """Return the chain of a reply: its separate reasoning, if any, inside think markers."""
    if not text.reasoning.strip():
        return text.content
    return f"{THINK_OPEN}\n{text.reasoning.strip()}\n{THINK_CLOSE}\n\n{text.content.strip()}"


def check_chain(chain: str, reference: str) -> tuple[str | None, str]:
    """Return (None, method) for a chain whose final answer verifies, else (reason, detail)."""
    extraction = extract_final_answer(normalize_chain("math", chain))
    if extraction.answer is None:
        return "no_final_answer", "the chain has no \\boxed{...} and no #### line"
    verification = verify(extraction.answer, reference)
    if verification.verified:
        return None, verification.method
    return UNVERIFIED, f"answer {extraction.answer!r} does not match reference {reference!r}"


def with_chain(example: sources.Example, result: TeacherResult, model: str) -> sources.Example:
    """Return `example` with the verified chain as its source text and the sample in metadata."""
    assert result.chain is not None
    metadata: dict[str, Any] = dict(example.metadata)
    metadata["teacher"] = {
        "model": model,
        "sample": result.sample,
        "samples_tried": len(result.attempts) + 1,
    }
    return dataclasses.replace(example, source_text=result.chain, metadata=metadata)
