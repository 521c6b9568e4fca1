"""Read published releases: list them, load manifests, verify checksums.

Under a local output root a release is a symbolic link to its attempt folder.
On an object store it is a pointer file (see `remote_release`). The functions
here follow both, and return the attempt folder of a remote release as a UPath.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upath import UPath

from corpusforge.generators import layout, objstore
from corpusforge.generators.errors import ConfigError, CorpusforgeError, PublishError
from corpusforge.generators.manifest import content_fingerprint, folder_files, size_and_sha256
from corpusforge.generators.publish import read_latest
from corpusforge.generators.remote_release import pointer_target, published_releases, read_pointer


class DamagedReleaseError(CorpusforgeError):
    """A published release whose manifest.json is missing or is not a JSON object."""


class MissingLatestError(CorpusforgeError):
    """A LATEST file that names a release which is not published."""


@dataclass(frozen=True)
class ReleaseInfo:
    """One published release; a damaged release has `problem` set and its other fields empty."""

    release: str
    path: Path | UPath
    num_rows: int
    created_at: str
    ordered_at: str
    content_fingerprint: str
    latest: bool
    problem: str = ""


def list_releases(output_root: str | Path, dataset: str) -> list[ReleaseInfo]:
    """Return the published releases of `dataset`, oldest first by order date.

    A damaged release is listed with its `problem` set, after the others.
    """
    root = layout.dataset_dir(output_root, dataset)
    if isinstance(root, UPath):
        return _list_remote_releases(root)
    if not root.exists():
        return []
    latest = read_latest(root)
    releases = []
    for entry in root.iterdir():
        if entry.name.startswith(".") or not entry.is_symlink():
            continue
        releases.append(_release_info(entry.name, entry, entry.name == latest))
    return _sorted(releases)


def _list_remote_releases(root: UPath) -> list[ReleaseInfo]:
    latest = read_latest(root)
    releases = []
    for name in published_releases(root):
        pointer = read_pointer(root, name)
        if pointer is None:
            continue  # removed by a prune while this loop ran
        path = pointer_target(root, pointer)
        releases.append(_release_info(name, path, name == latest))
    return _sorted(releases)


def _release_info(name: str, path: Path | UPath, latest: bool) -> ReleaseInfo:
    try:
        manifest = load_manifest(path)
        return ReleaseInfo(
            release=name,
            path=path,
            num_rows=manifest["num_rows"],
            created_at=manifest["created_at"],
            ordered_at=manifest["run"]["ordered_at"],
            content_fingerprint=manifest["content_fingerprint"],
            latest=latest,
        )
    except DamagedReleaseError as error:
        return ReleaseInfo(name, path, 0, "", "", "", latest, problem=str(error))
    except (KeyError, TypeError) as error:
        problem = f"{path}/manifest.json: field {error} is missing or has the wrong type"
        return ReleaseInfo(name, path, 0, "", "", "", latest, problem=problem)


def _sorted(releases: list[ReleaseInfo]) -> list[ReleaseInfo]:
    return sorted(releases, key=lambda info: (bool(info.problem), info.ordered_at, info.release))


def release_dir(output_root: str | Path, dataset: str, release: str | None) -> Path | UPath:
    """Return the folder of `release`, or of LATEST when `release` is None or 'LATEST'.

    On an object store this is the attempt folder that the release's pointer names.
    Raise DamagedReleaseError when the release exists but its manifest.json does
    not, MissingLatestError when LATEST names a release that is not published,
    and ConfigError when `release` is not published.
    """
    root = layout.dataset_dir(output_root, dataset)
    latest = read_latest(root)
    if release in (None, layout.LATEST):
        release = latest
        if release is None:
            raise ConfigError(f"{root} has no LATEST release: publish one first")
    if isinstance(root, UPath):
        path = _resolve_remote(root, release)
        found = path is not None and objstore.exists(path / "manifest.json")
        if path is not None and not found:
            raise DamagedReleaseError(
                f"{path}/manifest.json: missing, although the pointer of release {release!r} "
                "names that folder; build the release again"
            )
    else:
        path = root / release
        found = (path / "manifest.json").exists()
        if not found and path.is_symlink() and path.is_dir():
            # The link and its attempt folder exist, so only the manifest is gone.
            raise DamagedReleaseError(_missing_manifest_message(path / "manifest.json"))
        if not found and path.is_symlink():
            raise DamagedReleaseError(
                f"{path}/manifest.json: missing, because the link {path} points to "
                f"{path.readlink()}, which does not exist; build the release again or "
                "remove the link"
            )
    if not found:
        known = [info.release for info in list_releases(output_root, dataset)]
        if release == latest:
            raise MissingLatestError(_missing_latest_message(root, release, known))
        raise ConfigError(
            f"release {release!r} not found under {root}; published: {', '.join(known) or 'none'}"
        )
    return path


def latest_problem(output_root: str | Path, dataset: str, releases: list[ReleaseInfo]) -> str:
    """Return a message when LATEST names a release that is not in `releases`, else ''.

    `releases` is the output of `list_releases` for the same dataset.
    """
    root = layout.dataset_dir(output_root, dataset)
    latest = read_latest(root)
    known = [info.release for info in releases]
    if latest is None or latest in known:
        return ""
    return _missing_latest_message(root, latest, known)


def _missing_latest_message(root: Path | UPath, release: str, known: list[str]) -> str:
    return (
        f"{root}/{layout.LATEST} names release {release!r}, which is not published "
        f"(published: {', '.join(known) or 'none'}); build that release again, or write "
        f"the name of a published release into {root}/{layout.LATEST}"
    )


def _missing_manifest_message(file: Path | UPath) -> str:
    return f"{file}: missing, so the release is damaged; build it again or remove it"


def _resolve_remote(root: UPath, release: str) -> UPath | None:
    pointer = read_pointer(root, release)
    if pointer is None:
        return None
    try:
        return pointer_target(root, pointer)
    except PublishError as error:
        raise ConfigError(str(error)) from error


def load_manifest(path: Path | UPath) -> dict[str, Any]:
    """Return a release's manifest.json as a dict.

    Raise DamagedReleaseError naming the file when it is missing or is not a JSON object.
    """
    folder = objstore.location(path)
    file = folder / "manifest.json"
    try:
        if isinstance(folder, UPath):
            manifest = objstore.read_json(file)
        else:
            manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise DamagedReleaseError(_missing_manifest_message(file)) from error
    except ValueError as error:
        raise DamagedReleaseError(
            f"{file}: invalid JSON ({error}), so the release is damaged; build it again or "
            "remove it"
        ) from error
    if not isinstance(manifest, dict):
        raise DamagedReleaseError(
            f"{file}: expected a JSON object, found {type(manifest).__name__}"
        )
    return manifest


@contextlib.contextmanager
def local_release(path: Path | UPath) -> Iterator[Path]:
    """Yield a local folder with the release's files: `path` itself, or a temporary download.

    Readers that need local files, such as the exports, use it; a remote
    release is downloaded whole, so it needs that much local disk space.
    """
    folder = objstore.location(path)
    if not isinstance(folder, UPath):
        yield folder
        return
    with objstore.local_copy(folder, "corpusforge-release-") as local:
        yield local


@dataclass(frozen=True)
class ReleaseCheck:
    """Outcome of `check_release`: one message per problem, and the files left unchecked."""

    problems: list[str]
    # Files that a manifest without `files` has no checksum for, relative to the release.
    unchecked: list[str]
    # Entries of the manifest's `files` that were compared; 0 without `files`.
    checked_files: int


def verify_release(path: Path | UPath) -> list[str]:
    """Check a release's files against its manifest; return one message per problem found.

    See `check_release`, which also returns the files it could not check.
    """
    return check_release(path).problems


def check_release(path: Path | UPath) -> ReleaseCheck:
    """Recompute the size and sha256 of every file that a release's manifest lists.

    The manifest lists the shards under `shards`, and every other file (the card
    README.md, plan.json, quarantine/ and validation/) under `files`. Files that
    are missing or changed, files that the manifest does not list, and a content
    fingerprint that does not match are problems. A manifest without `files`,
    written by a corpusforge version before those checksums, gets the shard
    checks only: its other files are returned in `unchecked`, and only Parquet
    files under data/ that it does not list are problems.
    Raise DamagedReleaseError when manifest.json is missing or invalid.
    """
    folder = objstore.location(path)
    manifest = load_manifest(folder)
    present = set(folder_files(folder))
    problems: list[str] = []

    shards = _manifest_entries(manifest, "shards", problems)
    listed = {entry["path"] for entry in shards} | {"manifest.json"}
    _check_entries(folder, shards, present, problems)
    unchecked = []
    if "files" in manifest:
        files = _manifest_entries(manifest, "files", problems)
        listed |= {entry["path"] for entry in files}
        _check_entries(folder, files, present, problems)
        for relative in sorted(present - listed):
            problems.append(f"{relative}: not listed in the manifest")
    else:
        files = []
        for relative in sorted(present - listed):
            if relative.startswith("data/") and relative.endswith(".parquet"):
                problems.append(f"{relative}: not listed in the manifest")
            else:
                unchecked.append(relative)

    if content_fingerprint(manifest) != manifest.get("content_fingerprint"):
        problems.append("manifest.json: content_fingerprint does not match the manifest's content")
    return ReleaseCheck(problems=problems, unchecked=unchecked, checked_files=len(files))


def _manifest_entries(
    manifest: dict[str, Any], field: str, problems: list[str]
) -> list[dict[str, Any]]:
    """Return the entries of `manifest[field]` that have a path, bytes and sha256.

    Each invalid entry, or an invalid field, adds a problem.
    """
    entries = manifest.get(field)
    if not isinstance(entries, list):
        problems.append(f"manifest.json: field {field} is missing or is not a list")
        return []
    valid = []
    for entry in entries:
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("path"), str)
            and isinstance(entry.get("bytes"), int)
            and isinstance(entry.get("sha256"), str)
        ):
            valid.append(entry)
        else:
            problems.append(
                f"manifest.json: invalid entry in {field}: {entry!r}; expected an object with "
                "path, bytes and sha256"
            )
    return valid


def _check_entries(
    folder: Path | UPath,
    entries: list[dict[str, Any]],
    present: set[str],
    problems: list[str],
) -> None:
    """Compare the size and sha256 of each listed file with its manifest entry.

    Only paths found by listing the release folder are opened, so an entry such
    as `../other/file` is reported missing and never read.
    """
    for entry in entries:
        relative = entry["path"]
        if relative not in present:
            problems.append(f"{relative}: missing")
            continue
        size, actual = size_and_sha256(folder / relative)
        if size != entry["bytes"]:
            problems.append(f"{relative}: size {size} bytes, manifest says {entry['bytes']}")
        if actual != entry["sha256"]:
            problems.append(f"{relative}: sha256 {actual}, manifest says {entry['sha256']}")


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


def staging_progress(staging: str | Path | UPath) -> StagingProgress:
    """Sum the shard statistics written so far under `<staging>/parts/`."""
    done = rows = 0
    seconds = 0.0
    for stats_file in sorted(objstore.location(staging).joinpath("parts").glob("shard-*.json")):
        try:
            stats = json.loads(stats_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # replaced by a retried shard while this loop ran
        done += 1
        rows += int(stats.get("rows", 0))
        seconds += float(stats.get("seconds", 0.0))
    return StagingProgress(done=done, rows=rows, seconds=seconds)
