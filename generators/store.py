"""Read published releases: list them, load manifests, verify checksums."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpusforge.generators import layout
from corpusforge.generators.errors import ConfigError
from corpusforge.generators.manifest import content_fingerprint
from corpusforge.generators.publish import read_latest
from corpusforge.generators.shard_writer import file_sha256


@dataclass(frozen=True)
class ReleaseInfo:
    release: str
    path: Path
    num_rows: int
    created_at: str
    ordered_at: str
    content_fingerprint: str
    latest: bool


def list_releases(output_root: str | Path, dataset: str) -> list[ReleaseInfo]:
    """Return the published releases of `dataset`, oldest first by order date."""
    root = layout.dataset_dir(output_root, dataset)
    if not root.exists():
        return []
    latest = read_latest(root)
    releases = []
    for entry in root.iterdir():
        if entry.name.startswith(".") or not entry.is_symlink():
            continue
        manifest = load_manifest(entry)
        releases.append(
            ReleaseInfo(
                release=entry.name,
                path=entry,
                num_rows=manifest["num_rows"],
                created_at=manifest["created_at"],
                ordered_at=manifest["run"]["ordered_at"],
                content_fingerprint=manifest["content_fingerprint"],
                latest=entry.name == latest,
            )
        )
    return sorted(releases, key=lambda info: (info.ordered_at, info.release))


def release_dir(output_root: str | Path, dataset: str, release: str | None) -> Path:
    """Return the folder of `release`, or of LATEST when `release` is None or 'LATEST'."""
    root = layout.dataset_dir(output_root, dataset)
    if release in (None, layout.LATEST):
        release = read_latest(root)
        if release is None:
            raise ConfigError(f"{root} has no LATEST release: publish one first")
    path = root / release
    if not (path / "manifest.json").exists():
        known = ", ".join(info.release for info in list_releases(output_root, dataset)) or "none"
        raise ConfigError(f"release {release!r} not found under {root}; published: {known}")
    return path


def load_manifest(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))


def verify_release(path: Path) -> list[str]:
    """Recompute every checksum of a release; return one message per problem found."""
    path = Path(path)
    manifest = load_manifest(path)
    problems = []
    listed = set()
    for shard in manifest["shards"]:
        file = path / shard["path"]
        listed.add(shard["path"])
        if not file.exists():
            problems.append(f"{shard['path']}: missing")
            continue
        if file.stat().st_size != shard["bytes"]:
            problems.append(
                f"{shard['path']}: size {file.stat().st_size} bytes, manifest says {shard['bytes']}"
            )
        actual = file_sha256(file)
        if actual != shard["sha256"]:
            problems.append(f"{shard['path']}: sha256 {actual}, manifest says {shard['sha256']}")
    for file in sorted((path / "data").rglob("*.parquet")):
        relative = str(file.relative_to(path))
        if relative not in listed:
            problems.append(f"{relative}: not listed in the manifest")
    if content_fingerprint(manifest) != manifest["content_fingerprint"]:
        problems.append("manifest.json: content_fingerprint does not match the manifest's content")
    return problems


@dataclass(frozen=True)
class StagingProgress:
    """Shards generated so far in a staging folder, with their rows and generation time."""

    done: int
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def seconds_left(self, num_shards: int) -> float:
        """Estimate the generation time of the remaining shards, one shard at a time.

        The estimate assumes the remaining shards take as long as the mean finished one.
        """
        if self.done == 0:
            return 0.0
        return max(num_shards - self.done, 0) * self.seconds / self.done


def staging_progress(staging: str | Path) -> StagingProgress:
    """Sum the shard statistics written so far under `<staging>/parts/`."""
    done = rows = 0
    seconds = 0.0
    for stats_file in sorted((Path(staging) / "parts").glob("shard-*.json")):
        try:
            stats = json.loads(stats_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # replaced by a retried shard while this loop ran
        done += 1
        rows += int(stats.get("rows", 0))
        seconds += float(stats.get("seconds", 0.0))
    return StagingProgress(done=done, rows=rows, seconds=seconds)
