"""Read VQA-RAD (Lau et al., Scientific Data 2018) in its `data_RAD` release layout.

The folder contains `qa.json`, a JSON list of objects with `qid`, `image_name`
(a file in `images/`), `image_organ`, `question`, `answer`, `answer_type`,
`question_type`, `phrase_type` and `split`. Upstream quirks handled here: some
answers are JSON integers, and some `answer_type` values carry a trailing space.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from corpusforge.generators.errors import SourceError
from corpusforge.generators.imaging.manifest import (
    ImageQARecord,
    field_text,
    to_record,
)
from corpusforge.generators.source_files import json_type

logger = logging.getLogger(__name__)

QA_FILE = "qa.json"
IMAGE_FOLDER = "images"
METADATA_FIELDS = ("image_organ", "question_type", "phrase_type", "split")
_FIELDS = {"image": "image_name", "question": "question", "answer": "answer", "id": "qid"}


def iter_vqa_rad(folder: str, options: dict[str, str]) -> Iterator[ImageQARecord]:
    """Stream the VQA-RAD questions of `folder` (or of the `qa.json` file given directly).

    `line` is the item's 1-based position in the list, and `image_path` lies in
    `images/` unless the option `image_root` names another folder (relative to
    the dataset folder). Metadata keeps image_organ, question_type, phrase_type
    and split. Raise `SourceError` when qa.json is missing, not UTF-8, not JSON,
    not a non-empty list of objects, or when the image folder is missing.
    """
    base = Path(folder)
    qa_path = base if base.is_file() else base / QA_FILE
    base = qa_path.parent
    items = _read_items(qa_path)

    root = (base / (options.get("image_root") or IMAGE_FOLDER)).resolve()
    if not root.is_dir():
        raise SourceError(
            str(qa_path),
            f"image folder {str(root)!r} not found",
            fix=f"put the images in {IMAGE_FOLDER}/ beside {QA_FILE} or set image_root",
        )

    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise SourceError(
                str(qa_path),
                f"item {position} of the list is a JSON {json_type(item)}, expected an object",
                fix="keep qa.json as a list of question objects",
            )
        values: dict[str, Any] = {name: item.get(name) for name in _FIELDS.values()}
        values["answer_type"] = field_text(item.get("answer_type")).strip().lower()
        for name in METADATA_FIELDS:
            if name in item:
                values[name] = item[name]
        yield to_record(position, values, root, _FIELDS)


def _read_items(path: Path) -> list[Any]:
    if not path.is_file():
        raise SourceError(
            str(path), f"{QA_FILE} not found", fix="point the source at the VQA-RAD folder"
        )
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SourceError(
            str(path), f"cannot be read: {error.strerror}", fix="check the file permissions"
        ) from error
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise SourceError(
            str(path),
            f"invalid UTF-8 byte 0x{data[error.start]:02x}",
            line=data.count(b"\n", 0, error.start) + 1,
            fix="re-encode the file as UTF-8",
        ) from error
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        raise SourceError(
            str(path),
            f"invalid JSON at column {error.colno}: {error.msg}",
            line=error.lineno,
            fix="check that the file is a complete JSON list",
        ) from error
    if not isinstance(items, list):
        raise SourceError(
            str(path),
            f"expected a JSON array of questions, got a JSON {json_type(items)}",
            fix="use the data_RAD qa.json layout: a list of question objects",
        )
    if not items:
        raise SourceError(str(path), "contains no questions", fix="provide at least one question")
    return items
