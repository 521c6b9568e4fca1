"""Release rules: checks that need every shard of a release, keyed by dataset and rule name.

Each rule is fed the shards one record batch at a time and keeps only the keys
it needs in memory, never whole rows.
"""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa

from corpusforge.data_contracts import med_mim_rules, mllmu_med_rules
from corpusforge.data_contracts.report import RuleResult


class ReleaseCheck(Protocol):
    """A release rule: `add` is called once per record batch of every checked shard."""

    columns: tuple[str, ...]

    def __init__(self, result: RuleResult) -> None: ...

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None: ...


class UniqueIds:
    """Release rule: each record id appears once in the whole release."""

    columns = ("id",)

    def __init__(self, result: RuleResult) -> None:
        self.result = result
        self.first_file: dict[str, str] = {}

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None:
        for record_id in batch.column("id").to_pylist():
            if record_id in self.first_file:
                self.result.record(file, record_id, f"id also in {self.first_file[record_id]}")
            else:
                self.first_file[record_id] = file


class DisjointSplits:
    """Release rule: one (source, source_id) never appears in two splits."""

    columns = ("id", "source", "source_id")

    def __init__(self, result: RuleResult) -> None:
        self.result = result
        self.first_split: dict[tuple[str, str], str] = {}

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None:
        ids = batch.column("id").to_pylist()
        sources = batch.column("source").to_pylist()
        source_ids = batch.column("source_id").to_pylist()
        for record_id, source, source_id in zip(ids, sources, source_ids, strict=True):
            first = self.first_split.setdefault((source, source_id), split)
            if first != split:
                value = f"{source} record {source_id!r} is in split {split} and in {first}"
                self.result.record(file, record_id, value)


# dataset name -> {rule name: rule}
RELEASE_RULES: dict[str, dict[str, type[ReleaseCheck]]] = {
    "stephint": {"ids_unique_across_shards": UniqueIds, "splits_disjoint": DisjointSplits},
    "med_mim": {"ids_unique_across_shards": UniqueIds, **med_mim_rules.RELEASE_RULE_CLASSES},
    "mllmu_med": mllmu_med_rules.RELEASE_RULE_CLASSES,
}
