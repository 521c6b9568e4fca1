"""Export a Med-MIM release in the JSON layout of the released Med-MIM files.

`<out>/<split>.json` is a JSON list of records, each with exactly the keys of
the released files, ready for Mantis- or LLaVA-style multi-image training:

    {"id": "...", "images": ["images/<hash16>.png", ...],
     "conversation": [{"role": "user", "content": "<image><image>..."},
                      {"role": "assistant", "content": "..."}],
     "source": "<source>/<ability>/<task>/<generator>"}

Image paths are relative to `<out>`, and each image file is written once under
`<out>/images/`, whichever records and splits use it. Images come from the
records (`image_storage=embedded`) or from the `images` config.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from corpusforge.generators import store
from corpusforge.generators.errors import ConfigError

log = logging.getLogger(__name__)

QA_COLUMNS = ["id", "image_ids", "images", "conversation", "source", "ability", "task", "generator"]
BATCH_ROWS = 1024


def image_path(image_id: str) -> str:
    """Return the relative path of an image in the export: `images/<first 16 hex digits>.png`."""
    return f"images/{image_id[:16]}.png"


class _ImageWriter:
    """Write each image file once, and refuse two different images with the same path."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.written: dict[str, str] = {}

    def write(self, image_id: str, data: bytes | None) -> str:
        relative = image_path(image_id)
        if relative in self.written:
            if self.written[relative] != image_id:
                raise ConfigError(
                    f"images {self.written[relative]} and {image_id} share the export path "
                    f"{relative}; export to an empty folder or report this collision"
                )
            return relative
        if data is None:
            raise ConfigError(
                f"image {image_id} has no bytes in the release; verify the release with "
                "`corpusforge verify med_mim`"
            )
        target = self.out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != data:
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        self.written[relative] = image_id
        return relative


def _image_table(release: Path, manifest: dict[str, Any], split: str) -> dict[str, bytes]:
    """Return the bytes of every image of `split` in the `images` config, by id."""
    images: dict[str, bytes] = {}
    for shard in manifest["shards"]:
        if shard["config"] == "images" and shard["split"] == split:
            table = pq.read_table(release / shard["path"], columns=["image_id", "image"])
            for image_id, cell in zip(
                table.column("image_id").to_pylist(),
                table.column("image").to_pylist(),
                strict=True,
            ):
                images[image_id] = cell["bytes"]
    return images


def export_med_mim_json(release: Path, out: Path) -> dict[str, Any]:
    """Write every split of a release as `<out>/<split>.json` plus `<out>/images/`.

    Returns the output folder, the record count per split and the number of
    image files.
    """
    manifest = store.load_manifest(release)
    if manifest["dataset"] != "med_mim":
        raise ConfigError(
            f"--format med-mim-json exports the med_mim dataset, not {manifest['dataset']}"
        )
    out.mkdir(parents=True, exist_ok=True)
    writer = _ImageWriter(out)
    counts: dict[str, int] = {}
    for split in sorted(manifest["splits"].get("qa", {})):
        table_images: dict[str, bytes] | None = None
        records = []
        for shard in manifest["shards"]:
            if shard["config"] != "qa" or shard["split"] != split:
                continue
            part = pq.ParquetFile(release / shard["path"])
            for batch in part.iter_batches(BATCH_ROWS, columns=QA_COLUMNS):
                for row in batch.to_pylist():
                    if row["images"] is None and table_images is None:
                        table_images = _image_table(release, manifest, split)
                    cells = row["images"] or [None] * len(row["image_ids"])
                    paths = [
                        writer.write(
                            image_id,
                            cell["bytes"] if cell else (table_images or {}).get(image_id),
                        )
                        for image_id, cell in zip(row["image_ids"], cells, strict=True)
                    ]
                    records.append(
                        {
                            "id": row["id"],
                            "images": paths,
                            "conversation": row["conversation"],
                            "source": "/".join(
                                (row["source"], row["ability"], row["task"], row["generator"])
                            ),
                        }
                    )
        target = out / f"{split}.json"
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        counts[split] = len(records)
        log.info("exported %d %s records to %s", len(records), split, target)
    return {"out": str(out), "records": counts, "images": len(writer.written)}
