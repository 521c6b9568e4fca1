"""Release rules: checks that need every shard of a release, keyed by dataset and rule name.

Each rule is fed the shards one record batch at a time and keeps only the keys
it needs in memory, never whole rows.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpusforge.data_contracts import med_mim_rules, mllmu_med_rules
from corpusforge.data_contracts.report import RuleResult


class ReleaseCheck(Protocol):
    """A release rule: `add` is called once per record batch of every checked shard.

    A rule that defines `finish()` gets that call after the last batch, and may
    record its failures there.
    """

    columns: tuple[str, ...]

    def __init__(self, result: RuleResult) -> None: ...

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None: ...


class _KeyColumns:
    """Columns of every batch, kept as Arrow arrays, with the file and split of each row.

    Arrow keeps a string in about its length plus 4 bytes, where a Python dict
    of str keys spends about 100 bytes per entry (an estimate). So a release of
    100,000 rows costs a few MB here.
    """

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.batches: list[pa.RecordBatch] = []
        self.files: list[str] = []
        self.splits: list[str] = []

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None:
        if batch.num_rows:
            self.batches.append(batch.select(list(self.columns)))
            self.files.append(file)
            self.splits.append(split)

    def table(self) -> pa.Table:
        schema = pa.schema([self.batches[0].schema.field(name) for name in self.columns])
        return pa.Table.from_batches(self.batches, schema=schema)

    def batch_of_rows(self) -> np.ndarray:
        """Return the position in `batches` of each row."""
        sizes = [batch.num_rows for batch in self.batches]
        return np.repeat(np.arange(len(sizes)), sizes)


def _repeats(table: pa.Table, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return the rows whose `keys` equal those of an earlier row, and that key's first row.

    Both arrays contain row positions, in the order of the first. Null keys count
    as equal, as None does in a Python dict. Sorting keeps memory near the size
    of the keys. An Arrow `group_by` of 100,000 ids raised RSS by about 35 MB in
    a fresh process, and sorting them by 3 MB (pyarrow 26).
    """
    rows = table.num_rows
    positions = np.arange(rows)
    ranked = table.select(keys).append_column("position", pa.array(positions))
    sort_keys = [(key, "ascending") for key in keys] + [("position", "ascending")]
    order = pc.sort_indices(ranked, sort_keys=sort_keys).to_numpy()

    same_as_previous = np.ones(max(rows - 1, 0), dtype=bool)
    for key in keys:
        column = table.column(key).take(order)
        later, earlier = column[1:], column[:-1]
        equal = pc.fill_null(pc.equal(later, earlier), False)
        both_null = pc.and_(later.is_null(), earlier.is_null())
        same_as_previous &= pc.or_(equal, both_null).to_numpy(zero_copy_only=False)

    # In sorted order each key's rows are adjacent and its first row comes first.
    starts = np.r_[True, ~same_as_previous] if rows else np.zeros(0, dtype=bool)
    first_in_order = np.flatnonzero(starts)[np.cumsum(starts) - 1]
    repeated = ~starts
    repeats = order[repeated]
    firsts = order[first_in_order[repeated]]
    by_position = np.argsort(repeats, kind="stable")
    return repeats[by_position], firsts[by_position]


class UniqueIds:
    """Release rule: each record id appears once in the whole release."""

    columns = ("id",)

    def __init__(self, result: RuleResult) -> None:
        self.result = result
        self.keys = _KeyColumns(self.columns)

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None:
        self.keys.add(batch, file, split)

    def finish(self) -> None:
        """Record every row whose id an earlier row has, in release order."""
        if not self.keys.batches:
            return
        table = self.keys.table()
        batch_of_row = self.keys.batch_of_rows()
        ids = table.column("id")
        for position, first in zip(*_repeats(table, ["id"]), strict=True):
            file = self.keys.files[batch_of_row[position]]
            first_file = self.keys.files[batch_of_row[first]]
            self.result.record(file, ids[position].as_py(), f"id also in {first_file}")


class DisjointSplits:
    """Release rule: one (source, source_id) never appears in two splits."""

    columns = ("id", "source", "source_id")

    def __init__(self, result: RuleResult) -> None:
        self.result = result
        self.keys = _KeyColumns(self.columns)

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None:
        self.keys.add(batch, file, split)

    def finish(self) -> None:
        """Record every row whose source record first appeared in another split, in order."""
        if not self.keys.batches:
            return
        table = self.keys.table()
        batch_of_row = self.keys.batch_of_rows()
        splits = self.keys.splits
        for position, first in zip(*_repeats(table, ["source", "source_id"]), strict=True):
            batch = batch_of_row[position]
            if splits[batch] == splits[batch_of_row[first]]:
                continue
            source = table.column("source")[position].as_py()
            source_id = table.column("source_id")[position].as_py()
            split, first_split = splits[batch], splits[batch_of_row[first]]
            value = f"{source} record {source_id!r} is in split {split} and in {first_split}"
            self.result.record(self.keys.files[batch], table.column("id")[position].as_py(), value)


# dataset name -> {rule name: rule}
RELEASE_RULES: dict[str, dict[str, type[ReleaseCheck]]] = {
    "stephint": {"ids_unique_across_shards": UniqueIds, "splits_disjoint": DisjointSplits},
    "med_mim": {"ids_unique_across_shards": UniqueIds, **med_mim_rules.RELEASE_RULE_CLASSES},
    "mllmu_med": mllmu_med_rules.RELEASE_RULE_CLASSES,
}
