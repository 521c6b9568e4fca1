"""Read image question-answer manifests: CSV or JSONL files that point at image files.

Columns: `image` (a path relative to the image root), `question`, `answer`, and
optionally `id`, `answer_type` and any metadata columns. The options
`image_field`, `question_field`, `answer_field` and `id_field` rename the
first four; `image_root` sets the image folder (default: the manifest's folder;
a relative root is taken from the manifest's folder).

Structural problems raise `SourceError`. Per-record problems (an empty field,
an image path outside the root, a duplicate id) are left to the caller, which
quarantines the record.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpusforge.generators.errors import SourceError
from corpusforge.generators.imaging.io import ImageError, safe_join
from corpusforge.generators.source_files import iter_json_objects, open_source_file

logger = logging.getLogger(__name__)

SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
ANSWER_TYPES = ("closed", "open")
CLOSED_ANSWERS = ("yes", "no")
DEFAULT_FIELDS = {"image": "image", "question": "question", "answer": "answer", "id": "id"}
ANSWER_TYPE_FIELD = "answer_type"


@dataclass
class ImageQARecord:
    """One question about one image.

    `line` is the 1-based line of the record's first line (CSV, JSONL) or its
    1-based position in a JSON list. `qid` is the id field's text, or
    `line-<line>` without one. `image` is the path as written, and `image_path`
    is that path resolved inside the image root by `safe_join`. It is None when
    `safe_join` rejects the path; call `safe_join` again to get the `ImageError`
    and its reason.
    `answer_type` is "closed" or "open": the source's value when valid, else
    "closed" for yes/no answers and "open" otherwise. Missing or null text
    fields become "".
    """

    line: int
    qid: str
    image: str
    image_path: Path | None
    question: str
    answer: str
    answer_type: str
    metadata: dict[str, Any] = field(default_factory=dict)


def iter_image_qa_manifest(path: str, options: dict[str, str]) -> Iterator[ImageQARecord]:
    """Stream the records of a CSV or JSONL manifest, chosen by the file suffix.

    Raise `SourceError` when the file is missing, empty or not UTF-8, has an
    unknown suffix, a malformed JSON line or a CSV row of the wrong width. Also
    raise it when `image_root` is not a folder, or when the image, question or
    answer column is missing from the CSV header or the first JSON record.
    """
    manifest = Path(path)
    kind = SUFFIXES.get(manifest.suffix.lower())
    if kind is None:
        raise SourceError(
            path,
            f"unknown manifest suffix {manifest.suffix!r}",
            fix=f"name the manifest with one of {', '.join(SUFFIXES)}",
        )
    fields = _field_names(options)
    if kind == "csv":
        rows = _iter_csv(path, _read_text(manifest), fields)
    else:
        # Fail on a missing or unreadable file before the image root is checked,
        # as the CSV branch does; the rows themselves are read lazily.
        open_source_file(path).close()
        rows = _check_first_fields(path, iter_json_objects(path), fields)
    root = image_root(manifest, options)

    count = 0
    for line, values in rows:
        count += 1
        yield to_record(line, values, root, fields)
    if count == 0:
        raise SourceError(path, "manifest has no records", fix="add at least one record")


def image_root(manifest: Path, options: dict[str, str]) -> Path:
    """Return the image folder of a manifest, raising SourceError when it is not a folder."""
    base = manifest.resolve().parent
    raw = options.get("image_root") or ""
    root = (base / raw) if raw else base
    if not root.is_dir():
        raise SourceError(
            str(manifest),
            f"image_root {str(root)!r} is not a folder",
            fix="set image_root to the folder the image paths are relative to",
        )
    return root.resolve()


def to_record(
    line: int, values: dict[str, Any], root: Path, fields: dict[str, str]
) -> ImageQARecord:
    """Map one row or JSON object to an `ImageQARecord`."""
    image = field_text(values.get(fields["image"]))
    try:
        image_path: Path | None = safe_join(root, image)
    except ImageError as error:
        logger.debug("line %d: image path rejected: %s", line, error)
        image_path = None

    answer = field_text(values.get(fields["answer"]))
    qid = field_text(values.get(fields["id"])).strip() or f"line-{line}"
    mapped = set(fields.values()) | {ANSWER_TYPE_FIELD}
    metadata = {key: value for key, value in values.items() if key not in mapped}

    raw_type = field_text(values.get(ANSWER_TYPE_FIELD)).strip().lower()
    if raw_type in ANSWER_TYPES:
        answer_type = raw_type
    else:
        answer_type = infer_answer_type(answer)
        if raw_type:
            # Kept so the caller can see the value that was replaced.
            metadata[ANSWER_TYPE_FIELD] = values.get(ANSWER_TYPE_FIELD)

    return ImageQARecord(
        line=line,
        qid=qid,
        image=image,
        image_path=image_path,
        question=field_text(values.get(fields["question"])),
        answer=answer,
        answer_type=answer_type,
        metadata=metadata,
    )


def infer_answer_type(answer: str) -> str:
    """Return "closed" for a yes/no answer (any case, surrounding spaces ignored), else "open"."""
    return "closed" if answer.strip().lower() in CLOSED_ANSWERS else "open"


def field_text(value: Any) -> str:
    """Return a field value as text: None and NaN become "", integers keep no decimals.

    Lists and objects become compact JSON, so a caller can still reject them.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _field_names(options: dict[str, str]) -> dict[str, str]:
    return {role: options.get(f"{role}_field") or name for role, name in DEFAULT_FIELDS.items()}


def _required_columns(fields: dict[str, str]) -> list[str]:
    return [fields["image"], fields["question"], fields["answer"]]


def _read_text(path: Path) -> str:
    if not path.exists():
        raise SourceError(
            str(path), "file not found", fix="check the path in the `sources` parameter"
        )
    if not path.is_file():
        raise SourceError(str(path), "is not a file", fix="name the manifest file itself")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SourceError(
            str(path), f"cannot be read: {error.strerror}", fix="check the file permissions"
        ) from error
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise SourceError(
            str(path),
            f"invalid UTF-8 byte 0x{data[error.start]:02x}",
            line=line,
            fix="re-encode the file as UTF-8",
        ) from error
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise SourceError(str(path), "file is empty", fix="add a header and at least one record")
    return text


def _iter_csv(path: str, text: str, fields: dict[str, str]) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        while not any(cell.strip() for cell in header):
            header = next(reader)
    except StopIteration:
        raise SourceError(path, "file has no header row", fix="add a header row") from None
    except csv.Error as error:
        raise SourceError(
            path, f"invalid CSV: {error}", line=reader.line_num, fix="check the quoting"
        ) from error

    header = [name.strip() for name in header]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise SourceError(
            path,
            f"duplicate column names {', '.join(map(repr, duplicates))}",
            line=reader.line_num,
            fix="give every column a unique name",
        )
    missing = [name for name in _required_columns(fields) if name not in header]
    if missing:
        raise SourceError(
            path,
            f"missing column(s) {', '.join(map(repr, missing))}; columns found: "
            f"{', '.join(map(repr, header))}",
            line=reader.line_num,
            fix="rename the columns or set image_field, question_field and answer_field",
        )

    previous_end = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise SourceError(
                path, f"invalid CSV: {error}", line=previous_end + 1, fix="check the quoting"
            ) from error
        start = previous_end + 1
        previous_end = reader.line_num
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise SourceError(
                path,
                f"row has {len(row)} cells but the header has {len(header)}",
                line=start,
                fix="quote cells that contain commas and give every row one cell per column",
            )
        yield start, dict(zip(header, row, strict=True))


def _check_first_fields(
    path: str, rows: Iterator[tuple[int, dict[str, Any]]], fields: dict[str, str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Pass JSONL rows through, raising SourceError when the first lacks a mapped field.

    A wrong field mapping shows on the first record; later records missing a
    field are per-record problems for the caller.
    """
    for position, (number, value) in enumerate(rows):
        if position == 0:
            missing = [name for name in _required_columns(fields) if name not in value]
            if missing:
                raise SourceError(
                    path,
                    f"the first record has no field(s) {', '.join(map(repr, missing))}; "
                    f"fields found: {', '.join(map(repr, value))}",
                    line=number,
                    fix="rename the fields or set image_field, question_field and answer_field",
                )
        yield number, value
