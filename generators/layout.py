"""Paths and names of the release layout that downstream consumers rely on.

```
<output_root>/<dataset>/<release>            symbolic link to .releases/<release>.<attempt>
<output_root>/<dataset>/.releases/<release>.<attempt>/   immutable published attempt
    README.md, manifest.json, data/<config>/<split>-00000-of-00004.parquet,
    validation/, quarantine/
<output_root>/<dataset>/LATEST               name of the newest complete release
<output_root>/<dataset>/.staging/<release>.<attempt>/    work in progress
```

On an object store (an fsspec URL such as `s3://bucket/prefix`, see
`objstore`), which has neither links nor renames, small pointer files take the
place of the links:

```
<output_root>/<dataset>/<release>.json       pointer: {"release", "attempt", "path", ...}
<output_root>/<dataset>/LATEST               name of the newest complete release
<output_root>/<dataset>/.releases/<release>.<attempt>/   staged in place, then immutable
```
"""

from __future__ import annotations

import re
from pathlib import Path

from corpusforge.generators import objstore
from corpusforge.generators.errors import ConfigError

DATASETS = ("stephint", "mllmu_med", "med_mim")
RELEASE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
NAME_PATTERN = re.compile(r"^[a-z0-9_]+$")
LATEST = "LATEST"
STAGING_DIR = ".staging"
RELEASES_DIR = ".releases"
LOCK_FILE = ".publish.lock"
POINTER_SUFFIX = ".json"


def check_release_key(release: str) -> str:
    """Return `release` unchanged, or raise ConfigError naming the allowed characters."""
    if not isinstance(release, str) or not RELEASE_PATTERN.match(release) or release == LATEST:
        raise ConfigError(
            f"invalid release key {release!r}: use letters, digits, '.', '_' and '-', "
            "start with a letter or digit, at most 128 characters, and not 'LATEST'"
        )
    if release in (".", "..") or release.endswith(".lock"):
        raise ConfigError(f"invalid release key {release!r}: reserved name")
    return release


def sanitize_release_key(text: str) -> str:
    """Turn a run id such as 'manual__2026-12-04T20:00:00+00:00' into a valid release key."""
    key = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    key = key[:128] or "run"
    if not key[0].isalnum():
        key = "r" + key[:127]
    if key == LATEST:
        key = "run-LATEST"
    return key


def check_name(kind: str, name: str) -> str:
    """Check a config or split name against [a-z0-9_]+, which `datasets` accepts."""
    if not NAME_PATTERN.match(name):
        raise ConfigError(
            f"invalid {kind} name {name!r}: use lowercase letters, digits and '_' "
            "(the datasets library rejects split names with hyphens)"
        )
    return name


def dataset_dir(output_root: str | Path, dataset: str) -> objstore.Location:
    """Return the dataset's folder: a Path under a local root, a UPath under a remote one."""
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    return objstore.location(output_root) / dataset


def pointer_name(release: str) -> str:
    """Return the name of the pointer file that publishes `release` on an object store."""
    return release + POINTER_SUFFIX


def shard_file_name(split: str, number: int, total: int) -> str:
    return f"{split}-{number:05d}-of-{total:05d}.parquet"


def part_name(index: int) -> str:
    return f"shard-{index:05d}"
