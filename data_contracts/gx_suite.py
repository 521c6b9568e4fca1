"""Compile a contract table into a Great Expectations 1.x suite and run it on shard tables.

GX converts list, struct and binary columns to Python objects, so their Arrow
types are checked with pyarrow (`arrow_types.schema_differences`), and GX only
checks that they exist and, where required, are not null. GX gets each nested column
as a null marker (1 where the value is present, null where it is null): GX
pickles the whole dataframe to fingerprint each batch, and pickling the Python
lists and dicts of the real values took about 40% of the time to validate a
10,000-row StepHint shard.

Great Expectations takes about 10 seconds to import, so it is imported on first
use, which keeps `import corpusforge.data_contracts` cheap for DAG parsing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from corpusforge.data_contracts.model import Table
from corpusforge.data_contracts.report import MAX_EXAMPLES, RuleResult, shorten

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite
    from great_expectations.core.batch_definition import BatchDefinition

# SUMMARY results list up to 20 failing values with their record ids, but not
# every failing row, so a shard where every row fails still gives a small file.
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
# Only each expectation's success, which GX computes with about half the work of
# SUMMARY results (measured on 10,000 StepHint rows).
PASS_FAIL_FORMAT = {"result_format": "BOOLEAN_ONLY"}

# Expectations that check each row or each column on its own. On several shards
# stacked into one dataframe, such an expectation passes exactly when it passes
# on every shard. The one exception is ExpectColumnValuesToBeUnique, which also
# fails on a value that two different shards contain. Any other expectation,
# such as the row count, must run on each shard alone.
STACKABLE_EXPECTATIONS = frozenset(
    {
        "ExpectColumnToExist",
        "ExpectColumnValuesToNotBeNull",
        "ExpectColumnValuesToBeUnique",
        "ExpectColumnValuesToBeInSet",
        "ExpectColumnValuesToBeBetween",
        "ExpectColumnValueLengthsToBeBetween",
        "ExpectColumnValuesToMatchRegex",
    }
)


def build_suite(
    dataset: str,
    table: Table,
    keep: Callable[[Any], bool] | None = None,
    part: str | None = None,
) -> ExpectationSuite:
    """Return the expectations of one contract table, or those for which `keep` is true.

    Each expectation's `meta["rule"]` carries the rule name used in reports:
    `<column>.<check>` or `<table>.rowCount`. A suite with some of the
    expectations gets `.<part>` appended to its name.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations = []

    def add(rule: str, expectation_class: type, **kwargs: Any) -> None:
        expectations.append(expectation_class(meta={"rule": rule}, **kwargs))

    if table.min_rows is not None or table.max_rows is not None:
        add(
            f"{table.name}.rowCount",
            gxe.ExpectTableRowCountToBeBetween,
            min_value=table.min_rows,
            max_value=table.max_rows,
        )
    for column in table.columns:
        name = column.name
        add(f"{name}.exists", gxe.ExpectColumnToExist, column=name)
        if column.required:
            add(f"{name}.required", gxe.ExpectColumnValuesToNotBeNull, column=name)
        if column.unique:
            add(f"{name}.unique", gxe.ExpectColumnValuesToBeUnique, column=name)
        if column.allowed_values is not None:
            add(
                f"{name}.validValues",
                gxe.ExpectColumnValuesToBeInSet,
                column=name,
                value_set=list(column.allowed_values),
            )
        if column.minimum is not None or column.maximum is not None:
            add(
                f"{name}.range",
                gxe.ExpectColumnValuesToBeBetween,
                column=name,
                min_value=column.minimum,
                max_value=column.maximum,
            )
        if column.min_length is not None or column.max_length is not None:
            add(
                f"{name}.length",
                gxe.ExpectColumnValueLengthsToBeBetween,
                column=name,
                min_value=column.min_length,
                max_value=column.max_length,
            )
        if column.pattern is not None:
            add(
                f"{name}.pattern",
                gxe.ExpectColumnValuesToMatchRegex,
                column=name,
                regex=column.pattern,
            )
    name = f"{dataset}.{table.name}"
    if keep is not None:
        expectations = [expectation for expectation in expectations if keep(expectation)]
        name = f"{name}.{part}"
    # Passing the expectations to the constructor keeps the suite free of any GX
    # context: `add_expectation` would look the suite up in the current context's store.
    return gx.ExpectationSuite(name=name, expectations=expectations)


@functools.cache
def _batch_definition() -> BatchDefinition:
    """Return a whole-dataframe batch definition in an ephemeral context, made once per process.

    NOTE: `gx.get_context` also makes this context the process-wide current GX
    context (docstring of `get_context` in great_expectations 1.24.1), which other
    GX users in the same process then see.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # GX prints tqdm progress bars to stderr by default, which floods Airflow
    # task logs. This setting lives on the context, so global logging is untouched.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas("corpusforge").add_dataframe_asset("shard")
    return asset.add_batch_definition_whole_dataframe("whole shard")


def is_stackable(expectation: Any) -> bool:
    """Return whether `expectation` can run on several shards stacked into one dataframe."""
    return type(expectation).__name__ in STACKABLE_EXPECTATIONS


def columns_read(suite: ExpectationSuite) -> list[str] | None:
    """Return the columns that the expectations of `suite` read, or None when unknown.

    A row count reads no column. None means that some expectation may read any column.
    """
    columns: list[str] = []
    for expectation in suite.expectations:
        if type(expectation).__name__ == "ExpectTableRowCountToBeBetween":
            continue
        column = getattr(expectation, "column", None)
        if not isinstance(column, str):
            return None
        if column not in columns:
            columns.append(column)
    return columns


def failed_rules(suite_result: dict[str, Any]) -> set[str]:
    """Return the rule names of the expectations that failed or raised in a suite result."""
    return {
        item["expectation_config"]["meta"]["rule"]
        for item in suite_result["results"]
        if not item["success"]
    }


def run_suite(
    suite: ExpectationSuite, table: pa.Table, record_id: str | None, details: bool = True
) -> dict[str, Any]:
    """Validate one table, a shard or several stacked, and return the GX result as a dict.

    The result is JSON-ready. With `details`, it lists failing values with their
    `record_id`. Without, it gives only each expectation's success. Nested
    columns may already be null markers (`with_null_markers`).
    """
    result_format: dict[str, Any] = dict(RESULT_FORMAT if details else PASS_FAIL_FORMAT)
    if details and record_id is not None and record_id in table.column_names:
        result_format["unexpected_index_column_names"] = [record_id]
    frame = with_null_markers(table).to_pandas()
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
    return batch.validate(suite, result_format=result_format).to_json_dict()


def with_null_markers(table: pa.Table) -> pa.Table:
    """Replace each nested column by an int8 column: 1 where it has a value, null where not."""
    present = pa.scalar(1, pa.int8())
    missing = pa.scalar(None, pa.int8())
    for position, field in enumerate(table.schema):
        if pa.types.is_nested(field.type):
            marker = pc.if_else(pc.is_valid(table.column(position)), present, missing)
            table = table.set_column(position, pa.field(field.name, pa.int8()), marker)
    return table


def _exception_message(exception_info: dict[str, Any]) -> str | None:
    """Return the first raised exception's message, which GX nests per metric on failure."""
    infos = [exception_info, *[v for v in exception_info.values() if isinstance(v, dict)]]
    for info in infos:
        if info.get("raised_exception"):
            return str(info.get("exception_message"))
    return None


def record_gx_failures(
    suite_result: dict[str, Any],
    file: str,
    rows: int,
    record_id: str | None,
    rules: dict[str, RuleResult],
) -> None:
    """Add the failures of one shard's suite result to `rules`, keyed by rule name."""
    for item in suite_result["results"]:
        config = item["expectation_config"]
        name = config["meta"]["rule"]
        rule = rules.setdefault(name, RuleResult(name, "gx", config["type"]))
        if item["success"]:
            continue

        details = item.get("result") or {}
        error = _exception_message(item.get("exception_info") or {})
        if error is not None:
            rule.record(file, None, f"{config['type']} raised: {error}", rows=rows)
        elif "unexpected_count" not in details:
            # A table-level expectation, such as the row count or a column's existence.
            observed = details.get("observed_value", "missing")
            rule.record(file, None, f"{config['type']} observed {observed}", rows=rows)
        else:
            column = config["kwargs"].get("column")
            examples = _examples(details, column, record_id)[:MAX_EXAMPLES]
            for failing_id, value in examples:
                rule.record(file, failing_id, f"value {shorten(value)!r}")
            rule.add_failed_rows(file, details["unexpected_count"] - len(examples))


def _examples(details: dict[str, Any], column: str, record_id: str | None) -> list[tuple]:
    """Return (record id, value) pairs of failing rows from a SUMMARY result."""
    entries = details.get("partial_unexpected_index_list") or []
    if entries and isinstance(entries[0], dict):
        return [(entry.get(record_id), entry.get(column)) for entry in entries]
    # Without a record id column GX lists row positions, so report those instead.
    values = details.get("partial_unexpected_list") or []
    return [(f"row {position}", value) for position, value in zip(entries, values, strict=False)]
