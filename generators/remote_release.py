"""Publish and find releases on an object store, which has neither links nor renames.

A release is staged in place in its attempt folder,
`<dataset>/.releases/<release>.<attempt>/`, which no later step changes once
it is published. Publishing a validated attempt folder:
1. moves the validated parts to their final shard names (a server-side copy on
   S3 and GCS) after checking each part's sha256, and rewrites
   `validation/summary.json` to name the shards by those names;
2. writes the dataset card, then `manifest.json` with the sha256 of every object;
3. writes the pointer `<dataset>/<release>.json`, which makes the release visible;
4. writes `LATEST` when this release is the newest by its order date;
5. removes the attempt folder that the pointer named before.
Each step writes whole objects, and a single-object write is atomic on S3 and
GCS, so a kill before step 3 leaves the previous release as it was.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from pathlib import Path
from typing import Any

from upath import UPath

from corpusforge.generators import layout, objstore
from corpusforge.generators.card import write_card
from corpusforge.generators.errors import PublishError
from corpusforge.generators.faults import crash_point
from corpusforge.generators.manifest import release_files
from corpusforge.generators.pipeline import load_plan
from corpusforge.generators.publish import (
    PublishedRelease,
    _final_shards,
    _read_validation,
    read_latest,
    release_manifest,
    write_published_summary,
)
from corpusforge.generators.registry import get_builder
from corpusforge.generators.shard_writer import file_sha256

log = logging.getLogger(__name__)


def read_pointer(dataset_dir: UPath, release: str) -> dict[str, Any] | None:
    """Return the pointer of `release`, or None when it is not published."""
    try:
        return objstore.read_json(dataset_dir / layout.pointer_name(release))
    except FileNotFoundError:
        return None


def pointer_target(dataset_dir: UPath, pointer: dict[str, Any]) -> UPath:
    """Return the attempt folder a pointer names, which must lie under `.releases/`."""
    relative = str(pointer.get("path", ""))
    parts = relative.split("/")
    if len(parts) != 2 or parts[0] != layout.RELEASES_DIR or parts[1] in ("", ".", ".."):
        raise PublishError(
            f"invalid pointer of release {pointer.get('release')!r} in {dataset_dir}: path "
            f"{relative!r} is not '{layout.RELEASES_DIR}/<attempt>'; publish the release again"
        )
    return dataset_dir / layout.RELEASES_DIR / parts[1]


def published_releases(dataset_dir: UPath) -> list[str]:
    """Return the release keys that have a pointer file in `dataset_dir`, sorted by name."""
    releases = []
    for name, kind in objstore.children(dataset_dir):
        if kind != "file" or name.startswith(".") or not name.endswith(layout.POINTER_SUFFIX):
            continue
        release = name.removesuffix(layout.POINTER_SUFFIX)
        if layout.RELEASE_PATTERN.match(release) and release != layout.LATEST:
            releases.append(release)
    return releases


def _order_of(dataset_dir: UPath, release: str) -> str | None:
    pointer = read_pointer(dataset_dir, release)
    return str(pointer["ordered_at"]) if pointer and pointer.get("ordered_at") else None


def _move_parts(staging: UPath, shards: list[dict[str, Any]], mirror: Path) -> None:
    """Check each part's sha256 on a local copy in `mirror`, then move it to its final name.

    The copy in `mirror` is what the card statistics read. A part already moved
    by an earlier, interrupted publish of this attempt folder is checked at its
    final name.
    """
    for shard in shards:
        source = staging / shard["part"]
        target = staging / shard["path"]
        moved = not objstore.exists(source) and objstore.exists(target)
        current = target if moved else source
        local = mirror / shard["path"]
        local.parent.mkdir(parents=True, exist_ok=True)
        current.fs.get_file(current.path, str(local))
        if file_sha256(local) != shard["sha256"]:
            raise PublishError(
                f"{current} changed after validation: its sha256 no longer matches; "
                "generate and validate the release again"
            )
        if not moved:
            source.fs.mv(source.path, target.path)


def _write_latest(dataset_dir: UPath, release: str, order: str) -> bool:
    """Write LATEST when `release` is not older than the release it names; return whether it moved.

    NOTE: an object store has no lock, so this read-compare-write is safe only
    while one publish per dataset runs at a time (one active publish task of the
    DAG, such as an Airflow pool with one slot). Two publishes that overlap
    here can leave LATEST at the older of the two. The check after the write
    detects that case in most interleavings and logs an error.
    """
    latest = read_latest(dataset_dir)
    latest_order = _order_of(dataset_dir, latest) if latest and latest != release else None
    if not (latest is None or latest == release or latest_order is None or order >= latest_order):
        log.info("LATEST stays at %s, which is newer than %s", latest, release)
        return False
    objstore.write_bytes(dataset_dir / layout.LATEST, (release + "\n").encode("utf-8"))
    written = read_latest(dataset_dir)
    if written != release:
        log.error(
            "LATEST of %s names %s right after this publish wrote %s: another publish of the "
            "dataset ran at the same time; check LATEST",
            dataset_dir,
            written,
            release,
        )
    return True


def publish_remote(staging: UPath) -> PublishedRelease:
    """Publish a validated attempt folder on an object store and move LATEST forward."""
    plan = load_plan(staging)
    dataset = plan["dataset"]
    release = plan["release"]
    dataset_dir = staging.parent.parent
    validation = _read_validation(staging)

    shards = _final_shards(staging, plan)
    crash_point("before_move_parts")
    with tempfile.TemporaryDirectory(prefix="corpusforge-publish-") as tmp:
        mirror = Path(tmp)
        _move_parts(staging, shards, mirror)
        write_published_summary(staging, validation, shards)
        manifest = release_manifest(staging, plan, shards, validation)
        write_card(mirror, manifest, get_builder(dataset), location=str(staging))
        for local in sorted(mirror.rglob("*")):
            relative = local.relative_to(mirror).as_posix()
            if local.is_file() and not relative.startswith("data/"):
                objstore.put_file(local, staging / relative)
    manifest["files"] = release_files(staging, manifest["shards"])
    objstore.write_json(staging / "manifest.json", manifest)
    objstore.remove(staging / "parts", recursive=True)
    crash_point("before_rename_staging")
    crash_point("before_switch")

    previous = read_pointer(dataset_dir, release)
    pointer = {
        "release": release,
        "attempt": plan["attempt"],
        "path": f"{layout.RELEASES_DIR}/{plan['attempt']}",
        "ordered_at": plan["run"]["ordered_at"],
        "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "content_fingerprint": manifest["content_fingerprint"],
        "num_rows": manifest["num_rows"],
    }
    objstore.write_json(dataset_dir / layout.pointer_name(release), pointer)
    crash_point("before_latest")

    moved = _write_latest(dataset_dir, release, plan["run"]["ordered_at"])
    if previous is not None and previous.get("attempt") != plan["attempt"]:
        # NOTE: a reader still holding files of the replaced attempt loses them here.
        objstore.remove(pointer_target(dataset_dir, previous), recursive=True)

    log.info(
        "published %s release %s at %s: %d rows, fingerprint %s",
        dataset,
        release,
        staging,
        manifest["num_rows"],
        manifest["content_fingerprint"],
    )
    return PublishedRelease(
        dataset=dataset,
        release=release,
        path=str(staging),
        content_fingerprint=manifest["content_fingerprint"],
        num_rows=manifest["num_rows"],
        splits=manifest["splits"],
        latest=moved,
    )
