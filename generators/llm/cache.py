"""Persistent cache of endpoint replies, shared by every worker through fsspec.

An entry is keyed by sha256 over (endpoint URL, API path, request body, sample
index). So a rerun or backfill of the same release sends no request twice,
while sample index k + 1 of the same request is a different entry and gets a
new sample. Entries are JSON files under `<cache>/responses/<first 2 hex>/`,
written under a temporary name and then moved into place. On a local file
system the move is a `rename(2)`, so a reader never sees half an entry. On an
object store the upload of the final name is itself atomic.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def cache_key(endpoint: str, path: str, body: dict[str, Any], sample: int) -> str:
    """Return the hex sha256 that names one request's entry."""
    canonical = json.dumps(
        {"endpoint": endpoint, "path": path, "body": body, "sample": sample},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


class ResponseCache:
    """Reply JSON by cache key, stored at an fsspec URL such as a local folder or `s3://...`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)
        # A local cache is written with os calls: fsspec's wrappers and a makedirs
        # per entry cost more CPU than the write itself, once per reply.
        self.local = isinstance(self.fs, LocalFileSystem)
        self._folders: set[str] = set()

    def _path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def entry_path(self, key: str) -> str:
        return self._path("responses", key[:2], f"{key}.json")

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the cached reply for `key`, or None when there is none or it is unreadable."""
        path = self.entry_path(key)
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        try:
            entry = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            log.warning("ignoring unreadable cache entry %s: %s", path, error)
            return None
        if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
            log.warning("ignoring cache entry %s written in another format", path)
            return None
        return entry.get("response")

    def put(self, key: str, response: dict[str, Any], *, path: str, sample: int) -> None:
        """Store one reply under `key`, replacing any earlier entry in one step."""
        entry = {"format": CACHE_FORMAT, "path": path, "sample": sample, "response": response}
        # ensure_ascii keeps lone surrogates in replies as \\udXXX escapes instead of failing.
        data = json.dumps(entry, ensure_ascii=True, sort_keys=True).encode("ascii")
        if self.local:
            self._write_local(self.entry_path(key), data)
        else:
            self.write_atomic(self.entry_path(key), data)

    def _write_local(self, path: str, data: bytes) -> None:
        """Write `data` to the local file `path` through a temporary file and `os.replace`."""
        folder = os.path.dirname(path)
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            try:
                file = open(tmp, "wb")  # noqa: SIM115 - closed below, before the rename
            except FileNotFoundError:
                # The folder was removed since this cache created it.
                os.makedirs(folder, exist_ok=True)
                file = open(tmp, "wb")  # noqa: SIM115
            with file:
                file.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def write_atomic(self, path: str, data: bytes) -> None:
        """Write `data` to `path` through a temporary file in the same folder."""
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, path)
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm_file(tmp)
            raise

    def read_json(self, *parts: str) -> dict[str, Any] | None:
        """Return a JSON file under the cache root, or None when it does not exist."""
        try:
            return json.loads(self.fs.cat_file(self._path(*parts)))
        except FileNotFoundError:
            return None

    def write_json(self, data: dict[str, Any], *parts: str) -> None:
        self.write_atomic(self._path(*parts), json.dumps(data, sort_keys=True).encode())

    def delete(self, *parts: str) -> None:
        path = self._path(*parts)
        if self.fs.exists(path):
            self.fs.rm_file(path)
