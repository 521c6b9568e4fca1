"""Export a StepHint release as verl RL parquet files, one row per (problem, hint level).

The rows follow the layout of verl's RL datasets (`examples/data_preprocess/*.py` and
`verl/utils/dataset/README.md` in volcengine/verl):

    data_source   string, the key verl's reward manager passes to the reward function
    prompt        list of {role, content} chat messages
    ability       "math"
    reward_model  {style: "rule", ground_truth: reference answer}
    extra_info    {index, id, split, hint_level, hint_num_steps, hint_text, total_steps,
                   answer_in_hint}

verl reads `extra_info.index` as the prompt index. Here it is the row number within the split
file, and `extra_info.id` is the StepHint chain id, which all rows of one problem share.

Hint placement: verl's RLHFDataset renders every prompt with
`tokenizer.apply_chat_template(messages, add_generation_prompt=True)`
(`verl/utils/dataset/rl_dataset.py`). With common chat templates, that call ends every message
with an end-of-turn token and then opens a new assistant turn. A hint stored as an assistant
message would therefore be a finished turn that the policy never continues. So the hint goes in
the user turn, as a partial solution that the policy is asked to continue, with
HINT_PROMPT_TEMPLATE:

    {problem}

    Here is the beginning of a solution:

    {hint}

    Continue this solution from where it stops. Output the final answer within \\boxed{}.

The level-0 row (no hint) uses NO_HINT_PROMPT_TEMPLATE, the instruction of verl's MATH example:

    {problem}

    Let's think step by step and output the final answer within \\boxed{}.

`problem` and `hint` are the published `problem` and `hints[].text` with surrounding whitespace
stripped. `verl_reward.compute_score` in this package scores these rows. verl passes it the
decoded response without the prompt, so a `\\boxed{}` inside a hint never earns reward.

NOTE: prompts grow with the hint level, and RLHFDataset drops prompts longer than
`data.max_prompt_length` tokens when `data.filter_overlong_prompts` is on (its default). The
row counts returned here are then higher than what verl trains on, so size that limit for the
longest hint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from corpusforge.generators.errors import ConfigError, SourceError

logger = logging.getLogger(__name__)

DEFAULT_DATA_SOURCE = "corpusforge/stephint"
ABILITY = "math"

HINT_PROMPT_TEMPLATE = (
    "{problem}\n\n"
    "Here is the beginning of a solution:\n\n"
    "{hint}\n\n"
    "Continue this solution from where it stops. "
    "Output the final answer within \\boxed{{}}."
)
NO_HINT_PROMPT_TEMPLATE = (
    "{problem}\n\nLet's think step by step and output the final answer within \\boxed{{}}."
)

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
REWARD_MODEL = pa.struct([("style", pa.string()), ("ground_truth", pa.string())])
EXTRA_INFO = pa.struct(
    [
        ("index", pa.int64()),
        ("id", pa.string()),
        ("split", pa.string()),
        ("hint_level", pa.int32()),
        ("hint_num_steps", pa.int32()),
        ("hint_text", pa.string()),
        ("total_steps", pa.int32()),
        ("answer_in_hint", pa.bool_()),
    ]
)

# Unlike the published tables, these files carry no Hugging Face features metadata. `datasets`
# before 4.0 has no `List` feature type, which `with_features` writes, and verl loads the files
# with whatever `datasets` the training environment has. Without the metadata, `datasets` infers
# the features from the Arrow types.
VERL_SCHEMA = pa.schema(
    [
        pa.field("data_source", pa.string(), nullable=False),
        pa.field("prompt", pa.list_(MESSAGE), nullable=False),
        pa.field("ability", pa.string(), nullable=False),
        pa.field("reward_model", REWARD_MODEL, nullable=False),
        pa.field("extra_info", EXTRA_INFO, nullable=False),
    ]
)

CHAIN_COLUMNS = ["id", "problem", "reference_answer", "num_steps", "hints"]

# Reason codes of chains that produce no rows.
SKIP_NO_HINT_LEVELS = "no_hint_levels"
SKIP_ALL_HINTS_CONTAIN_ANSWER = "all_hints_contain_answer"

_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_HASH_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class _Shard:
    path: Path
    split: str
    rows: int | None
    sha256: str | None


def export_verl(
    release_dir: Path,
    out_dir: Path,
    *,
    include_answer_hints: bool = False,
    include_no_hint: bool = True,
    data_source: str = DEFAULT_DATA_SOURCE,
    batch_size: int = 1024,
    verify_checksums: bool = True,
) -> dict:
    """Write `<out_dir>/<split>.parquet` for every split of the release's `chains` config.

    The shards listed in `<release_dir>/manifest.json` are read `batch_size` chains at a time,
    so memory is bounded by one input batch and its output rows, whatever the release size.
    Each exported chain gives one row per kept hint level, in ascending level order. With
    `include_no_hint` (the default) it also gives a level-0 row with the bare problem first.
    Evaluation prompts carry no hint, so that row keeps the unhinted prompt in the training mix.

    A chain is left out, with no level-0 row either, when it has no hint level (a single-step
    chain) or when every hint level was dropped for containing the answer. So every exported
    problem has at least one hint row. Hint levels whose published `answer_in_hint` flag is
    true are dropped unless `include_answer_hints` is set, because a hint that states the
    answer lets the policy copy it into the box.

    With `verify_checksums`, each shard's SHA-256 is compared with the manifest before it is
    read, which reads every shard twice. Each split file is written under a temporary name
    and renamed when complete, so a failed export leaves no partial `<split>.parquet`. A
    split whose chains are all left out still gets a file, with zero rows.

    Returns a dict with `rows` and `files` per split, `chains_read`, `chains_exported`,
    `skipped_chains` by reason code (`no_hint_levels`, `all_hints_contain_answer`) and
    `skipped_hint_levels` ({"answer_in_hint": n}, always 0 with `include_answer_hints`).

    Raises ConfigError when `batch_size` is below 1. Raises SourceError when the manifest is
    missing or invalid or lists no `chains` shards, or when a shard is missing, fails its
    checksum, lacks a needed column or has a row count that differs from the manifest.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")

    release_dir = Path(release_dir)
    out_dir = Path(out_dir)
    shards_by_split = _chain_shards(release_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    result = {
        "rows": {},
        "files": {},
        "chains_read": 0,
        "chains_exported": 0,
        "skipped_chains": {SKIP_NO_HINT_LEVELS: 0, SKIP_ALL_HINTS_CONTAIN_ANSWER: 0},
        "skipped_hint_levels": {"answer_in_hint": 0},
    }

    for split, shards in shards_by_split.items():
        logger.info("Exporting split %s of %s: %d shards", split, release_dir, len(shards))
        final_path = out_dir / f"{split}.parquet"
        temporary_path = out_dir / f".{split}.parquet.tmp"
        row_index = 0
        try:
            with pq.ParquetWriter(temporary_path, VERL_SCHEMA) as writer:
                for shard in shards:
                    if verify_checksums:
                        _check_sha256(shard)
                    for chains in _read_chain_batches(shard, batch_size):
                        rows = []
                        for chain in chains:
                            result["chains_read"] += 1
                            chain_rows = _rows_for_chain(
                                chain,
                                split=split,
                                first_index=row_index,
                                data_source=data_source,
                                include_answer_hints=include_answer_hints,
                                include_no_hint=include_no_hint,
                                counts=result,
                            )
                            if chain_rows:
                                result["chains_exported"] += 1
                            row_index += len(chain_rows)
                            rows.extend(chain_rows)
                        if rows:
                            writer.write_batch(pa.RecordBatch.from_pylist(rows, VERL_SCHEMA))
            os.replace(temporary_path, final_path)
        except BaseException:
            temporary_path.unlink(missing_ok=True)
            raise

        result["rows"][split] = row_index
        result["files"][split] = str(final_path)
        logger.info("Wrote %d rows to %s", row_index, final_path)

    logger.info(
        "Exported %d of %d chains; skipped chains: %s; skipped hint levels: %s",
        result["chains_exported"],
        result["chains_read"],
        result["skipped_chains"],
        result["skipped_hint_levels"],
    )
    return result


def build_prompt(problem: str, hint_text: str | None) -> list[dict[str, str]]:
    """Return the chat messages of one row: a single user turn, with the hint when given."""
    if hint_text is None:
        content = NO_HINT_PROMPT_TEMPLATE.format(problem=problem.strip())
    else:
        content = HINT_PROMPT_TEMPLATE.format(problem=problem.strip(), hint=hint_text.strip())
    return [{"role": "user", "content": content}]


def _rows_for_chain(
    chain: dict,
    *,
    split: str,
    first_index: int,
    data_source: str,
    include_answer_hints: bool,
    include_no_hint: bool,
    counts: dict,
) -> list[dict]:
    """Return the verl rows of one chain, updating the skip counters in `counts`."""
    hints = sorted(chain["hints"], key=lambda hint: hint["level"])
    if not hints:
        counts["skipped_chains"][SKIP_NO_HINT_LEVELS] += 1
        return []

    if not include_answer_hints:
        kept = [hint for hint in hints if not hint["answer_in_hint"]]
        counts["skipped_hint_levels"]["answer_in_hint"] += len(hints) - len(kept)
        hints = kept
    if not hints:
        counts["skipped_chains"][SKIP_ALL_HINTS_CONTAIN_ANSWER] += 1
        return []

    levels: list[dict | None] = [None, *hints] if include_no_hint else list(hints)
    rows = []
    for offset, hint in enumerate(levels):
        hint_text = None if hint is None else hint["text"]
        rows.append(
            {
                "data_source": data_source,
                "prompt": build_prompt(chain["problem"], hint_text),
                "ability": ABILITY,
                "reward_model": {"style": "rule", "ground_truth": chain["reference_answer"]},
                "extra_info": {
                    "index": first_index + offset,
                    "id": chain["id"],
                    "split": split,
                    "hint_level": 0 if hint is None else hint["level"],
                    "hint_num_steps": 0 if hint is None else hint["num_steps"],
                    "hint_text": hint_text or "",
                    "total_steps": chain["num_steps"],
                    "answer_in_hint": False if hint is None else hint["answer_in_hint"],
                },
            }
        )
    return rows


def _chain_shards(release_dir: Path) -> dict[str, list[_Shard]]:
    """Return the `chains` shards of the manifest grouped by split, in manifest order."""
    manifest_path = release_dir / "manifest.json"
    if not manifest_path.is_file():
        raise SourceError(
            manifest_path,
            "manifest not found",
            fix="pass the release folder that contains manifest.json",
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SourceError(manifest_path, f"invalid JSON: {error}") from error

    entries = manifest.get("shards") if isinstance(manifest, dict) else None
    if not isinstance(entries, list):
        raise SourceError(manifest_path, "invalid manifest: the `shards` list is missing")

    release_root = release_dir.resolve()
    shards_by_split: dict[str, list[_Shard]] = {}
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("config") != "chains":
            continue
        path_text = entry.get("path")
        split = entry.get("split")
        if not isinstance(path_text, str) or not isinstance(split, str):
            raise SourceError(manifest_path, f"shard entry {number} is missing `path` or `split`")
        if not _SPLIT_NAME.fullmatch(split):
            raise SourceError(
                manifest_path,
                f"shard entry {number} has split {split!r}, which is not a valid file name",
            )
        shard_path = (release_dir / path_text).resolve()
        if not shard_path.is_relative_to(release_root):
            raise SourceError(
                manifest_path, f"shard path {path_text!r} points outside the release folder"
            )
        shards_by_split.setdefault(split, []).append(
            _Shard(path=shard_path, split=split, rows=entry.get("rows"), sha256=entry.get("sha256"))
        )

    if not shards_by_split:
        raise SourceError(manifest_path, "lists no shards of the `chains` config")
    return shards_by_split


def _check_sha256(shard: _Shard) -> None:
    """Raise SourceError when the shard is missing or its SHA-256 differs from the manifest."""
    if not shard.path.is_file():
        raise SourceError(shard.path, "shard listed in manifest.json not found")
    if shard.sha256 is None:
        raise SourceError(
            shard.path,
            "manifest.json gives no sha256 for this shard",
            fix="pass verify_checksums=False to export without the check",
        )
    digest = hashlib.sha256()
    with shard.path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    if digest.hexdigest() != shard.sha256:
        raise SourceError(
            shard.path,
            f"sha256 is {digest.hexdigest()} but manifest.json lists {shard.sha256}",
            fix="download the release again",
        )


def _read_chain_batches(shard: _Shard, batch_size: int) -> Iterator[list[dict]]:
    """Yield the shard's chains as lists of at most `batch_size` row dicts."""
    if not shard.path.is_file():
        raise SourceError(shard.path, "shard listed in manifest.json not found")
    with pq.ParquetFile(shard.path) as parquet_file:
        names = parquet_file.schema_arrow.names
        missing = [name for name in CHAIN_COLUMNS if name not in names]
        if missing:
            raise SourceError(shard.path, f"missing columns {missing} of the `chains` table")
        if shard.rows is not None and parquet_file.metadata.num_rows != shard.rows:
            raise SourceError(
                shard.path,
                f"has {parquet_file.metadata.num_rows} rows but manifest.json lists {shard.rows}",
            )
        for batch in parquet_file.iter_batches(batch_size=batch_size, columns=CHAIN_COLUMNS):
            yield batch.to_pylist()
