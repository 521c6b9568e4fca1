"""Read a staged release folder and check that plan.json, shard json and part files agree.

Layout, relative to the staging folder:

    plan.json                  {"dataset", "release", "shards": [{"index", "config", "split"}]}
    parts/shard-00000.json     {"index", "config", "split", "rows", "bytes", "sha256", "file"}
    parts/shard-00000.parquet  the shard's rows; absent when the shard has 0 rows
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from corpusforge.data_contracts.report import RuleResult
from corpusforge.generators.errors import ValidationFailed

MANIFEST_RULE = "shard_manifest"
MANIFEST_DESCRIPTION = (
    "Each planned shard has a shard json that matches plan.json, and its part file has "
    "the declared rows, bytes and sha256; no part file exists for a shard with 0 rows."
)
_SHARD_FILE = re.compile(r"^shard-(\d{5})\.(json|parquet)$")


@dataclass
class Shard:
    """One planned shard as its shard json describes it. `path` is set when rows can be checked."""

    index: int
    config: str
    split: str
    file: str | None = None
    rows: int = 0
    bytes: int | None = None
    sha256: str | None = None
    quarantined: dict[str, int] = field(default_factory=dict)
    path: Path | None = None
    checked: bool = False
    skip_reason: str = ""
    # Files under the staging folder that contain this shard's GX results.
    gx_results: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """Return the part file path, or the shard json path when there is no part file."""
        return self.file or f"parts/shard-{self.index:05d}.json"

    def summary(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "config": self.config,
            "split": self.split,
            "file": self.file,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "quarantined": self.quarantined,
            "checked": self.checked,
            "skip_reason": self.skip_reason,
            "gx_results": self.gx_results,
        }


def read_plan(staging: Path) -> dict[str, Any]:
    """Return plan.json, raising ValidationFailed when it is missing or malformed."""
    path = staging / "plan.json"
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ValidationFailed(
            f"{path} not found; stage the release before validating it"
        ) from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValidationFailed(f"cannot read {path}: {error}") from error
    if not isinstance(plan, dict) or not isinstance(plan.get("dataset"), str):
        raise ValidationFailed(f"{path} needs a 'dataset' string and a 'shards' list")
    shards = plan.get("shards")
    if not isinstance(shards, list):
        raise ValidationFailed(f"{path} needs a 'dataset' string and a 'shards' list")
    for entry in shards:
        if not isinstance(entry, dict) or not isinstance(entry.get("index"), int):
            raise ValidationFailed(f"{path}: every shard needs an integer 'index'; found {entry!r}")
    return plan


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_shard_manifest(staging: Path, planned: dict[str, Any], rule: RuleResult) -> Shard:
    """Read the shard json of one planned shard and check it against the plan and part file.

    Failures go to `rule`. The returned shard's `path` is None when it has no
    rows or when its files disagree, so that no row check runs on it.
    """
    index = planned["index"]
    shard = Shard(index, str(planned.get("config")), str(planned.get("split")))
    json_path = staging / "parts" / f"shard-{index:05d}.json"
    try:
        manifest = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        rule.record(shard.label, None, "shard json not found; stage this shard again", rows=0)
        return shard
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        rule.record(shard.label, None, f"cannot read shard json: {error}", rows=0)
        return shard

    shard.file = manifest.get("file")
    shard.rows = manifest.get("rows") if isinstance(manifest.get("rows"), int) else 0
    shard.bytes = manifest.get("bytes")
    shard.sha256 = manifest.get("sha256")
    shard.quarantined = manifest.get("quarantined") or {}
    problems = [
        f"{key} is {manifest.get(key)!r} in shard json but {planned.get(key)!r} in plan.json"
        for key in ("index", "config", "split")
        if manifest.get(key) != planned.get(key)
    ]
    if not isinstance(manifest.get("rows"), int) or manifest["rows"] < 0:
        problems.append(f"rows is {manifest.get('rows')!r}; expected an integer >= 0")
    expected_file = f"parts/shard-{index:05d}.parquet"
    if shard.rows == 0 and (shard.file is not None or (staging / expected_file).exists()):
        problems.append(f"shard has 0 rows but file is {shard.file!r} and {expected_file} exists")
    if shard.rows > 0 and shard.file != expected_file:
        problems.append(f"file is {shard.file!r}; expected {expected_file!r}")
    if not problems and shard.rows > 0:
        problems = _part_file_problems(staging / expected_file, shard)
    for problem in problems:
        rule.record(shard.label, None, problem, rows=0)
    if not problems and shard.rows > 0:
        shard.path = staging / expected_file
    return shard


def _part_file_problems(path: Path, shard: Shard) -> list[str]:
    if not path.is_file():
        return [f"{shard.file} not found"]
    problems = []
    size = path.stat().st_size
    if size != shard.bytes:
        problems.append(f"file has {size} bytes; shard json says {shard.bytes}")
    digest = sha256_of(path)
    if digest != shard.sha256:
        problems.append(f"file sha256 is {digest}; shard json says {shard.sha256}")
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowInvalid) as error:
        return [*problems, f"cannot read Parquet file: {error}"]
    if rows != shard.rows:
        problems.append(f"file has {rows} rows; shard json says {shard.rows}")
    return problems


def check_unplanned_files(staging: Path, planned: list[dict[str, Any]], rule: RuleResult) -> None:
    """Record shard files in parts/ whose index is not in plan.json."""
    indexes = {entry["index"] for entry in planned}
    parts = staging / "parts"
    for path in sorted(parts.iterdir()) if parts.is_dir() else []:
        match = _SHARD_FILE.match(path.name)
        if match and int(match.group(1)) not in indexes:
            rule.record(f"parts/{path.name}", None, "file is not part of any shard in plan.json", 0)
