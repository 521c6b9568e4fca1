"""Validate a staged release against its data contract before it is published.

For every planned shard with a part file, `validate_staging` checks the shard
json against the file, the Arrow schema against `corpusforge.schemas`, and runs
the custom row rules. It runs the Great Expectations suite compiled from the
contract on batches of consecutive shards (see gx_batches.py). Then it streams
the needed columns of every shard through the release rules. Results go to
`<staging>/validation/`: `summary.json`, and the GX results that each shard's
`gx_results` in the summary lists.

A split whose shards all have 0 rows passes, and the dataset card lists it with
0 rows and leaves it out of its configs. A release with 0 rows in every split
fails, with the quarantine reasons of its records, so that a source whose
records were all rejected (for example by a field mapping that matches no
field) is never published.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from corpusforge.data_contracts.arrow_types import arrow_type_name, schema_differences
from corpusforge.data_contracts.contract import load_contract
from corpusforge.data_contracts.gx_batches import MAX_BATCH_BYTES, MAX_BATCH_ROWS, GxBatcher
from corpusforge.data_contracts.model import Contract, ContractError
from corpusforge.data_contracts.release_rules import RELEASE_RULES
from corpusforge.data_contracts.report import (
    MAX_EXAMPLES,
    RuleResult,
    ValidationReport,
    strip_folder,
    write_json,
)
from corpusforge.data_contracts.rules import ROW_RULES
from corpusforge.data_contracts.staging import (
    MANIFEST_DESCRIPTION,
    MANIFEST_RULE,
    Shard,
    check_shard_manifest,
    check_unplanned_files,
    read_plan,
)
from corpusforge.generators.errors import ConfigError, ValidationFailed
from corpusforge.schemas import get_schema

logger = logging.getLogger(__name__)

SCHEMA_RULE = "arrow_schema"
SCHEMA_DESCRIPTION = (
    "Each part file has the Arrow schema of corpusforge.schemas: column names, order, "
    "types and nullability."
)
# Rows per record batch when release rules stream a part file.
RELEASE_BATCH_ROWS = 65_536


class _Run:
    """State of one validation: the contract, compiled suites and results of every rule."""

    def __init__(
        self,
        staging: str | Path,
        max_batch_rows: int = MAX_BATCH_ROWS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        # Absolute, so that every path in a message starts with it and
        # `_portable_summary` can make each one relative.
        self.staging = Path(staging).absolute()
        self.plan = read_plan(self.staging)
        self.contract = load_contract(self.plan["dataset"])
        _check_contract_matches_schemas(self.contract)
        self.out_dir = self.staging / "validation"
        self.out_dir.mkdir(exist_ok=True)
        self.rules: dict[str, RuleResult] = {
            MANIFEST_RULE: RuleResult(MANIFEST_RULE, "manifest", MANIFEST_DESCRIPTION),
            SCHEMA_RULE: RuleResult(SCHEMA_RULE, "schema", SCHEMA_DESCRIPTION),
        }
        self.batcher = GxBatcher(
            self.contract.name,
            self.contract.tables,
            self.out_dir,
            self.rules,
            max_batch_rows,
            max_batch_bytes,
        )
        self.suites = self.batcher.suites
        for name, table in self.contract.tables.items():
            for expectation in self.suites[name].expectations:
                rule = expectation.meta["rule"]
                kwargs = expectation.configuration.kwargs.items()
                call = f"{type(expectation).__name__}({', '.join(f'{k}={v!r}' for k, v in kwargs)})"
                self.rules[rule] = RuleResult(rule, "gx", call)
            for rule in table.row_rules:
                self.rules[rule.name] = RuleResult(rule.name, "row", rule.description)
            for rule in table.release_rules:
                self.rules[rule.name] = RuleResult(rule.name, "release", rule.description)

    def shard_rules(self, config: str) -> list[RuleResult]:
        """Return the GX and row rules that run on each part file of `config`."""
        names = [e.meta["rule"] for e in self.suites[config].expectations]
        names += [rule.name for rule in self.contract.tables[config].row_rules]
        return [self.rules[name] for name in names]

    def check_shard(self, planned: dict[str, Any]) -> Shard:
        """Check one planned shard, leaving its GX run to the batcher's next run."""
        shard = check_shard_manifest(self.staging, planned, self.rules[MANIFEST_RULE])
        if shard.path is None:
            shard.skip_reason = "no rows" if shard.rows == 0 else "shard json and files disagree"
            return shard
        if shard.config not in self.contract.tables:
            known = ", ".join(sorted(self.contract.tables))
            problem = f"config {shard.config!r} is not in the contract; it has: {known}"
            self.rules[MANIFEST_RULE].record(shard.label, None, problem, rows=0)
            shard.skip_reason = problem
            return shard

        expected = get_schema(self.contract.name, shard.config)
        differences = schema_differences(expected, pq.read_schema(shard.path))
        for position, difference in enumerate(differences):
            rows = shard.rows if position == 0 else 0
            self.rules[SCHEMA_RULE].record(shard.label, None, difference, rows=rows)
        if differences:
            shard.skip_reason = "Arrow schema differs from corpusforge.schemas"
            for rule in self.shard_rules(shard.config):
                rule.skip(shard.label, shard.skip_reason)
            return shard

        self.check_rows(shard)
        shard.checked = True
        return shard

    def check_rows(self, shard: Shard) -> None:
        """Run the row rules on one part file whose schema matches, and queue it for GX."""
        table = pq.read_table(shard.path)
        table_contract = self.contract.tables[shard.config]
        self.batcher.add(shard, table)

        record_ids = table.column(table_contract.record_id) if table_contract.record_id else None
        for rule in table_contract.row_rules:
            row_rule = ROW_RULES[self.contract.name][rule.implementation]
            result = self.rules[rule.name]
            failing = row_rule.check(table.select(list(row_rule.columns)))
            for index in failing[:MAX_EXAMPLES]:
                record_id = record_ids[index].as_py() if record_ids is not None else f"row {index}"
                result.record(shard.label, record_id, row_rule.example(table, index))
            result.add_failed_rows(shard.label, len(failing) - len(failing[:MAX_EXAMPLES]))

    def check_release(self, shards: list[Shard]) -> None:
        """Stream the columns release rules need from every checked shard, one batch at a time."""
        for config, table in self.contract.tables.items():
            checks = [
                RELEASE_RULES[self.contract.name][rule.implementation](self.rules[rule.name])
                for rule in table.release_rules
            ]
            columns = sorted({column for check in checks for column in check.columns})
            for shard in shards:
                if shard.config != config or shard.path is None:
                    continue
                if not shard.checked:
                    for rule in table.release_rules:
                        self.rules[rule.name].skip(shard.label, shard.skip_reason)
                    continue
                part_file = pq.ParquetFile(shard.path)
                for batch in part_file.iter_batches(RELEASE_BATCH_ROWS, columns=columns):
                    for check in checks:
                        check.add(batch, shard.label, shard.split)
            for check in checks:
                finish = getattr(check, "finish", None)
                if finish is not None:
                    finish()


def validate_staging(
    staging: str | Path,
    *,
    max_batch_rows: int = MAX_BATCH_ROWS,
    max_batch_bytes: int = MAX_BATCH_BYTES,
) -> ValidationReport:
    """Validate every shard of a staged release and the release as a whole.

    Writes `validation/summary.json` in both cases, then raises ValidationFailed
    with a readable summary of every failed rule, or returns the report.
    ContractError means the contract itself is broken, not the data.
    `max_batch_rows` and `max_batch_bytes` limit the shards that one GX run
    stacks (see gx_batches.py).
    """
    started = time.monotonic()
    run = _Run(staging, max_batch_rows, max_batch_bytes)
    planned = run.plan["shards"]
    shards = []
    for position, entry in enumerate(planned, start=1):
        logger.info("Validating shard %d of %d (index %s)", position, len(planned), entry["index"])
        shards.append(run.check_shard(entry))
    run.batcher.flush()
    check_unplanned_files(run.staging, planned, run.rules[MANIFEST_RULE])
    run.check_release(shards)

    report = ValidationReport(
        dataset=run.contract.name,
        release=str(run.plan.get("release", "")),
        contract_id=run.contract.id,
        contract_version=run.contract.version,
        contract_api_version=run.contract.api_version,
        rows=sum(shard.rows for shard in shards),
        shards=[shard.summary() for shard in shards],
        rules=run.rules,
        summary_path=str(run.out_dir / "summary.json"),
        seconds=time.monotonic() - started,
    )
    write_json(Path(report.summary_path), _portable_summary(report, run.staging))
    if report.rows == 0 and report.success:
        logger.error("Release %s of %s has no rows", report.release, report.dataset)
        raise ValidationFailed(_no_rows_message(run.staging, report, shards))
    if not report.success:
        failed = ", ".join(rule.name for rule in report.failed_rules)
        logger.error("Release %s failed rules: %s", report.release, failed)
        raise ValidationFailed(report.failure_message())
    logger.info(
        "Release %s passed %d rules on %d rows", report.release, len(run.rules), report.rows
    )
    return report


def _portable_summary(report: ValidationReport, staging: Path) -> dict[str, Any]:
    """Return the report as JSON with paths relative to the staging folder.

    The summary is published with the release, so it names no folder of the
    machine that validated it. Error texts that quote a staged file keep the
    file's path relative to the staging folder.
    """
    summary = report.to_json()
    # The longer path first, so that stripping one never leaves part of the other.
    folders = sorted({str(staging.resolve()), str(staging.absolute())}, key=len, reverse=True)
    for folder in folders:
        summary = strip_folder(summary, folder)
    return summary


def _no_rows_message(staging: Path, report: ValidationReport, shards: list[Shard]) -> str:
    """Return why a release has no rows: quarantined records by reason, an example and a fix."""
    reasons: dict[str, int] = {}
    for shard in shards:
        for reason, count in shard.quarantined.items():
            reasons[reason] = reasons.get(reason, 0) + int(count)
    lines = [f"{report.dataset} release {report.release!r} has no rows, so it is not published."]
    if reasons:
        counts = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items()))
        lines.append(f"Every source record was quarantined: {counts}.")
        main_reason = max(sorted(reasons), key=reasons.get)
        example = _first_quarantined(staging, main_reason)
        if example:
            lines.append(f"First {main_reason} record: {example}")
        lines.append("The records are in quarantine/ of the staging folder.")
        lines.append(_no_rows_hint(main_reason))
    else:
        lines.append(
            "The sources gave no records: check the sources and the limit. "
            "No record was quarantined."
        )
    return "\n".join(lines)


def _no_rows_hint(reason: str) -> str:
    """Return what to check when `reason` is the most frequent quarantine reason."""
    if reason.startswith("llm_"):
        return (
            "Check the model's replies: the endpoint, llm_model, and whether the model "
            "follows the JSON schema of the requests (see the LLM backend section of the README)."
        )
    if reason in ("missing_field", "invalid_field", "invalid_answer", "empty_answer"):
        return (
            "Check that each source's format matches its file, and that field options such "
            "as problem_field or answer_field name fields that the records have."
        )
    return "Check each source's format and options against the README's source formats."


def _first_quarantined(staging: Path, reason: str) -> str:
    """Return the line and detail of the first staged quarantine record of `reason`, or ""."""
    for path in sorted((staging / "quarantine").glob("*.jsonl")):
        record = None
        with path.open(encoding="utf-8") as stream:
            for line in stream:
                item = _json_or_none(line)
                if item is not None and item.get("reason") == reason:
                    record = item
                    break
        if record is None:
            continue
        where = f"line {record['line']} of " if record.get("line") else ""
        return (
            f"{where}{record.get('source')} source: {record.get('reason')}: {record.get('detail')}"
        )
    return ""


def validate_shard(staging: str | Path, index: int) -> dict[str, Any]:
    """Validate one shard without the release rules and return its results.

    Writes `validation/gx-shard-<index>.json` when the shard has a part file
    whose schema matches. Failed rules do not raise: check the returned `success`.
    """
    run = _Run(staging)
    entries = [entry for entry in run.plan["shards"] if entry["index"] == index]
    if not entries:
        known = sorted(entry["index"] for entry in run.plan["shards"])
        raise ConfigError(f"plan.json has no shard with index {index}; indexes: {known}")
    shard = run.check_shard(entries[0])
    run.batcher.flush()
    names = [MANIFEST_RULE, SCHEMA_RULE] + [r.name for r in run.shard_rules(shard.config)]
    rules = {name: run.rules[name].to_json() for name in names if name in run.rules}
    success = all(rule["passed"] for rule in rules.values())
    return {**shard.summary(), "success": success, "rules": rules}


def _check_contract_matches_schemas(contract: Contract) -> None:
    """Raise ContractError when a contract table and its Arrow schema disagree."""
    for config, table in contract.tables.items():
        try:
            schema = get_schema(contract.name, config)
        except KeyError as error:
            raise ContractError(f"{contract.path}: {error.args[0]}") from error
        names = [column.name for column in table.columns]
        if names != schema.names:
            raise ContractError(
                f"{contract.path}: schema object {config} has columns {names}; "
                f"corpusforge.schemas has {schema.names}"
            )
        for column, field in zip(table.columns, schema, strict=True):
            arrow_type = arrow_type_name(field.type)
            if column.physical_type != arrow_type or column.required == field.nullable:
                raise ContractError(
                    f"{contract.path}: property {column.name} has physicalType "
                    f"{column.physical_type!r} and required {column.required}; "
                    f"corpusforge.schemas has {arrow_type!r} and nullable {field.nullable}"
                )


def _json_or_none(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
