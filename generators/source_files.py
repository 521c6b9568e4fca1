"""Open source files and read JSON Lines with the structural checks every reader shares.

A structural problem (missing file, bytes that are not UTF-8, a line that is not a
JSON object, no records at all) stops the run with a `SourceError` that names the
file and line. Problems inside one record are the caller's to quarantine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import IO, Any

from corpusforge.generators.errors import SourceError

# Every Parquet file starts (and ends) with these four bytes.
PARQUET_MAGIC = b"PAR1"


def open_source_file(path: str) -> IO[bytes]:
    """Open `path` for binary reading, raising SourceError when it is missing or unreadable."""
    if not os.path.exists(path):
        raise SourceError(path, "file not found", fix="check the path in the `sources` parameter")
    if os.path.isdir(path):
        raise SourceError(path, "is a directory, not a file", fix="name one file per source")
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it in a with block
    except OSError as error:
        raise SourceError(
            path, f"cannot be opened: {error.strerror}", fix="check the file permissions"
        ) from error


def iter_json_objects(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line of a JSON Lines file.

    Lines are split on "\\n" only, so U+2028 and other Unicode line separators
    inside JSON strings stay part of their line. A UTF-8 byte order mark on the
    first line is ignored. Raise SourceError when the file is missing, is a
    Parquet file, a line is not UTF-8 or not a JSON object, or the file has no
    records.
    """
    records = 0
    with open_source_file(path) as handle:
        for number, raw_line in enumerate(handle, start=1):
            if number == 1 and raw_line.startswith(PARQUET_MAGIC):
                raise SourceError(
                    path,
                    "starts with the Parquet magic bytes PAR1, so it looks like a Parquet "
                    "file, not JSON Lines",
                    line=1,
                    fix="use the `parquet:` source format, which stephint offers, or convert "
                    "the file to JSON Lines",
                )
            text = _decode_line(path, number, raw_line)
            if number == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            records += 1
            yield number, _parse_object(path, number, text)

    if records == 0:
        raise SourceError(path, "file is empty", fix="provide at least one JSON object per line")


def json_type(value: Any) -> str:
    """Return the JSON name of a parsed value's type, for error messages."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _decode_line(path: str, number: int, raw_line: bytes) -> str:
    try:
        return raw_line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SourceError(
            path,
            f"invalid UTF-8 byte 0x{raw_line[error.start]:02x} at byte {error.start + 1}"
            " of the line",
            line=number,
            fix="re-encode the file as UTF-8",
        ) from error


def _parse_object(path: str, number: int, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise SourceError(
            path,
            f"invalid JSON at column {error.colno}: {error.msg}",
            line=number,
            fix="write one JSON object per line",
        ) from error
    if not isinstance(value, dict):
        raise SourceError(
            path,
            f"expected a JSON object, got a JSON {json_type(value)}",
            line=number,
            fix="write one JSON object per line",
        )
    return value
