"""Compare Arrow schemas and spell Arrow types the way data contracts write them."""

from __future__ import annotations

import pyarrow as pa


def arrow_type_name(data_type: pa.DataType) -> str:
    """Return the compact type name used as a contract's `physicalType`.

    Nested types drop the list item name and the spaces of `str(data_type)`, so
    `list<item: struct<start: int32, end: int32>>` becomes
    `list<struct<start:int32,end:int32>>`. Nullability of nested fields is not part
    of the name; `schema_differences` compares it separately.
    """
    if pa.types.is_large_list(data_type):
        return f"large_list<{arrow_type_name(data_type.value_type)}>"
    if pa.types.is_list(data_type):
        return f"list<{arrow_type_name(data_type.value_type)}>"
    if pa.types.is_struct(data_type):
        fields = ",".join(f"{field.name}:{arrow_type_name(field.type)}" for field in data_type)
        return f"struct<{fields}>"
    return str(data_type)


def _describe(field: pa.Field) -> str:
    nullability = "nullable" if field.nullable else "not null"
    return f"{arrow_type_name(field.type)} {nullability}"


def schema_differences(expected: pa.Schema, actual: pa.Schema) -> list[str]:
    """Return one sentence per difference in column names, order, types or nullability.

    Schema metadata is ignored. Types are compared with `DataType.equals`, which
    also compares the nullability of struct fields but not the name of a list's
    item field, because Parquet writers name it `element` and pyarrow `item`.
    """
    differences = []
    expected_names = expected.names
    actual_names = actual.names

    missing = [name for name in expected_names if name not in actual_names]
    extra = [name for name in actual_names if name not in expected_names]
    if missing:
        differences.append(f"missing columns: {', '.join(missing)}")
    if extra:
        differences.append(f"unexpected columns: {', '.join(extra)}")

    shared_expected = [name for name in expected_names if name in actual_names]
    shared_actual = [name for name in actual_names if name in expected_names]
    if shared_expected != shared_actual:
        differences.append(
            f"column order is {', '.join(shared_actual)}; expected {', '.join(shared_expected)}"
        )

    for name in shared_expected:
        want = expected.field(name)
        got = actual.field(name)
        if not got.type.equals(want.type) and _describe(got) == _describe(want):
            # Only the nullability of a nested field differs, which str() shows.
            differences.append(f"column {name} has type {got.type}; expected {want.type}")
        elif not got.type.equals(want.type):
            differences.append(
                f"column {name} has type {_describe(got)}; expected {_describe(want)}"
            )
        elif got.nullable != want.nullable:
            differences.append(f"column {name} is {_describe(got)}; expected {_describe(want)}")
    return differences


def logical_type_of(physical_type: str) -> str | None:
    """Return the ODCS logicalType that an Arrow type name belongs to."""
    if physical_type in ("string", "large_string"):
        return "string"
    if physical_type == "bool":
        return "boolean"
    if physical_type.startswith(("int", "uint")):
        return "integer"
    if physical_type.startswith(("float", "double", "halffloat", "decimal")):
        return "number"
    if physical_type.startswith(("date", "timestamp")):
        return "date"
    if physical_type.startswith(("list<", "large_list<")):
        return "array"
    if physical_type.startswith("struct<"):
        return "object"
    return None
