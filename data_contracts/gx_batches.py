"""Run the Great Expectations suite once per batch of shards instead of once per shard.

Each GX validation builds its metric dependency graph anew. For the 64
StepHint expectations that took about 0.3 s of CPU with SUMMARY results, and
0.14 s when GX reports only success, however few rows the dataframe had
(great_expectations 1.24.1 on the 2-core VM of bench/README.md). With
1,000-row shards validated one by one, that was most of the validation time.
So consecutive shards of one config are stacked into one dataframe, and the
expectations that check each row or column on its own
(`gx_suite.STACKABLE_EXPECTATIONS`) run once on the stack, asking GX only
whether each passed.

Reports still name the shard file of every failure:
- Each shard of a batch gets its own GX run of the expectations that must see
  the shard alone, such as the row count. That run costs a few milliseconds.
- When a stacked expectation fails, each shard's run repeats it, and only
  the shard runs are recorded. So the failing record ids, values and counts
  are the ones each shard gives alone. A stacked uniqueness check also fails
  when two shards share a value, which each shard alone passes. Release
  rules such as StepHint's `ids_unique_across_shards` report such duplicates.
- A batch of one shard runs the whole suite once, as before batching.

Results go to `validation/gx-batch-<first>-<last>.json` (only the success of
each stacked expectation) for each batch of several shards, and to
`validation/gx-shard-<index>.json` for each shard that had a run of its own.
The summary lists each shard's files under `gx_results`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from corpusforge.data_contracts.gx_suite import (
    build_suite,
    columns_read,
    failed_rules,
    is_stackable,
    record_gx_failures,
    run_suite,
    with_null_markers,
)
from corpusforge.data_contracts.model import Table
from corpusforge.data_contracts.report import RuleResult, write_json
from corpusforge.data_contracts.staging import Shard

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite

logger = logging.getLogger(__name__)

# A batch stacks shards until it would exceed this many rows. A stacked StepHint
# run took 0.15 s of CPU on 1,000 rows, 0.22 s on 10,000 and 0.32 s on 50,000,
# so larger batches would still save some time. This limit keeps each batch the
# same size in releases of any size, so peak memory stays flat as releases grow.
MAX_BATCH_ROWS = 10_000
# A batch also stops before this many bytes of Arrow data, counted after nested
# columns became 1-byte null markers. GX gets a pandas copy of the batch and
# filters further copies one expectation at a time. A stacked run on 45 MB of
# StepHint data raised peak RSS by 48 MB, beyond the batch's own Arrow data.
# The limit matters for wide rows such as long texts.
MAX_BATCH_BYTES = 64 * 1024 * 1024


@dataclass
class _Member:
    """A shard waiting in a batch, with its columns as GX gets them."""

    shard: Shard
    table: pa.Table


class GxBatcher:
    """Collect checked shards of one config into batches and run the GX suite on each batch.

    `tables` maps each config to its contract table. `add` takes shards in plan
    order and runs the pending batch when the next shard has another config or
    would exceed a limit. Call `flush` after the last shard. Failures go to
    `rules`, keyed by rule name.
    """

    def __init__(
        self,
        dataset: str,
        tables: dict[str, Table],
        out_dir: Path,
        rules: dict[str, RuleResult],
        max_rows: int = MAX_BATCH_ROWS,
        max_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        if max_rows < 1 or max_bytes < 1:
            raise ValueError(
                f"invalid batch limits: max_rows={max_rows}, max_bytes={max_bytes}; use 1 or more"
            )
        self.dataset = dataset
        self.tables = tables
        self.suites = {config: build_suite(dataset, table) for config, table in tables.items()}
        self.stacked_suites = {
            config: build_suite(dataset, table, is_stackable, "stacked")
            for config, table in tables.items()
        }
        self.record_ids = {config: table.record_id for config, table in tables.items()}
        self.out_dir = out_dir
        self.rules = rules
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.pending: list[_Member] = []
        self.pending_rows = 0
        self.pending_bytes = 0

    def add(self, shard: Shard, table: pa.Table) -> None:
        """Queue one shard whose schema matches its contract table, running the batch if full."""
        flat = with_null_markers(table).replace_schema_metadata(None)
        if self.pending and (
            self.pending[0].shard.config != shard.config
            or self.pending_rows + flat.num_rows > self.max_rows
            or self.pending_bytes + flat.nbytes > self.max_bytes
        ):
            self.flush()
        self.pending.append(_Member(shard, flat))
        self.pending_rows += flat.num_rows
        self.pending_bytes += flat.nbytes

    def flush(self) -> None:
        """Run the GX suite on the pending shards and record their failures."""
        members = self.pending
        self.pending = []
        self.pending_rows = 0
        self.pending_bytes = 0
        if len(members) == 1:
            member = members[0]
            self._run_on_shard(member, self.suites[member.shard.config])
        elif members:
            self._run_on_batch(members)

    def _run_on_batch(self, members: list[_Member]) -> None:
        config = members[0].shard.config
        record_id = self.record_ids[config]
        first, last = members[0].shard.index, members[-1].shard.index
        started = time.monotonic()
        stacked = pa.concat_tables([member.table for member in members])
        batch_result = run_suite(self.stacked_suites[config], stacked, record_id, details=False)
        del stacked
        batch_file = f"gx-batch-{first:05d}-{last:05d}.json"
        write_json(self.out_dir / batch_file, batch_result)

        # The shard runs repeat the stacked expectations that failed, so that
        # each failure is counted in the shard file that contains it.
        rerun = failed_rules(batch_result)
        shard_suite = build_suite(
            self.dataset,
            self.tables[config],
            lambda expectation: not is_stackable(expectation) or expectation.meta["rule"] in rerun,
            "shard",
        )
        # GX converts and hashes every column it gets, so the shard runs get only
        # the columns they read: none for a row count alone.
        columns = columns_read(shard_suite)
        if columns and record_id is not None and record_id not in columns:
            columns.append(record_id)
        for member in members:
            member.shard.gx_results.append(f"validation/{batch_file}")
            if shard_suite.expectations:
                table = member.table if columns is None else member.table.select(columns)
                self._run_on_shard(_Member(member.shard, table), shard_suite)
        logger.info(
            "GX suite ran on shards %d to %d (%d shards, %d rows) in %.1f s; rerun per shard: %s",
            first,
            last,
            len(members),
            sum(member.table.num_rows for member in members),
            time.monotonic() - started,
            ", ".join(sorted(rerun)) or "none",
        )

    def _run_on_shard(self, member: _Member, suite: ExpectationSuite) -> None:
        shard = member.shard
        record_id = self.record_ids[shard.config]
        result = run_suite(suite, member.table, record_id)
        shard_file = f"gx-shard-{shard.index:05d}.json"
        write_json(self.out_dir / shard_file, result)
        shard.gx_results.append(f"validation/{shard_file}")
        record_gx_failures(result, shard.label, shard.rows, record_id, self.rules)
