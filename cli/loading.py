"""Read one split of a published release as an Arrow table, with its images attached.

A config's files come from the dataset card's `configs` (so composite configs such
as nested forget sets resolve to their band files), or from the manifest's
shards when the card does not list the config. Releases that store each image
once keep the images in an `images` config with columns `image_id` and `image`.
Their records carry only ids, and `load` puts the images back:

- an image column `<name>` is filled from the id column `<name>_id`;
- a list-of-images column `<name>s` is filled from the list column `<name>_ids`.

`datasets.Dataset(load(...))` gives a Hugging Face dataset whose images decode,
because the table keeps the schema's features metadata.

A release on an object store is read through fsspec: pass its attempt folder's
URL, or its key with an `output_root` URL, and the pointer file is followed.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from upath import UPath

from corpusforge.generators import objstore
from corpusforge.generators.errors import ConfigError
from corpusforge.schemas.features import IMAGE_FIELD_KEY

log = logging.getLogger(__name__)

IMAGES_CONFIG = "images"
IMAGE_ID_COLUMN = "image_id"
IMAGE_COLUMN = "image"


def release_path(
    release: str | os.PathLike[str],
    dataset: str | None = None,
    output_root: str | os.PathLike[str] | None = None,
) -> Path | UPath:
    """Return a release folder: `release` itself if it contains manifest.json, else a key.

    A key needs `dataset`; `output_root` defaults to $CORPUSFORGE_OUTPUT_ROOT, else
    ./published. The key `LATEST` names the newest release. Folders and roots
    may be fsspec URLs such as `s3://bucket/prefix`.
    """
    path = objstore.location(release)
    if (path / "manifest.json").is_file():
        return path
    if dataset is None:
        raise ConfigError(
            f"{path} is not a release folder (no manifest.json); pass the folder of a release, "
            "or a release key together with dataset="
        )
    from corpusforge.generators import store

    root = output_root or os.environ.get("CORPUSFORGE_OUTPUT_ROOT", "published")
    return store.release_dir(root, dataset, str(release))


def card_configs(release_dir: Path | UPath) -> list[dict[str, Any]]:
    """Return the `configs` list of a release's dataset card, or [] without one."""
    card = release_dir / "README.md"
    if not card.is_file():
        return []
    text = card.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return []
    header, _, _ = text[4:].partition("\n---\n")
    try:
        front_matter = yaml.safe_load(header) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{card}: the YAML front matter does not parse: {error}") from error
    return list(front_matter.get("configs") or [])


def data_files(release_dir: Path | UPath, config: str, split: str) -> list[Path | UPath]:
    """Return the Parquet files of (config, split), in the order the card or manifest lists them."""
    for entry in card_configs(release_dir):
        if entry.get("config_name") != config:
            continue
        splits = {item["split"]: item["path"] for item in entry.get("data_files") or []}
        if split not in splits:
            raise ConfigError(
                f"config {config!r} of {release_dir} has no split {split!r}; "
                f"splits: {', '.join(sorted(splits)) or 'none'}"
            )
        patterns = splits[split] if isinstance(splits[split], list) else [splits[split]]
        files: list[Path | UPath] = []
        for pattern in patterns:
            matches = _glob(release_dir, pattern)
            if not matches:
                raise ConfigError(f"{release_dir}: no file matches {pattern!r} of {config}/{split}")
            files.extend(matches)
        return files

    manifest = json.loads((release_dir / "manifest.json").read_text(encoding="utf-8"))
    files = [
        release_dir / shard["path"]
        for shard in manifest["shards"]
        if shard["config"] == config and shard["split"] == split
    ]
    if not files:
        known = sorted({f"{shard['config']}/{shard['split']}" for shard in manifest["shards"]})
        raise ConfigError(
            f"{release_dir} has no files for {config}/{split}; it has: {', '.join(known) or 'none'}"
        )
    return files


def _image_columns(schema: pa.Schema) -> list[tuple[str, str, bool]]:
    """Return (image column, id column, is a list) for each image column with an id column."""
    pairs = []
    for field in schema:
        is_list = pa.types.is_list(field.type)
        marked = bool(field.metadata and field.metadata.get(IMAGE_FIELD_KEY) == b"1")
        if not marked:
            features = json.loads((schema.metadata or {}).get(b"huggingface", b"{}") or b"{}")
            feature = features.get("info", {}).get("features", {}).get(field.name, {})
            inner = feature.get("feature", {}) if feature.get("_type") == "List" else feature
            marked = inner.get("_type") == "Image"
        if not marked:
            continue
        if is_list and field.name.endswith("s"):
            id_column = f"{field.name[:-1]}_ids"
        else:
            id_column = f"{field.name}_id"
        if id_column in schema.names:
            pairs.append((field.name, id_column, is_list))
    return pairs


def _glob(release_dir: Path | UPath, pattern: str) -> list[Path | UPath]:
    """Return the files under `release_dir` that match `pattern`, sorted."""
    if isinstance(release_dir, UPath):
        matches = release_dir.fs.glob(f"{release_dir.path}/{pattern}")
        prefix = release_dir.path.rstrip("/") + "/"
        return [release_dir / match[len(prefix) :] for match in sorted(matches)]
    return [Path(match) for match in sorted(glob.glob(str(release_dir / pattern)))]


def _read_table(file: Path | UPath, columns: list[str] | None) -> pa.Table:
    if isinstance(file, UPath):
        return pq.read_table(file.path, columns=columns, filesystem=file.fs)
    return pq.read_table(file, columns=columns)


def _read(files: list[Path | UPath], columns: list[str] | None) -> pa.Table:
    tables = [_read_table(file, columns) for file in files]
    schema = tables[0].schema
    return pa.concat_tables([table.cast(schema) for table in tables])


def _stored_images(release_dir: Path | UPath, ids: set[str]) -> dict[str, dict[str, Any]]:
    """Return the cells of `ids` from the release's images config, raising when any is missing."""
    manifest = json.loads((release_dir / "manifest.json").read_text(encoding="utf-8"))
    files = [
        release_dir / shard["path"]
        for shard in manifest["shards"]
        if shard["config"] == IMAGES_CONFIG
    ]
    found: dict[str, dict[str, Any]] = {}
    wanted = pa.array(sorted(ids), pa.string())
    for file in files:
        table = _read_table(file, [IMAGE_ID_COLUMN, IMAGE_COLUMN])
        table = table.filter(pc.is_in(table.column(IMAGE_ID_COLUMN), value_set=wanted))
        for image_id, cell in zip(
            table.column(IMAGE_ID_COLUMN).to_pylist(),
            table.column(IMAGE_COLUMN).to_pylist(),
            strict=True,
        ):
            found[image_id] = cell
    missing = sorted(ids - set(found))
    if missing:
        raise ConfigError(
            f"{release_dir}: {len(missing)} image ids are not in the {IMAGES_CONFIG} config, "
            f"for example {missing[0]}; the release is incomplete, so verify or rebuild it"
        )
    return found


def attach_images(release_dir: Path | UPath, table: pa.Table) -> pa.Table:
    """Fill empty image columns from the release's `images` config, by image id."""
    for column, id_column, is_list in _image_columns(table.schema):
        images = table.column(column).to_pylist()
        ids = table.column(id_column).to_pylist()
        needed: set[str] = set()
        for cell, value in zip(images, ids, strict=True):
            if cell is None and value:
                needed.update(value if is_list else [value])
        if not needed:
            continue
        stored = _stored_images(release_dir, needed)
        filled = []
        for cell, value in zip(images, ids, strict=True):
            if cell is not None or not value:
                filled.append(cell)
            elif is_list:
                filled.append([stored[image_id] for image_id in value])
            else:
                filled.append(stored[value])
        position = table.schema.get_field_index(column)
        field = table.schema.field(position)
        table = table.set_column(position, field, pa.array(filled, type=field.type))
        log.debug("attached %d stored images to column %s", len(needed), column)
    return table


def load(
    release: str | os.PathLike[str],
    config: str,
    split: str,
    *,
    dataset: str | None = None,
    output_root: str | os.PathLike[str] | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """Return the rows of one split of a release, with stored images attached.

    `release` is a release folder, or a release key (then pass `dataset`, and
    `output_root` unless $CORPUSFORGE_OUTPUT_ROOT or ./published contains it).
    `columns` reads only those columns; images are attached when both an image
    column and its id column are among them. Raise ConfigError naming the known
    configs or splits when (config, split) does not exist.
    """
    release_dir = release_path(release, dataset, output_root)
    table = _read(data_files(release_dir, config, split), columns)
    return attach_images(release_dir, table)
