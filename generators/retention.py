"""Remove old releases and abandoned work folders of one dataset, never LATEST.

`prune` keeps the newest `keep` releases in the order that LATEST follows (the
run's logical date, else its start time) and always keeps the release LATEST
names. It also removes staging folders and unlinked attempt folders under
`.releases/` that no process has written to for `max_age`. It holds the
publish lock while it works, so it never races a publish of the same dataset
on this machine.

On an object store a release is a pointer file (see `remote_release`). There
is no staging folder there, because attempts are staged in place under
`.releases/`, so an attempt folder that no pointer names and that nothing has
written to for `max_age` is an abandoned run.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from upath import UPath

from corpusforge.generators import layout, objstore
from corpusforge.generators.errors import ConfigError, PublishError
from corpusforge.generators.publish import publish_lock, read_latest
from corpusforge.generators.remote_release import pointer_target, published_releases, read_pointer

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = dt.timedelta(hours=24)


@dataclass
class PruneResult:
    """Releases and folders that `prune` removed (or would remove) and the releases it kept."""

    dataset: str
    kept: list[str] = field(default_factory=list)
    removed_releases: list[str] = field(default_factory=list)
    removed_attempts: list[str] = field(default_factory=list)
    removed_staging: list[str] = field(default_factory=list)
    dry_run: bool = False

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Release:
    name: str
    link: Path
    target: Path
    ordered_at: str


def prune(
    output_root: str | Path,
    dataset: str,
    keep: int,
    max_age: dt.timedelta = DEFAULT_MAX_AGE,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Remove releases beyond the newest `keep` and work folders idle for longer than `max_age`.

    A release goes in two steps: its link first, so readers stop finding it at
    once, then its attempt folder. A release whose manifest cannot be read
    counts as the oldest. Raises ConfigError for `keep` below 1 or a negative
    `max_age`.
    """
    if not isinstance(keep, int) or keep < 1:
        raise ConfigError(f"invalid keep {keep!r}: keep at least 1 release (LATEST is always kept)")
    if max_age < dt.timedelta(0):
        raise ConfigError(f"invalid max_age {max_age}: use zero or a positive duration")
    now = now or dt.datetime.now(dt.UTC)
    dataset_dir = layout.dataset_dir(output_root, dataset)
    result = PruneResult(dataset=dataset, dry_run=dry_run)
    if isinstance(dataset_dir, UPath):
        _prune_remote(dataset_dir, keep, now.timestamp() - max_age.total_seconds(), result)
        _log_result(result)
        return result
    if not dataset_dir.is_dir():
        return result

    with publish_lock(dataset_dir):
        latest = read_latest(dataset_dir)
        releases = sorted(_releases(dataset_dir), key=lambda item: (item.ordered_at, item.name))
        kept = {release.name for release in releases[-keep:]}
        if latest is not None:
            kept.add(latest)
        result.kept = [release.name for release in releases if release.name in kept]

        for release in releases:
            if release.name in kept:
                continue
            result.removed_releases.append(release.name)
            if not dry_run:
                _remove_release(release)

        # Attempt folders behind a link were handled above. The others are left
        # by a publish that crashed between its rename and its link switch.
        cutoff = now.timestamp() - max_age.total_seconds()
        targets = {release.target for release in releases}
        for attempt in _children(dataset_dir / layout.RELEASES_DIR):
            if attempt.resolve() in targets or _last_write(attempt) > cutoff:
                continue
            result.removed_attempts.append(attempt.name)
            if not dry_run:
                log.info("removing unlinked attempt folder %s", attempt)
                shutil.rmtree(attempt)

        for staging in _children(dataset_dir / layout.STAGING_DIR):
            if _last_write(staging) > cutoff:
                continue
            result.removed_staging.append(staging.name)
            if not dry_run:
                log.info("removing abandoned staging folder %s", staging)
                shutil.rmtree(staging)

    _log_result(result)
    return result


def _log_result(result: PruneResult) -> None:
    log.info(
        "%s %s: kept %d releases, %s %d releases, %d attempt folders, %d staging folders",
        "dry run for" if result.dry_run else "pruned",
        result.dataset,
        len(result.kept),
        "would remove" if result.dry_run else "removed",
        len(result.removed_releases),
        len(result.removed_attempts),
        len(result.removed_staging),
    )


def _prune_remote(dataset_dir: UPath, keep: int, cutoff: float, result: PruneResult) -> None:
    """Prune a dataset on an object store: pointer first, then its attempt folder.

    NOTE: an object store has no lock, so run prune when no publish of the
    dataset is running: a publish that reads LATEST while prune removes the
    release LATEST named before can compare against a missing pointer.
    """
    latest = read_latest(dataset_dir)
    releases = []
    for name in published_releases(dataset_dir):
        pointer = read_pointer(dataset_dir, name)
        if pointer is None:
            continue
        try:
            target = pointer_target(dataset_dir, pointer)
        except PublishError as error:
            log.warning("%s; its attempt folder is left alone", error)
            target = None
        ordered_at = str(pointer.get("ordered_at") or "")
        if not ordered_at:
            log.warning("release %s has no order date, so it counts as the oldest", name)
        releases.append((ordered_at, name, target))
    releases.sort(key=lambda item: (item[0], item[1]))

    kept = {name for _, name, _ in releases[-keep:]}
    if latest is not None:
        kept.add(latest)
    result.kept = [name for _, name, _ in releases if name in kept]
    targets = {target.path for _, name, target in releases if target is not None and name in kept}
    for ordered_at, name, target in releases:
        if name in kept:
            continue
        result.removed_releases.append(name)
        if not result.dry_run:
            log.info("removing release %s (ordered at %s)", name, ordered_at or "unknown")
            objstore.remove(dataset_dir / layout.pointer_name(name))
            if target is not None:
                objstore.remove(target, recursive=True)
        if target is not None:
            targets.add(target.path)  # removed above, or kept out of the idle check in a dry run

    for name, kind in objstore.children(dataset_dir / layout.RELEASES_DIR):
        attempt = dataset_dir / layout.RELEASES_DIR / name
        if kind != "directory" or attempt.path in targets or _last_remote_write(attempt) > cutoff:
            continue
        result.removed_attempts.append(name)
        if not result.dry_run:
            log.info("removing unlinked attempt folder %s", attempt)
            objstore.remove(attempt, recursive=True)


def _last_remote_write(folder: UPath) -> float:
    """Return the newest modification time of the objects under `folder`, in epoch seconds."""
    newest = 0.0
    for relative in objstore.files_under(folder):
        try:
            modified = folder.fs.modified(f"{folder.path}/{relative}")
        except FileNotFoundError:
            continue  # removed by a running task while this loop ran
        newest = max(newest, modified.timestamp())
    return newest


def _releases(dataset_dir: Path) -> list[_Release]:
    releases = []
    for entry in sorted(dataset_dir.iterdir()):
        if entry.name.startswith(".") or not entry.is_symlink():
            continue
        target = (dataset_dir / os.readlink(entry)).resolve()
        try:
            manifest = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
            ordered_at = str(manifest["run"]["ordered_at"])
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("release %s has no readable manifest, so it counts as the oldest", entry)
            ordered_at = ""
        releases.append(_Release(entry.name, entry, target, ordered_at))
    return releases


def _remove_release(release: _Release) -> None:
    log.info("removing release %s (ordered at %s)", release.name, release.ordered_at or "unknown")
    release.link.unlink()
    if release.target.is_dir():
        shutil.rmtree(release.target)


def _children(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_dir() and not path.is_symlink())


def _last_write(folder: Path) -> float:
    """Return the newest modification time of `folder` and everything under it."""
    newest = folder.lstat().st_mtime
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except FileNotFoundError:
                continue  # removed by a running task while this walk ran
    return newest
