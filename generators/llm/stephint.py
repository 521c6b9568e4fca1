"""StepHint's use of the language-model backend within one shard.

The builder calls this module to check the model options when a release is
planned, to score step boundaries with a model (`scorer=model`), and to write
chains for `teacher` sources. Records are handled in blocks, so that the
requests of many records are in flight at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from corpusforge.generators.base import Rejected, ResolvedSource, ShardContext
from corpusforge.generators.errors import ConfigError
from corpusforge.generators.llm.backends import COMPLETIONS
from corpusforge.generators.llm.client import LLMClient
from corpusforge.generators.llm.errors import LLMFailure
from corpusforge.generators.llm.settings import LLMSettings
from corpusforge.generators.llm.stephint_scorer import (
    DEFAULT_END_TOKEN,
    DEFAULT_SCORER_PROMPT,
    ModelBoundaryScorer,
    ScoringFailed,
    offline_completion_responder,
)
from corpusforge.generators.llm.stephint_teacher import (
    FORMAT as TEACHER_FORMAT,
)
from corpusforge.generators.llm.stephint_teacher import (
    TeacherGenerator,
    TeacherOptions,
    with_chain,
)
from corpusforge.generators.llm.stephint_teacher import (
    to_example as teacher_example,
)
from corpusforge.generators.stephint.answers import extract_final_answer, verify
from corpusforge.generators.stephint.chain import normalize_chain
from corpusforge.generators.stephint.sources import MAX_REJECTED_STRING_CHARS, Example

__all__ = [
    "DEFAULT_END_TOKEN",
    "DEFAULT_SCORER_PROMPT",
    "ScoringFailed",
    "ShardModels",
    "TeacherOptions",
    "blocks",
    "check_options",
    "rejected_example",
    "teacher_example",
]

ItemT = TypeVar("ItemT")


def check_options(options: dict[str, Any], formats: Iterable[str]) -> None:
    """Raise ConfigError when the model options cannot work, before any shard runs."""
    settings = LLMSettings.from_json(options.get("llm"))
    end_token = options.get("end_token")
    if not isinstance(end_token, str) or not end_token:
        raise ConfigError(f"option end_token must be a non-empty string, got {end_token!r}")
    prompt = options.get("scorer_prompt")
    if not isinstance(prompt, str) or "{prefix}" not in prompt:
        raise ConfigError(
            f"option scorer_prompt must contain {{prefix}}, where the chain prefix goes; "
            f"got {prompt!r}"
        )
    if TEACHER_FORMAT in set(formats) and settings.backend == "offline":
        raise ConfigError(
            "teacher sources need a model to write chains: set llm_backend=openai and "
            "llm_model, with OPENAI_BASE_URL and OPENAI_API_KEY (or llm_conn_id in a DAG)"
        )


def blocks(items: Iterable[ItemT], size: int) -> Iterator[list[ItemT]]:
    """Yield lists of up to `size` consecutive items."""
    block: list[ItemT] = []
    for item in items:
        block.append(item)
        if len(block) >= size:
            yield block
            block = []
    if block:
        yield block


def rejected_example(failure: LLMFailure, fmt: str, example: Example) -> Rejected:
    """Return the quarantine record of an example whose model request failed."""
    limit = MAX_REJECTED_STRING_CHARS
    record = {
        "problem": example.problem[:limit],
        "reference_answer": example.reference_answer[:limit],
        "source_text": example.source_text[:limit],
    }
    return failure.to_rejected(
        source=fmt, source_id=example.source_id, line=example.line, record=record
    )


class ShardModels:
    """The model clients of one StepHint shard, created on first use."""

    def __init__(self, ctx: ShardContext) -> None:
        self.ctx = ctx
        self.settings = LLMSettings.from_json(ctx.options.get("llm"))
        self.label = f"stephint shard {ctx.shard.index + 1} of {ctx.num_shards}"

    def boundary_scorer(self) -> ModelBoundaryScorer:
        end_token = str(self.ctx.options.get("end_token") or DEFAULT_END_TOKEN)
        client = LLMClient.open(
            self.settings,
            label=f"{self.label} boundary scores",
            offline_responders={COMPLETIONS: offline_completion_responder(end_token)},
        )
        model = self.settings.model if self.settings.backend == "openai" else "offline-heuristic"
        return ModelBoundaryScorer(
            client,
            model or "",
            end_token=end_token,
            prompt_template=str(self.ctx.options.get("scorer_prompt") or DEFAULT_SCORER_PROMPT),
        )

    def prefetch_scores(
        self, scorer: ModelBoundaryScorer | None, block: list[Example | Rejected], style: str
    ) -> dict[int, LLMFailure]:
        """Fetch p_end for the chains of a block that `make_row` will partition.

        Chains that `make_row` rejects before partitioning (empty reference, no
        final answer, wrong answer) are skipped, so they cost no requests.
        Returns the failure of each example whose scores could not be read, by
        `id(example)`.
        """
        if scorer is None:
            return {}
        scorer.clear()
        examples: list[Example] = []
        items: list[tuple[str, str]] = []
        for item in block:
            if isinstance(item, Rejected) or not item.reference_answer.strip():
                continue
            chain = normalize_chain(style, item.source_text)
            extraction = extract_final_answer(chain)
            if extraction.answer is None:
                continue
            if not verify(extraction.answer, item.reference_answer.strip()).verified:
                continue
            examples.append(item)
            items.append((item.problem, chain))
        labels = [f"record {example.source_id}" for example in examples]
        failures = scorer.prefetch(items, labels)
        return {
            id(example): failure
            for example, failure in zip(examples, failures, strict=True)
            if failure is not None
        }

    def teacher_examples(
        self,
        items: Iterable[Example | Rejected],
        source: ResolvedSource,
        record_id: Callable[[Example], str],
        block_size: int,
    ) -> Iterator[Example | Rejected]:
        """Replace each teacher example by one with a verified chain, or by its Rejected."""
        options = TeacherOptions.parse(dict(source.options))
        client = LLMClient.open(self.settings, label=f"{self.label} teacher chains")
        model = self.settings.model or ""
        teacher = TeacherGenerator(client, model, seed=self.ctx.seed, options=options)
        for block in blocks(items, block_size):
            examples = [item for item in block if not isinstance(item, Rejected)]
            problems = [
                (record_id(example), example.problem, example.reference_answer)
                for example in examples
            ]
            results = dict(zip(map(id, examples), teacher.generate(problems), strict=True))
            for item in block:
                if isinstance(item, Rejected):
                    yield item
                    continue
                result = results[id(item)]
                if result.chain is not None:
                    yield with_chain(item, result, model)
                else:
                    yield rejected_example(result.failure(), source.format, item)
