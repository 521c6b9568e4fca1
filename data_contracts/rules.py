"""Custom row rules that Great Expectations cannot express, keyed by dataset and rule name.

A contract names a rule in a `quality` entry of type `custom`, with engine
`corpusforge` and `implementation: <rule name>`. A row rule checks one shard
table and returns the indices of its failing rows. Rules that need every shard
of a release are in release_rules.py.

String offsets and lengths count Unicode code points, as Python's `len` and
`str` slicing do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpusforge.data_contracts import med_mim_rules, mllmu_med_rules
from corpusforge.data_contracts.report import shorten


@dataclass(frozen=True)
class RowRule:
    """A check of single rows: `check` returns failing row indices of a table.

    `columns` lists the columns `check` reads, and `example` returns the value a
    report shows for one failing row.
    """

    columns: tuple[str, ...]
    check: Callable[[pa.Table], list[int]]
    example: Callable[[pa.Table, int], Any]


def _failing(ok: pa.Array | pa.ChunkedArray) -> list[int]:
    """Return the indices where `ok` is false or null."""
    passed = pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
    return np.flatnonzero(~passed).tolist()


def _flat_list(table: pa.Table, column: str) -> tuple[pa.Array, np.ndarray]:
    """Return the flattened items of a list column and the row index of each item."""
    lists = table.column(column).combine_chunks()
    return lists.flatten(), pc.list_parent_indices(lists).to_numpy()


def _mark(rows: int, parents: np.ndarray, bad_items: np.ndarray) -> list[int]:
    """Return the sorted rows that own at least one bad item."""
    bad = np.zeros(rows, dtype=bool)
    bad[parents[bad_items]] = True
    return np.flatnonzero(bad).tolist()


def _list_edges(parents: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return masks for the first and last item of each list, and for item pairs in one list."""
    if len(parents) == 0:
        empty = np.zeros(0, dtype=bool)
        return empty, empty, empty
    starts_new = np.r_[True, parents[1:] != parents[:-1]]
    is_last = np.r_[parents[1:] != parents[:-1], True]
    same_list = parents[1:] == parents[:-1]
    return starts_new, is_last, same_list


def _cell(table: pa.Table, column: str, index: int) -> Any:
    return table.column(column)[index].as_py()


def steps_concatenate_to_chain(table: pa.Table) -> list[int]:
    joined = pc.binary_join(table.column("steps"), "")
    return _failing(pc.equal(joined, table.column("chain")))


def _first_difference(table: pa.Table, index: int) -> str:
    chain = _cell(table, "chain", index)
    joined = "".join(step or "" for step in _cell(table, "steps", index))
    position = next(
        (i for i, (a, b) in enumerate(zip(chain, joined, strict=False)) if a != b),
        min(len(chain), len(joined)),
    )
    return (
        f"at character {position} the chain has {chain[position : position + 30]!r} "
        f"but the joined steps have {joined[position : position + 30]!r}"
    )


def step_counts_agree(table: pa.Table) -> list[int]:
    num_steps = table.column("num_steps")
    steps = pc.list_value_length(table.column("steps"))
    offsets = pc.list_value_length(table.column("step_offsets"))
    return _failing(pc.and_(pc.equal(num_steps, steps), pc.equal(steps, offsets)))


def step_offsets_contiguous(table: pa.Table) -> list[int]:
    """Check that offsets tile the chain from 0 to its length, one span per step.

    Each span must be non-empty and as long as its step. Together with
    `steps_concatenate_to_chain` this makes `chain[start:end]` equal each step.
    """
    rows = len(table)
    spans, parents = _flat_list(table, "step_offsets")
    start = pc.struct_field(spans, "start").to_numpy(zero_copy_only=False)
    end = pc.struct_field(spans, "end").to_numpy(zero_copy_only=False)
    chain_length = pc.utf8_length(table.column("chain")).to_numpy(zero_copy_only=False)
    first, last, same_list = _list_edges(parents)

    bad = np.zeros(len(start), dtype=bool)
    missing = pc.or_(
        pc.struct_field(spans, "start").is_null(), pc.struct_field(spans, "end").is_null()
    )
    bad |= missing.to_numpy(zero_copy_only=False)
    bad |= ~(start < end)
    bad |= first & (start != 0)
    bad |= last & (end != chain_length[parents])
    bad[:-1] |= same_list & (end[:-1] != start[1:])
    failing = set(_mark(rows, parents, bad))

    offset_counts = pc.list_value_length(table.column("step_offsets")).to_numpy()
    step_counts = pc.list_value_length(table.column("steps")).to_numpy()
    failing.update(np.flatnonzero((offset_counts == 0) | (offset_counts != step_counts)).tolist())

    # Span lengths line up with step lengths item by item only in rows whose
    # lists have the same length. The other rows already failed above.
    aligned = np.flatnonzero(offset_counts == step_counts)
    subset = table.take(aligned)
    sub_spans, sub_parents = _flat_list(subset, "step_offsets")
    sub_steps, _ = _flat_list(subset, "steps")
    span_length = pc.subtract(
        pc.struct_field(sub_spans, "end"), pc.struct_field(sub_spans, "start")
    )
    wrong_length = pc.fill_null(pc.not_equal(span_length, pc.utf8_length(sub_steps)), True)
    bad_rows = np.unique(sub_parents[wrong_length.to_numpy(zero_copy_only=False)])
    failing.update(aligned[bad_rows].tolist())
    return sorted(failing)


def _offsets_example(table: pa.Table, index: int) -> str:
    spans = [span and (span["start"], span["end"]) for span in _cell(table, "step_offsets", index)]
    lengths = [step and len(step) for step in _cell(table, "steps", index)]
    chain_length = len(_cell(table, "chain", index))
    return f"offsets {spans}, step lengths {lengths}, chain length {chain_length}"


def hints_are_chain_prefixes(table: pa.Table) -> list[int]:
    hints, parents = _flat_list(table, "hints")
    chains = table.column("chain").take(pa.array(parents)).to_pylist()
    texts = pc.struct_field(hints, "text").to_pylist()
    bad = np.array(
        [
            text is None or not chain.startswith(text)
            for text, chain in zip(texts, chains, strict=True)
        ],
        dtype=bool,
    )
    return _mark(len(table), parents, bad)


def _first_non_prefix_hint(table: pa.Table, index: int) -> str:
    chain = _cell(table, "chain", index)
    for position, hint in enumerate(_cell(table, "hints", index)):
        if hint is None:
            return f"hint {position} is null"
        if hint["text"] is None or not chain.startswith(hint["text"]):
            return f"level {hint['level']} hint text {shorten(hint['text'])!r}"
    return ""


def hint_levels_increase_from_one(table: pa.Table) -> list[int]:
    hints, parents = _flat_list(table, "hints")
    levels = pc.fill_null(pc.struct_field(hints, "level"), 0).to_numpy(zero_copy_only=False)
    first, _, same_list = _list_edges(parents)
    bad = first & (levels != 1)
    bad[1:] |= same_list & (levels[1:] <= levels[:-1])
    return _mark(len(table), parents, bad)


def hint_num_steps_equal_level(table: pa.Table) -> list[int]:
    hints, parents = _flat_list(table, "hints")
    ok = pc.fill_null(
        pc.equal(pc.struct_field(hints, "num_steps"), pc.struct_field(hints, "level")), False
    )
    return _mark(len(table), parents, ~ok.to_numpy(zero_copy_only=False))


def hint_levels_within_chain(table: pa.Table) -> list[int]:
    hints, parents = _flat_list(table, "hints")
    row_steps = table.column("num_steps").combine_chunks().take(pa.array(parents))
    ok = pc.fill_null(pc.less_equal(pc.struct_field(hints, "level"), row_steps), False)
    return _mark(len(table), parents, ~ok.to_numpy(zero_copy_only=False))


def _hint_levels(table: pa.Table, index: int) -> str:
    hints = _cell(table, "hints", index)
    pairs = [hint and (hint["level"], hint["num_steps"]) for hint in hints]
    num_steps = _cell(table, "num_steps", index)
    return f"(level, num_steps) of hints {pairs}, chain num_steps {num_steps}"


_STEPHINT_ROW_RULES = {
    "steps_concatenate_to_chain": RowRule(
        ("steps", "chain"), steps_concatenate_to_chain, _first_difference
    ),
    "step_counts_agree": RowRule(
        ("num_steps", "steps", "step_offsets"),
        step_counts_agree,
        lambda table, i: (
            f"num_steps {_cell(table, 'num_steps', i)}, {len(_cell(table, 'steps', i))} steps, "
            f"{len(_cell(table, 'step_offsets', i))} offsets"
        ),
    ),
    "step_offsets_contiguous": RowRule(
        ("steps", "step_offsets", "chain"), step_offsets_contiguous, _offsets_example
    ),
    "hints_are_chain_prefixes": RowRule(
        ("hints", "chain"), hints_are_chain_prefixes, _first_non_prefix_hint
    ),
    "hint_levels_increase_from_one": RowRule(
        ("hints", "num_steps"), hint_levels_increase_from_one, _hint_levels
    ),
    "hint_num_steps_equal_level": RowRule(
        ("hints", "num_steps"), hint_num_steps_equal_level, _hint_levels
    ),
    "hint_levels_within_chain": RowRule(
        ("hints", "num_steps"), hint_levels_within_chain, _hint_levels
    ),
}

# dataset name -> {rule name: rule}
ROW_RULES: dict[str, dict[str, RowRule]] = {
    "stephint": _STEPHINT_ROW_RULES,
    "med_mim": {name: RowRule(*spec) for name, spec in med_mim_rules.ROW_RULE_SPECS.items()},
    "mllmu_med": {name: RowRule(*spec) for name, spec in mllmu_med_rules.ROW_RULE_SPECS.items()},
}
