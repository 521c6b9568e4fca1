"""Read StepHint source files record by record and map each record to an `Example`.

Formats:

- `gsm8k`: JSONL with `question` and `answer`; the answer is the solution and its
  `#### N` line gives the reference answer.
- `math`: JSONL in the MATH / MATH-500 layout: `problem`, `solution`, `answer`,
  with `unique_id` as the record id.
- `longcot`: JSONL of long reasoning traces: `problem`, `model_output`,
  `reference_answer`, with `idx` as the record id.
- `jsonl`, `parquet`: any layout, mapped by the options `problem_field`,
  `answer_field`, `solution_field` and `id_field`; the option `style` (gsm8k, math
  or longcot, default math) says how to read the solution and sets the default
  field names.
- `synthetic_math`: generated word problems in the `math` layout (see
  `synthetic.py`); the path is ignored and the options `count` and `seed` apply.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from corpusforge.generators.base import Rejected
from corpusforge.generators.errors import ConfigError, SourceError
from corpusforge.generators.source_files import iter_json_objects, open_source_file
from corpusforge.generators.stephint.answers import GSM8K_ANSWER_LINE, clean_answer
from corpusforge.generators.stephint.chain import STYLES

FORMATS = ("gsm8k", "math", "longcot", "jsonl", "parquet", "synthetic_math")

# Option names each format reads; other option names are ignored.
OPTION_KEYS = {
    "gsm8k": (),
    "math": (),
    "longcot": (),
    "jsonl": ("problem_field", "answer_field", "solution_field", "id_field", "style"),
    "parquet": ("problem_field", "answer_field", "solution_field", "id_field", "style"),
    "synthetic_math": ("count", "seed"),
}

DEFAULT_SYNTHETIC_COUNT = 1000

# Maximum characters kept of each string in `Rejected.record`.
MAX_REJECTED_STRING_CHARS = 2000

# Rows per Arrow record batch when a Parquet file is streamed.
PARQUET_BATCH_ROWS = 1024


@dataclass(frozen=True)
class FieldMap:
    """Names of the source fields that hold each part of an example.

    `answer` is None when the reference answer is read from the solution's
    `#### N` line (GSM8K).
    """

    problem: str
    solution: str
    answer: str | None
    record_id: str | None


STYLE_FIELDS = {
    "gsm8k": FieldMap(problem="question", solution="answer", answer=None, record_id=None),
    "math": FieldMap(
        problem="problem", solution="solution", answer="answer", record_id="unique_id"
    ),
    "longcot": FieldMap(
        problem="problem", solution="model_output", answer="reference_answer", record_id="idx"
    ),
}


@dataclass
class RawRecord:
    """One record as read from a source, before any mapping.

    `line` is the 1-based line of a JSONL file, the 1-based row of a Parquet file,
    or the item index + 1 of a synthetic source.
    """

    line: int
    source_id: str
    fields: dict[str, Any]


@dataclass
class Example:
    """One problem with its source solution and reference answer, ready for `make_row`.

    `metadata` contains the source fields other than the problem, solution, answer
    and id fields.
    `line` is the `RawRecord.line` the example came from.
    """

    source_id: str
    problem: str
    reference_answer: str
    source_text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    line: int | None = None


def style_of(fmt: str, options: dict[str, str]) -> str:
    """Return the solution style of a source: fixed for named formats, `style` for generic ones."""
    _check_format(fmt)
    if fmt in ("jsonl", "parquet"):
        style = options.get("style") or "math"
        if style not in STYLES:
            raise ConfigError(
                f"invalid style {style!r} for format {fmt}; valid styles: {', '.join(STYLES)}"
            )
        return style
    if fmt == "synthetic_math":
        return "math"
    return fmt


def field_map(fmt: str, options: dict[str, str]) -> FieldMap:
    """Return the field names of a source, with the generic formats' options applied."""
    defaults = STYLE_FIELDS[style_of(fmt, options)]
    if fmt not in ("jsonl", "parquet"):
        return defaults
    return FieldMap(
        problem=options.get("problem_field") or defaults.problem,
        solution=options.get("solution_field") or defaults.solution,
        answer=options.get("answer_field") or defaults.answer,
        record_id=options.get("id_field") or None,
    )


def iter_raw_records(fmt: str, path: str, options: dict[str, str]) -> Iterator[RawRecord]:
    """Stream the records of one source, skipping blank lines.

    Raise `SourceError` when the file is missing, empty, not UTF-8, has a line
    that is not a JSON object, or is not a readable Parquet file. Raise
    `ConfigError` for an unknown format or invalid options.
    """
    _check_format(fmt)
    id_field = field_map(fmt, options).record_id
    if fmt == "synthetic_math":
        yield from _iter_synthetic(options)
    elif fmt == "parquet":
        yield from _iter_parquet(path, id_field)
    else:
        yield from _iter_jsonl(path, id_field)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown source format {fmt!r}; valid formats: {', '.join(FORMATS)}")


def _source_id(fields: dict[str, Any], id_field: str | None, line: int) -> str:
    if id_field is not None:
        value = fields.get(id_field)
        if value is not None and not isinstance(value, (dict, list)):
            text = value if isinstance(value, str) else _scalar_text(value)
            if text and text.strip():
                return text.strip()
    return f"line-{line}"


def _iter_jsonl(path: str, id_field: str | None) -> Iterator[RawRecord]:
    for line_number, value in iter_json_objects(path):
        yield RawRecord(line_number, _source_id(value, id_field, line_number), value)


def _iter_parquet(path: str, id_field: str | None) -> Iterator[RawRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open_source_file(path) as handle:
        try:
            parquet_file = pq.ParquetFile(handle)
        except (pa.ArrowException, OSError, ValueError) as error:
            raise SourceError(
                path,
                f"cannot be read as Parquet: {error}",
                fix="check that the file is a complete Parquet file",
            ) from error

        row_number = 0
        try:
            for batch in parquet_file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                for row in batch.to_pylist():
                    row_number += 1
                    yield RawRecord(row_number, _source_id(row, id_field, row_number), row)
        except (pa.ArrowException, OSError) as error:
            raise SourceError(
                path,
                f"cannot read the row group after row {row_number}: {error}",
                line=row_number + 1,
                fix="check that the file is a complete Parquet file",
            ) from error

    if row_number == 0:
        raise SourceError(path, "Parquet file has no rows", fix="provide at least one row")


def _iter_synthetic(options: dict[str, str]) -> Iterator[RawRecord]:
    from corpusforge.generators.stephint.synthetic import iter_synthetic_problems

    count = _int_option(options, "count", DEFAULT_SYNTHETIC_COUNT, minimum=1)
    if "seed" not in options:
        raise ConfigError("source format synthetic_math needs the option seed (an integer)")
    seed = _int_option(options, "seed", 0, minimum=0)
    for index, fields in iter_synthetic_problems(seed, count):
        yield RawRecord(index + 1, fields["unique_id"], fields)


def _int_option(options: dict[str, str], key: str, default: int, *, minimum: int) -> int:
    raw = options.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(f"option {key} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"option {key} must be at least {minimum}, got {value}")
    return value


def to_example(fmt: str, raw: RawRecord, options: dict[str, str]) -> Example | Rejected:
    """Map one raw record to an `Example`, or reject it.

    Reject reasons: `missing_field` (absent, null, NaN or blank value),
    `invalid_field` (a list or object where text is expected), `invalid_unicode`
    (a lone surrogate, which Parquet cannot store). Numbers become text: `42`
    becomes "42" and `2.5` becomes "2.5".
    """
    fields = field_map(fmt, options)

    def reject(reason: str, detail: str) -> Rejected:
        return Rejected(reason, fmt, raw.source_id, raw.line, detail, _truncated(raw.fields))

    texts: dict[str, str] = {}
    required = [("problem", fields.problem), ("solution", fields.solution)]
    if fields.answer is not None:
        required.append(("answer", fields.answer))
    for role, name in required:
        value = raw.fields.get(name)
        text, problem = _field_text(value)
        if problem == "missing":
            return reject("missing_field", f"field {name!r} ({role}) is missing or empty")
        if problem == "structured":
            return reject(
                "invalid_field",
                f"field {name!r} ({role}) is a {type(value).__name__}, expected text or a number",
            )
        if problem == "bytes":
            return reject("invalid_unicode", f"field {name!r} ({role}) is not valid UTF-8")
        if problem == "surrogate":
            return reject("invalid_unicode", _surrogate_detail(f"{name!r} ({role})", value))
        texts[role] = text

    if fields.answer is None:
        # GSM8K: the reference is the last `#### N` line of the solution, or empty.
        matches = GSM8K_ANSWER_LINE.findall(texts["solution"].replace("\r\n", "\n"))
        texts["answer"] = clean_answer(matches[-1]) if matches else ""

    mapped = {fields.problem, fields.solution, fields.answer, fields.record_id}
    metadata = {key: value for key, value in raw.fields.items() if key not in mapped}
    bad_key = _find_lone_surrogate(metadata)
    if bad_key is not None:
        return reject("invalid_unicode", _surrogate_detail(repr(bad_key), metadata))

    return Example(
        source_id=raw.source_id,
        problem=texts["problem"],
        reference_answer=texts["answer"].strip(),
        source_text=texts["solution"],
        metadata=metadata,
        line=raw.line,
    )


def _field_text(value: Any) -> tuple[str, str]:
    """Return (text, problem) for one field value; problem is "" when the value is usable.

    Problems: "missing", "structured" (a list or object), "bytes" (binary that
    is not UTF-8) and "surrogate" (text with a lone surrogate).
    """
    if value is None:
        return "", "missing"
    if isinstance(value, (dict, list, tuple)):
        return "", "structured"
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return "", "bytes"
    text = value if isinstance(value, str) else _scalar_text(value)
    if not text.strip():
        return "", "missing"
    if _has_lone_surrogate(text):
        return "", "surrogate"
    return text, ""


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return ""
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _surrogate_detail(field_name: str, value: Any) -> str:
    """Return the quarantine detail for a field whose text contains a lone surrogate.

    The file itself is valid UTF-8: a JSON escape such as `\\ud800` without its
    other half decodes to a lone surrogate, which UTF-8 and Parquet cannot store.
    """
    code = _first_lone_surrogate(value)
    escape = f"\\u{code:04x}" if code is not None else "\\udxxx"
    return (
        f"field {field_name} contains a lone surrogate escape ({escape}), which is not a "
        "Unicode character; remove it or add the other half of the surrogate pair"
    )


def _first_lone_surrogate(value: Any) -> int | None:
    """Return the code point of the first lone surrogate in a string, list or dict, or None."""
    if isinstance(value, str):
        return next((ord(char) for char in value if 0xD800 <= ord(char) <= 0xDFFF), None)
    children: list[Any] = []
    if isinstance(value, dict):
        for key, child in value.items():
            children += [key, child]
    elif isinstance(value, (list, tuple)):
        children = list(value)
    for child in children:
        code = _first_lone_surrogate(child)
        if code is not None:
            return code
    return None


def _find_lone_surrogate(value: Any, key: str = "") -> str | None:
    """Return the key path of the first string with a lone surrogate, or None."""
    if isinstance(value, str):
        return key if _has_lone_surrogate(value) else None
    if isinstance(value, dict):
        for child_key, child in value.items():
            path = f"{key}.{child_key}" if key else str(child_key)
            if isinstance(child_key, str) and _has_lone_surrogate(child_key):
                return path
            found = _find_lone_surrogate(child, path)
            if found is not None:
                return found
    if isinstance(value, (list, tuple)):
        for index, child in enumerate(value):
            found = _find_lone_surrogate(child, f"{key}[{index}]")
            if found is not None:
                return found
    return None


def _truncated(value: Any) -> Any:
    """Return `value` with every string cut to MAX_REJECTED_STRING_CHARS characters.

    Lone surrogates are written as `\\udXXX` escapes, so the record can be stored as
    UTF-8.
    """
    if isinstance(value, str):
        text = value[:MAX_REJECTED_STRING_CHARS]
        if _has_lone_surrogate(text):
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        return text
    if isinstance(value, dict):
        return {_truncated(key): _truncated(child) for key, child in value.items()}
    if isinstance(value, (list, tuple)):
        return [_truncated(child) for child in value]
    if isinstance(value, bytes):
        return _truncated(value.decode("utf-8", "backslashreplace"))
    return value
