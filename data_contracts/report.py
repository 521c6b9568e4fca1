"""Outcomes of contract rules, the validation report and its readable failure message."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A report keeps this many example values per rule and per shard file.
MAX_EXAMPLES = 5
# Data values longer than this many characters are cut in examples.
MAX_VALUE_CHARS = 120
# Example texts, which quote data values and explain the failure, are cut at this length.
MAX_EXAMPLE_CHARS = 500


def json_text(data: dict[str, Any]) -> str:
    """Return `data` as indented JSON text, with objects JSON cannot encode as text."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as indented UTF-8 JSON, with objects JSON cannot encode as text."""
    path.write_text(json_text(data), encoding="utf-8")


def strip_folder(value: Any, folder: str) -> Any:
    """Return `value` with every path under `folder` in its strings made relative to `folder`.

    Keys and values of nested dicts and lists are rewritten, so that a summary
    names no folder of the machine that validated it.
    """
    if isinstance(value, dict):
        return {
            strip_folder(key, folder): strip_folder(item, folder) for key, item in value.items()
        }
    if isinstance(value, list):
        return [strip_folder(item, folder) for item in value]
    if isinstance(value, str) and folder:
        prefix = folder.rstrip("/") + "/"
        return "." if value == folder.rstrip("/") else value.replace(prefix, "")
    return value


def published_summary(summary: dict[str, Any], published_files: dict[str, str]) -> dict[str, Any]:
    """Return a copy of `summary` that names each part file by its path in the published release.

    `published_files` maps staged part files (`parts/shard-00000.parquet`) to
    their published paths (`data/<config>/<split>-00000-of-00001.parquet`). A
    shard without rows keeps `file` None. Labels of shard json files, which only
    failed rules record, stay as they are, because a summary with a failed rule
    is never published. Applying the mapping twice gives the same summary.
    """

    def rename(file: Any) -> Any:
        return published_files.get(file, file) if isinstance(file, str) else file

    renamed = copy.deepcopy(summary)
    for shard in renamed.get("shards", []):
        shard["file"] = rename(shard.get("file"))
    for rule in renamed.get("rules", {}).values():
        for example in rule.get("examples", []):
            if "file" in example:
                example["file"] = rename(example["file"])
        rule["files"] = {rename(file): failures for file, failures in rule.get("files", {}).items()}
        skipped = rule.get("skipped_files", {})
        rule["skipped_files"] = {rename(file): reason for file, reason in skipped.items()}
    return renamed


def shorten(value: Any, limit: int = MAX_VALUE_CHARS) -> Any:
    """Return `value` ready for a JSON report: long strings cut, other objects as text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        return text[: limit - 1] + "…"
    return text


@dataclass
class FileFailures:
    """Failures of one rule in one shard file: the row count and the first examples."""

    failed_rows: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RuleResult:
    """Outcome of one rule over every file it checked.

    `kind` is where the rule comes from: `manifest` (shard json and part file
    agree), `schema` (Arrow schema), `gx` (a Great Expectations expectation
    compiled from the contract), `row` or `release` (custom Python rules).
    """

    name: str
    kind: str
    description: str = ""
    failed_rows: int = 0
    files: dict[str, FileFailures] = field(default_factory=dict)
    skipped_files: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.files

    def record(self, file: str, record_id: Any, value: Any, rows: int = 1) -> None:
        """Count `rows` failing rows in `file`, and keep the example while there are few.

        `rows` is 0 for a failure that concerns the file rather than its rows.
        """
        failures = self.files.setdefault(file, FileFailures())
        failures.failed_rows += rows
        self.failed_rows += rows
        if len(failures.examples) < MAX_EXAMPLES:
            example = {"id": shorten(record_id), "value": shorten(value, MAX_EXAMPLE_CHARS)}
            failures.examples.append(example)

    def add_failed_rows(self, file: str, rows: int) -> None:
        """Count `rows` more failing rows in `file`, without examples."""
        if rows > 0:
            self.files.setdefault(file, FileFailures()).failed_rows += rows
            self.failed_rows += rows

    def skip(self, file: str, reason: str) -> None:
        """Note that `file` was not checked by this rule, and why."""
        self.skipped_files[file] = reason

    def to_json(self) -> dict[str, Any]:
        examples = [
            {"file": file, **example}
            for file, failures in self.files.items()
            for example in failures.examples
        ][:MAX_EXAMPLES]
        return {
            "kind": self.kind,
            "description": self.description,
            "passed": self.passed,
            "failed_rows": self.failed_rows,
            "examples": examples,
            "files": {
                file: {"failed_rows": failures.failed_rows, "examples": failures.examples}
                for file, failures in self.files.items()
            },
            "skipped_files": dict(self.skipped_files),
        }


@dataclass
class ValidationReport:
    """Result of validating one staged release, as written to `validation/summary.json`.

    `shards` lists each planned shard with the sha256 read from its shard json,
    so the publisher can check that the files did not change after validation.
    """

    dataset: str
    release: str
    contract_id: str
    contract_version: str
    contract_api_version: str
    rows: int
    shards: list[dict[str, Any]]
    rules: dict[str, RuleResult]
    summary_path: str = ""
    # Wall time of the validation, which the manifest copies but leaves out of its fingerprint.
    seconds: float | None = None

    @property
    def success(self) -> bool:
        return all(rule.passed for rule in self.rules.values())

    @property
    def failed_rules(self) -> list[RuleResult]:
        return [rule for rule in self.rules.values() if not rule.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "release": self.release,
            "success": self.success,
            "contract": {
                "id": self.contract_id,
                "version": self.contract_version,
                "apiVersion": self.contract_api_version,
            },
            "rows": self.rows,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "shards": self.shards,
            "rules": {name: rule.to_json() for name, rule in self.rules.items()},
        }

    def failure_message(self) -> str:
        """Return a multi-line summary of every failed rule, file, count and example."""
        failed = self.failed_rules
        lines = [
            f"{self.dataset} release {self.release!r} broke data contract "
            f"{self.contract_id} {self.contract_version}: "
            f"{len(failed)} of {len(self.rules)} rules failed."
        ]
        for rule in failed:
            for file, failures in rule.files.items():
                rows = failures.failed_rows
                count = f" on {rows} row{'' if rows == 1 else 's'}" if rows else ""
                lines.append(f"- {rule.name} ({rule.kind} rule) failed{count} in {file}:")
                for example in failures.examples:
                    record = f"id {example['id']!r}: " if example["id"] is not None else ""
                    lines.append(f"    {record}{example['value']}")
        if self.summary_path:
            lines.append(f"Full results: {self.summary_path}")
        return "\n".join(lines)
