"""Output roots on object stores, addressed by fsspec URLs such as `s3://bucket/prefix`.

A plain path or a `file://` URL is a local root, and the local code handles it
with symbolic links, `rename(2)` and `flock`. Any other URL is a remote root,
read and written through fsspec. fsspec needs the store's driver: `s3fs` for
`s3://` and `gcsfs` for `gs://`, while `memory://` is built in. Credentials
come from the driver's own configuration, such as the AWS variables that s3fs
reads. This module never reads or logs them.

Remote folders are `upath.UPath` objects: `/` joins names, `str()` gives the
URL, `.fs` and `.path` give the fsspec filesystem and its path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from upath import UPath

from corpusforge.generators.errors import ConfigError, PublishError

log = logging.getLogger(__name__)

LOCAL_PROTOCOLS = ("", "file", "local")
# Stores whose single-object writes are atomic: a reader sees the old object or
# the whole new one (S3 PutObject and CompleteMultipartUpload, GCS uploads,
# Azure block blobs, and fsspec's in-process memory store). Writes to other
# stores are read back and compared.
ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})

Location = Path | UPath


def is_remote(root: str | os.PathLike[str] | UPath) -> bool:
    """Return True when `root` is an fsspec URL of a store other than the local file system."""
    if isinstance(root, UPath):
        return root.protocol not in LOCAL_PROTOCOLS
    if isinstance(root, Path):
        return False
    text = os.fspath(root)
    if "://" not in text:
        return False
    return text.split("://", 1)[0].split("::")[-1] not in LOCAL_PROTOCOLS


def location(root: str | os.PathLike[str] | UPath) -> Location:
    """Return `root` as a local Path (also for `file://` URLs) or as a remote UPath."""
    if isinstance(root, UPath):
        return root if is_remote(root) else Path(root.path)
    if isinstance(root, Path):
        return root
    text = os.fspath(root)
    if is_remote(text):
        try:
            folder = UPath(text.rstrip("/"))
            folder.fs  # noqa: B018 - creating the filesystem imports its driver
        except (ImportError, ValueError) as error:
            raise ConfigError(
                f"cannot open {text}: {error}. Install the fsspec driver of this store, "
                "such as `pip install 'corpusforge[s3]'` for s3:// or `[gcs]` for gs:// URLs"
            ) from error
        return folder
    if text.startswith("file://"):
        return Path(UPath(text).path)
    return Path(text)


def read_text(path: UPath) -> str:
    return path.fs.cat_file(path.path).decode("utf-8")


def read_json(path: UPath) -> Any:
    return json.loads(read_text(path))


def write_bytes(path: UPath, data: bytes) -> None:
    """Write one object; on a store without atomic object writes, read it back and compare.

    Raises PublishError when the object read back differs from `data`.
    """
    path.fs.pipe_file(path.path, data)
    if path.protocol in ATOMIC_PUT_PROTOCOLS:
        return
    if path.fs.cat_file(path.path) != data:
        raise PublishError(f"{path}: the object read back differs from what was written")


def write_json(path: UPath, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_bytes(path, text.encode("utf-8"))


def put_file(local: Path, path: UPath) -> None:
    """Upload `local` as the object `path`.

    On S3 and GCS the object appears whole or not at all, also for a multipart
    upload that is killed. On other stores a killed upload can leave a partial
    object, which the sha256 checks of validation and `verify` reject.
    """
    path.fs.put_file(str(local), path.path)


def _forget_listings(path: UPath) -> None:
    """Drop cached listings of `path`, which objects written by other processes make stale."""
    path.fs.invalidate_cache(path.path)


def exists(path: UPath) -> bool:
    _forget_listings(path)
    return bool(path.fs.exists(path.path))


def remove(path: UPath, recursive: bool = False) -> None:
    """Remove an object, or everything under a folder with `recursive`; a missing one is fine."""
    with contextlib.suppress(FileNotFoundError):
        path.fs.rm(path.path, recursive=recursive)


def size(path: UPath) -> int:
    _forget_listings(path)
    return int(path.fs.info(path.path)["size"])


def sha256(path: UPath) -> str:
    """Return the sha256 of an object, streamed in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.fs.open(path.path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_under(folder: UPath) -> list[str]:
    """Return the paths of every object under `folder`, relative to it, sorted."""
    _forget_listings(folder)
    base = folder.path.rstrip("/")
    found = folder.fs.find(base)
    return sorted(item[len(base) + 1 :] for item in found if item.startswith(base + "/"))


def children(folder: UPath) -> list[tuple[str, str]]:
    """Return (name, type) of the direct entries of `folder`; type is 'file' or 'directory'."""
    _forget_listings(folder)
    try:
        entries = folder.fs.ls(folder.path, detail=True)
    except FileNotFoundError:
        return []
    result = []
    for entry in entries:
        name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        result.append((name, entry.get("type", "file")))
    return sorted(result)


def download(folder: UPath, target: Path, skip: tuple[str, ...] = ()) -> None:
    """Copy every object under `folder` into the local folder `target`, except top-level `skip`."""
    for relative in files_under(folder):
        if relative.split("/", 1)[0] in skip:
            continue
        local = target / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        folder.fs.get_file(f"{folder.path.rstrip('/')}/{relative}", str(local))


def upload(source: Path, folder: UPath) -> None:
    """Upload every file under the local folder `source` to the same names under `folder`."""
    for local in sorted(source.rglob("*")):
        if local.is_file():
            put_file(local, folder / local.relative_to(source).as_posix())


@contextlib.contextmanager
def local_copy(folder: UPath, prefix: str, skip: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temporary local copy of `folder`; the copy is deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        target = Path(tmp) / folder.name
        target.mkdir()
        download(folder, target, skip)
        yield target
