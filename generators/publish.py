"""Turn a validated staging folder into a visible release, atomically.

Steps, each safe to interrupt:
1. rename the validated parts to their final shard names inside the staging folder,
   and rewrite `validation/summary.json` to name the shards by those names;
2. write the dataset card, then `manifest.json` with the sha256 of every file,
   into the staging folder;
3. rename the staging folder to an immutable attempt folder under `.releases/`;
4. point the `<release>` symbolic link at it (a new link renamed over the old one);
5. move `LATEST` forward when this release is the newest by its order date.
A kill before step 4 leaves the previous release untouched; the switch itself
is one `rename(2)`, which POSIX makes atomic on a local file system.

A staging folder on an object store is published by `remote_release`, with
pointer files in place of the link and the rename.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upath import UPath

from corpusforge.data_contracts.report import json_text, published_summary
from corpusforge.generators import layout, objstore
from corpusforge.generators.card import write_card
from corpusforge.generators.errors import PublishError, ValidationFailed
from corpusforge.generators.faults import crash_point
from corpusforge.generators.llm.usage import merge_usage
from corpusforge.generators.manifest import build_manifest, release_files
from corpusforge.generators.pipeline import _write_json, load_plan
from corpusforge.generators.registry import get_builder
from corpusforge.generators.shard_writer import file_sha256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishedRelease:
    dataset: str
    release: str
    path: str
    content_fingerprint: str
    num_rows: int
    splits: dict[str, dict[str, int]]
    latest: bool

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@contextlib.contextmanager
def publish_lock(dataset_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock so only one publish per dataset runs at a time."""
    dataset_dir.mkdir(parents=True, exist_ok=True)
    with (dataset_dir / layout.LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_validation(staging: Path | UPath) -> dict[str, Any]:
    summary_path = staging / "validation" / "summary.json"
    if not summary_path.exists():
        raise ValidationFailed(
            f"{staging} has no validation/summary.json: validate the staged release before "
            "publishing it"
        )
    summary = json.loads(summary_path.read_text())
    if not summary.get("success"):
        raise ValidationFailed(f"{staging} failed validation; see {summary_path}")
    return summary


def _final_shards(staging: Path | UPath, plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Check every part against its stats and assign final shard names (no renames yet)."""
    stats = []
    for task in plan["shards"]:
        stats_path = staging / "parts" / f"{layout.part_name(task['index'])}.json"
        if not stats_path.exists():
            raise PublishError(
                f"shard {task['index']} was never generated: {stats_path} is missing"
            )
        stats.append(json.loads(stats_path.read_text()))

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for shard in stats:
        if shard["rows"]:
            groups.setdefault((shard["config"], shard["split"]), []).append(shard)

    final = []
    for (config, split), members in sorted(groups.items()):
        for number, shard in enumerate(members):
            name = layout.shard_file_name(split, number, len(members))
            final.append(
                {
                    "path": f"data/{config}/{name}",
                    "config": config,
                    "split": split,
                    "rows": shard["rows"],
                    "bytes": shard["bytes"],
                    "sha256": shard["sha256"],
                    "part": shard["file"],
                    "shard_index": shard["index"],
                }
            )
    return final


def write_published_summary(
    staging: Path | UPath, summary: dict[str, Any], shards: list[dict[str, Any]]
) -> None:
    """Rewrite validation/summary.json to name each shard by its path in the release.

    Validation names the staged part files (`parts/shard-00000.parquet`), which
    publishing moves to `data/`. `shards` are the final shards of `_final_shards`.
    A rerun after an interrupted publish finds the summary already rewritten.
    """
    renamed = published_summary(summary, {shard["part"]: shard["path"] for shard in shards})
    if renamed == summary:
        return
    path = staging / "validation" / "summary.json"
    data = json_text(renamed).encode("utf-8")
    if isinstance(path, UPath):
        objstore.write_bytes(path, data)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _move_parts(staging: Path, shards: list[dict[str, Any]]) -> None:
    for shard in shards:
        source = staging / shard["part"]
        target = staging / shard["path"]
        if target.exists() and not source.exists():
            continue  # moved by an earlier, interrupted publish of this staging folder
        if file_sha256(source) != shard["sha256"]:
            raise PublishError(f"{source} changed after validation: its sha256 no longer matches")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)


def _order_of(dataset_dir: Path, release: str) -> str | None:
    manifest = dataset_dir / release / "manifest.json"
    try:
        return json.loads(manifest.read_text())["run"]["ordered_at"]
    except (OSError, ValueError, KeyError):
        return None


def _switch_link(dataset_dir: Path, release: str, target: Path) -> Path | None:
    """Point `<dataset_dir>/<release>` at `target`; return the previous target, if any."""
    link = dataset_dir / release
    previous = None
    if link.is_symlink():
        previous = (dataset_dir / os.readlink(link)).resolve()
    elif link.exists():
        raise PublishError(
            f"{link} exists and is not a release link; move it away before publishing {release}"
        )
    tmp_link = dataset_dir / f".{release}.link.tmp"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(os.path.relpath(target, dataset_dir))
    os.replace(tmp_link, link)
    return previous


def _write_latest(dataset_dir: Path, release: str) -> None:
    tmp = dataset_dir / f".{layout.LATEST}.{os.getpid()}.tmp"
    tmp.write_text(release + "\n")
    os.replace(tmp, dataset_dir / layout.LATEST)


def read_latest(dataset_dir: Path | UPath) -> str | None:
    """Return the release that LATEST names, or None before the first publish."""
    try:
        if isinstance(dataset_dir, UPath):
            return objstore.read_text(dataset_dir / layout.LATEST).strip() or None
        return (dataset_dir / layout.LATEST).read_text().strip() or None
    except FileNotFoundError:
        return None


def release_manifest(
    staging: Path | UPath,
    plan: dict[str, Any],
    shards: list[dict[str, Any]],
    validation: dict[str, Any],
) -> dict[str, Any]:
    """Build the manifest from the final shards and the quarantine and LLM stats of every shard."""
    quarantined: dict[str, int] = {}
    llm_sections = []
    for task in plan["shards"]:
        stats_path = staging / "parts" / f"{layout.part_name(task['index'])}.json"
        shard_stats = json.loads(stats_path.read_text())
        for reason, count in shard_stats["quarantined"].items():
            quarantined[reason] = quarantined.get(reason, 0) + count
        llm_sections.append(shard_stats.get("llm"))
    for shard in shards:
        shard.pop("part")
        shard.pop("shard_index")

    created_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return build_manifest(
        plan, shards, quarantined, validation, created_at, llm=merge_usage(llm_sections)
    )


def publish_release(staging: str | Path | UPath) -> PublishedRelease:
    """Publish a validated staging folder as its release and move LATEST forward."""
    folder = objstore.location(staging)
    if isinstance(folder, UPath):
        # Imported here because remote_release builds on this module's helpers.
        from corpusforge.generators.remote_release import publish_remote

        return publish_remote(folder)
    staging = folder
    plan = load_plan(staging)
    dataset = plan["dataset"]
    release = plan["release"]
    dataset_dir = staging.parent.parent
    validation = _read_validation(staging)

    with publish_lock(dataset_dir):
        shards = _final_shards(staging, plan)
        crash_point("before_move_parts")
        _move_parts(staging, shards)
        write_published_summary(staging, validation, shards)
        manifest = release_manifest(staging, plan, shards, validation)
        write_card(staging, manifest, get_builder(dataset))
        manifest["files"] = release_files(staging, manifest["shards"])
        _write_json(staging / "manifest.json", manifest)
        shutil.rmtree(staging / "parts")
        crash_point("before_rename_staging")

        releases_dir = dataset_dir / layout.RELEASES_DIR
        releases_dir.mkdir(exist_ok=True)
        target = releases_dir / plan["attempt"]
        os.rename(staging, target)
        crash_point("before_switch")

        previous = _switch_link(dataset_dir, release, target)
        crash_point("before_latest")

        latest = read_latest(dataset_dir)
        order = plan["run"]["ordered_at"]
        latest_order = _order_of(dataset_dir, latest) if latest and latest != release else None
        moved = latest is None or latest == release or latest_order is None or order >= latest_order
        if moved:
            _write_latest(dataset_dir, release)
        else:
            log.info("LATEST stays at %s, which is newer than %s", latest, release)

        if previous is not None and previous != target.resolve() and previous.exists():
            # NOTE: a reader still holding files of the replaced attempt loses them here.
            shutil.rmtree(previous, ignore_errors=True)

    log.info(
        "published %s release %s: %d rows, fingerprint %s",
        dataset,
        release,
        manifest["num_rows"],
        manifest["content_fingerprint"],
    )
    return PublishedRelease(
        dataset=dataset,
        release=release,
        path=str(dataset_dir / release),
        content_fingerprint=manifest["content_fingerprint"],
        num_rows=manifest["num_rows"],
        splits=manifest["splits"],
        latest=moved,
    )
