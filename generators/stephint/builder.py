"""StepHint builder: verified reasoning chains with multi-level hints.

Shards are record ranges within one split, in the order the sources are given.
The planner reads every source once, so structural problems stop the run
before any shard starts, and duplicate ids are known to every shard.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from corpusforge.generators.base import (
    DatasetBuilder,
    PlanContext,
    Rejected,
    ResolvedSource,
    ShardContext,
    ShardTask,
    SourceLicense,
)
from corpusforge.generators.errors import ConfigError
from corpusforge.generators.llm import stephint as stephint_llm
from corpusforge.generators.llm.stephint_teacher import OPTION_KEYS as TEACHER_OPTION_KEYS
from corpusforge.generators.seeding import stable_id
from corpusforge.generators.sources import (
    SourceSpec,
    check_source_options,
    int_source_option,
    resolve_path,
    sha256_of_path,
    source_text,
)
from corpusforge.generators.stephint import partition, records, sources, synthetic

CONFIG = "chains"
SCORERS = ("heuristic", "model")
DEFAULT_SYNTHETIC_COUNT = 1000
TEACHER_FORMAT = "teacher"
STYLES = {
    "gsm8k": "gsm8k",
    "math": "math",
    "longcot": "longcot",
    "synthetic_math": "math",
    TEACHER_FORMAT: "math",
}
# Options each source format takes. Every format takes `split`. The problems of
# `synthetic_math` are drawn from the release seed, so it takes no `seed` option.
SOURCE_OPTIONS = {
    **{fmt: (*sources.OPTION_KEYS[fmt], "split") for fmt in sources.FORMATS},
    "synthetic_math": ("count", "split"),
    TEACHER_FORMAT: TEACHER_OPTION_KEYS,
}
# Integer dataset options: name -> (minimum, default).
INTEGER_OPTIONS = {
    "min_step_chars": (1, partition.DEFAULT_MIN_STEP_CHARS),
    "max_steps": (1, partition.DEFAULT_MAX_STEPS),
}
# Records whose model requests are sent together when a model scores boundaries or
# writes chains. Larger blocks keep more requests in flight but hold more chains in memory.
LLM_BLOCK_RECORDS = 256

_CITATION_STEPHINT = """@article{stephint2025,
  title   = {StepHint: Multi-level Stepwise Hints Enhance Reinforcement Learning to Reason},
  journal = {arXiv preprint arXiv:2507.02841},
  year    = {2025}
}"""

_LICENSES = {
    "gsm8k": SourceLicense(
        name="GSM8K (OpenAI)",
        license="MIT",
        url="https://github.com/openai/grade-school-math",
        citation="""@article{cobbe2021gsm8k,
  title   = {Training Verifiers to Solve Math Word Problems},
  author  = {Cobbe, Karl and Kosaraju, Vineet and Bavarian, Mohammad and others},
  journal = {arXiv preprint arXiv:2110.14168},
  year    = {2021}
}""",
        contamination_warning="GSM8K is a public benchmark; records from its test split "
        "must not be used to train a model that is later evaluated on GSM8K.",
    ),
    "math": SourceLicense(
        name="MATH (Hendrycks et al.), MATH-500 subset",
        license="MIT",
        url="https://github.com/hendrycks/math",
        citation="""@article{hendrycks2021math,
  title   = {Measuring Mathematical Problem Solving With the MATH Dataset},
  author  = {Hendrycks, Dan and Burns, Collin and Kadavath, Saurav and others},
  journal = {arXiv preprint arXiv:2103.03874},
  year    = {2021}
}""",
        contamination_warning="MATH-500 is drawn from the MATH test split; do not train on it "
        "and then evaluate on MATH or MATH-500.",
    ),
    "longcot": SourceLicense(
        name="Long reasoning traces (NovaSky Sky-T1 family)",
        license="Apache-2.0",
        url="https://github.com/NovaSky-AI/SkyThought",
        citation="""@misc{sky_t1_2025,
  title  = {Sky-T1: Train your own O1 preview model within \\$450},
  author = {{NovaSky Team}},
  year   = {2025},
  url    = {https://novasky-ai.github.io/posts/sky-t1}
}""",
        contamination_warning="these traces solve MATH-500 problems, which come from the "
        "MATH test split.",
    ),
    "synthetic_math": SourceLicense(
        name="corpusforge synthetic math word problems",
        license="Apache-2.0",
    ),
    TEACHER_FORMAT: SourceLicense(
        name="problems from the source file, chains written by the teacher model (llm_model)",
        license="other",
        contamination_warning="the chains were written by a language model; its terms of use "
        "may restrict training on them.",
    ),
}


def _default_split(fmt: str, name: str) -> str:
    lowered = name.lower()
    if fmt == "synthetic_math":
        return "train"
    for split in ("test", "validation", "train"):
        if re.search(rf"(^|[^a-z]){split}([^a-z]|$)", lowered):
            return split
    return "train"


def _check_integer_options(options: dict[str, Any]) -> None:
    """Raise ConfigError naming an integer dataset option whose value is not a valid integer."""
    for name, (minimum, default) in INTEGER_OPTIONS.items():
        value = options.get(name)
        if isinstance(value, bool) or not isinstance(value, int | str):
            valid = False
        else:
            try:
                valid = int(value) >= minimum
            except ValueError:
                valid = False
        if not valid:
            raise ConfigError(
                f"invalid option {name}={value!r}: use an integer of {minimum} or more, "
                f"for example --option {name}={default} (the default)"
            )


class StepHintBuilder(DatasetBuilder):
    name = "stephint"
    pretty_name = "StepHint reasoning chains"
    formats = (*sources.FORMATS, TEACHER_FORMAT)
    tags = ("math", "reasoning", "reinforcement-learning")
    license = "other"
    method_citation = _CITATION_STEPHINT
    description = """
Verified reasoning chains split into steps by adaptive partitioning, with
multi-level hints for reinforcement learning with verifiable rewards, after
StepHint (arXiv 2507.02841). Config `chains` has one row per chain.

- `chain`: the solution text a model would produce (calculator annotations
  removed, thinking markers normalized); the original text is in `source_text`.
- `steps`: the chain split at sentence and paragraph ends where the
  end-of-reasoning score drops; the steps concatenate exactly to `chain`, and
  `step_offsets` gives each step's character offsets.
- `hints`: level k is the first k steps. The final step, which holds the final
  answer, is never part of a hint; `answer_in_hint` flags a hint whose text
  already states the reference answer. A chain with one step has no hints.
- `verified`: the chain's final answer matched `reference_answer` under
  math-verify; chains that did not match are in `quarantine/`.

The license of each release follows its sources (table below).
"""

    def default_sources(self) -> list[str]:
        return [f"synthetic_math:?count={DEFAULT_SYNTHETIC_COUNT}"]

    def default_options(self) -> dict[str, Any]:
        return {
            "scorer": "heuristic",
            **{name: default for name, (_, default) in INTEGER_OPTIONS.items()},
            "end_token": stephint_llm.DEFAULT_END_TOKEN,
            "scorer_prompt": stephint_llm.DEFAULT_SCORER_PROMPT,
        }

    def source_license(self, fmt: str) -> SourceLicense | None:
        return _LICENSES.get(fmt)

    def card_sections(self, manifest: dict[str, Any], release_dir: Path) -> str:
        """Return per-split statistics of steps and hints, read from the release's shards."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        lines = [
            "## Steps and hints per split\n",
            "| split | chains | mean steps | chains with hints | hint levels "
            "| levels that state the answer |",
            "|---|---|---|---|---|---|",
        ]
        for split in sorted(manifest["splits"].get(CONFIG, {})):
            chains = steps = with_hints = levels = answer_levels = 0
            for shard in manifest["shards"]:
                if shard["config"] != CONFIG or shard["split"] != split:
                    continue
                table = pq.read_table(release_dir / shard["path"], columns=["num_steps", "hints"])
                chains += table.num_rows
                steps += pc.sum(table["num_steps"]).as_py() or 0
                hint_counts = pc.list_value_length(table["hints"])
                with_hints += pc.sum(pc.greater(hint_counts, 0)).as_py() or 0
                flat = pc.list_flatten(table["hints"])
                levels += len(flat)
                if len(flat):
                    answer_levels += pc.sum(pc.struct_field(flat, "answer_in_hint")).as_py() or 0
            mean_steps = steps / chains if chains else 0.0
            share = f"{answer_levels / levels:.0%}" if levels else "n/a"
            lines.append(
                f"| {split} | {chains} | {mean_steps:.1f} | {with_hints} | {levels} | {share} |"
            )
        return "\n".join(lines) + "\n"

    def resolve_source(self, fmt: str, path: str, options: dict[str, str]) -> tuple[str, str, str]:
        text = source_text(fmt, path, options)
        check_source_options(text, fmt, options, SOURCE_OPTIONS[fmt])
        if fmt == "synthetic_math":
            int_source_option(text, options, "count", DEFAULT_SYNTHETIC_COUNT)
            # The generator's own code is the source: its sha256 changes when the problems do.
            code = Path(synthetic.__file__).read_bytes()
            return "", "synthetic_math", hashlib.sha256(code).hexdigest()
        spec = SourceSpec(text=f"{fmt}:{path}", format=fmt, path=path, options=options)
        resolved = resolve_path(spec)
        if resolved.is_dir():
            raise ConfigError(f"source {fmt}:{path} is a folder; {fmt} sources are single files")
        return str(resolved), resolved.name, sha256_of_path(resolved)

    def _synthetic_count(self, source: ResolvedSource, limit: int | None) -> int:
        count = int_source_option(source.spec, source.options, "count", DEFAULT_SYNTHETIC_COUNT)
        return min(count, limit) if limit is not None else count

    def _raw_records(
        self, source: ResolvedSource, seed: int, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, sources.RawRecord]]:
        """Yield (ordinal, record) for the source's records start .. stop - 1."""
        if source.format == "synthetic_math":
            # Each synthetic record has its own stream, so a shard draws only its range.
            for index, fields in synthetic.iter_synthetic_problems(seed, stop or 0, start):
                yield index, sources.RawRecord(index + 1, fields["unique_id"], fields)
            return
        # NOTE: each shard reads its file from the start and skips earlier records, so a
        # file of n records split into k shards costs about n * k / 2 parsed lines.
        if source.format == TEACHER_FORMAT:
            options = stephint_llm.TeacherOptions.parse(dict(source.options)).jsonl_options()
            records = sources.iter_raw_records("jsonl", source.path, options)
        else:
            records = sources.iter_raw_records(source.format, source.path, dict(source.options))
        for ordinal, raw in enumerate(records):
            if stop is not None and ordinal >= stop:
                return
            if ordinal >= start:
                yield ordinal, raw

    def plan(self, ctx: PlanContext) -> list[ShardTask]:
        if ctx.options.get("scorer") not in SCORERS:
            raise ConfigError(
                f"unknown scorer {ctx.options.get('scorer')!r}; available: {', '.join(SCORERS)}"
            )
        _check_integer_options(ctx.options)
        stephint_llm.check_options(ctx.options, [source.format for source in ctx.sources])
        ranges: dict[str, list[dict[str, Any]]] = {}
        for number, source in enumerate(ctx.sources):
            split = source.options.get("split") or _default_split(source.format, source.name)
            seen: set[str] = set()
            # Line-number ids never repeat, so a copied line is caught by its content.
            first_line_of: dict[bytes, int | None] = {}
            duplicates: list[int] = []
            copies: dict[int, int | None] = {}
            count = 0
            if source.format == "synthetic_math":
                count = self._synthetic_count(source, ctx.limit)
            else:
                for ordinal, raw in self._raw_records(source, ctx.seed, 0, ctx.limit):
                    digest = _content_digest(raw.fields)
                    if raw.source_id in seen:
                        duplicates.append(ordinal)
                    elif digest in first_line_of:
                        copies[ordinal] = first_line_of[digest]
                    seen.add(raw.source_id)
                    first_line_of.setdefault(digest, raw.line)
                    count = ordinal + 1
            ranges.setdefault(split, []).append(
                {"source": number, "count": count, "duplicates": duplicates, "copies": copies}
            )

        shards: list[ShardTask] = []
        for split in sorted(ranges):
            units: list[dict[str, Any]] = []
            room = ctx.shard_size
            for entry in ranges[split]:
                start = 0
                while start < entry["count"]:
                    stop = min(entry["count"], start + room)
                    dups = [d for d in entry["duplicates"] if start <= d < stop]
                    unit = {
                        "source": entry["source"],
                        "start": start,
                        "stop": stop,
                        "duplicates": dups,
                    }
                    copies = [
                        [ordinal, line]
                        for ordinal, line in entry["copies"].items()
                        if start <= ordinal < stop
                    ]
                    if copies:
                        unit["copies"] = copies
                    units.append(unit)
                    room -= stop - start
                    start = stop
                    if room == 0:
                        shards.append(ShardTask(len(shards), CONFIG, split, units))
                        units, room = [], ctx.shard_size
            if units:
                shards.append(ShardTask(len(shards), CONFIG, split, units))
            if not any(entry["count"] for entry in ranges[split]):
                # Keep one empty shard so the split is reported as empty in the card.
                shards.append(ShardTask(len(shards), CONFIG, split, []))
        return shards

    def generate(self, ctx: ShardContext) -> Iterator[dict[str, Any] | Rejected]:
        models = stephint_llm.ShardModels(ctx)
        model_scorer = models.boundary_scorer() if ctx.options["scorer"] == "model" else None
        heuristic = partition.HeuristicScorer()
        for unit in ctx.shard.units:
            source = ctx.sources[unit["source"]]
            style = source.options.get("style", STYLES.get(source.format, "math"))
            if source.format == TEACHER_FORMAT:
                # Here `style` names the layout of the answer field. Chains come from the model.
                style = STYLES[TEACHER_FORMAT]

            def record_id(example: sources.Example, source: ResolvedSource = source) -> str:
                return stable_id("stephint", source.format, source.name, example.source_id)

            items = self._examples(ctx, source, unit)
            if source.format == TEACHER_FORMAT:
                items = models.teacher_examples(items, source, record_id, LLM_BLOCK_RECORDS)
            block_size = LLM_BLOCK_RECORDS if model_scorer else 1
            for block in stephint_llm.blocks(items, block_size):
                failures = models.prefetch_scores(model_scorer, block, style)
                for item in block:
                    if isinstance(item, Rejected):
                        yield item
                        continue
                    failure = failures.get(id(item))
                    if failure is not None:
                        yield stephint_llm.rejected_example(failure, source.format, item)
                        continue
                    scorer = model_scorer.for_problem(item.problem) if model_scorer else heuristic
                    yield self._row(ctx, source, style, item, record_id(item), scorer)

    def _row(
        self,
        ctx: ShardContext,
        source: ResolvedSource,
        style: str,
        example: sources.Example,
        record_id: str,
        scorer: partition.BoundaryScorer,
    ) -> dict[str, Any] | Rejected:
        try:
            return records.make_row(
                example,
                fmt=source.format,
                style=style,
                source_file=source.name,
                source_split=ctx.shard.split,
                record_id=record_id,
                scorer=scorer,
                min_step_chars=int(ctx.options["min_step_chars"]),
                max_steps=int(ctx.options["max_steps"]),
            )
        except stephint_llm.ScoringFailed as error:
            return stephint_llm.rejected_example(error.failure, source.format, example)

    def _examples(
        self, ctx: ShardContext, source: ResolvedSource, unit: dict[str, Any]
    ) -> Iterator[sources.Example | Rejected]:
        """Yield the unit's records as Examples, or Rejected for duplicates and bad records."""
        duplicates = set(unit["duplicates"])
        copies = {ordinal: line for ordinal, line in unit.get("copies", [])}
        for ordinal, raw in self._raw_records(source, ctx.seed, unit["start"], unit["stop"]):
            if ordinal in duplicates:
                yield Rejected(
                    reason="duplicate_id",
                    source=source.format,
                    source_id=raw.source_id,
                    line=raw.line,
                    detail=f"id {raw.source_id!r} appeared earlier in {source.name}",
                    record=raw.fields,
                )
            elif ordinal in copies:
                where = f"line {copies[ordinal]}" if copies[ordinal] else "an earlier record"
                yield Rejected(
                    reason="duplicate_record",
                    source=source.format,
                    source_id=raw.source_id,
                    line=raw.line,
                    detail=f"the same record as {where} of {source.name}",
                    record=raw.fields,
                )
            elif source.format == TEACHER_FORMAT:
                options = stephint_llm.TeacherOptions.parse(dict(source.options))
                yield stephint_llm.teacher_example(raw, options)
            else:
                yield sources.to_example(source.format, raw, source.options)


def _content_digest(fields: dict[str, Any]) -> bytes:
    """Return a digest of a raw record's fields, equal for records with the same content."""
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
