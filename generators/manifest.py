"""Build `manifest.json` and its content fingerprint."""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from upath import UPath

from corpusforge.generators import __version__, objstore
from corpusforge.generators.shard_writer import file_sha256
from corpusforge.schemas import SCHEMAS, schema_fingerprint

MANIFEST_VERSION = 1
PACKAGES = (
    "apache-airflow",
    "great-expectations",
    "faker",
    "pyarrow",
    "pandas",
    "numpy",
    "math-verify",
    "pydicom",
    "nibabel",
    "pillow",
)

# Keys that change from run to run or from machine to machine, removed before
# the content fingerprint is computed. Paths name nested keys.
VOLATILE_KEYS = (
    ("created_at",),
    ("code_revision",),
    ("packages",),
    ("python",),
    ("run",),
    ("attempt",),
    ("output_root",),
    ("durations",),
    ("validation", "seconds"),
    ("parameters", "sources"),
    # Language-model usage drops to 0 requests when a rerun is served from the cache,
    # and the cache location and connection id do not change the rows.
    ("llm",),
    ("parameters", "options", "llm", "cache"),
    ("parameters", "options", "llm", "conn_id"),
    # Checksums of the card, plan.json, quarantine/ and validation/: plan.json
    # contains the run's times and the output root, and the validation summary its
    # duration, so these differ between runs of the same parameters.
    ("files",),
)
# Top-level entries of a staging folder that get no entry in the manifest's
# `files`: the manifest itself, and `parts/`, which publishing removes right
# after writing the manifest.
UNLISTED_ENTRIES = ("manifest.json", "parts")


def package_versions() -> dict[str, str]:
    versions = {"corpusforge": __version__}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def code_revision() -> str:
    """Return the git commit of the code, with '+dirty' for uncommitted changes, or 'unknown'."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_fingerprint(manifest: dict[str, Any]) -> str:
    """Return sha256 over the manifest's canonical JSON without its volatile keys.

    Two builds with the same parameters, sources and code give the same value on
    any machine; resolved source paths, times and package versions stay out.
    """
    stable = copy.deepcopy(manifest)
    stable.pop("content_fingerprint", None)
    for path in VOLATILE_KEYS:
        node = stable
        for key in path[:-1]:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(path[-1], None)
    for source in stable.get("sources", []):
        source.pop("path", None)
        source.pop("spec", None)
    return hashlib.sha256(canonical_json(stable)).hexdigest()


def folder_files(folder: Path | UPath) -> list[str]:
    """Return the path of every file under `folder`, relative to it with `/` separators, sorted."""
    if isinstance(folder, UPath):
        return objstore.files_under(folder)
    files = [file.relative_to(folder).as_posix() for file in folder.rglob("*") if file.is_file()]
    return sorted(files)


def size_and_sha256(file: Path | UPath) -> tuple[int, str]:
    """Return the size in bytes and the sha256 of a local file or a stored object."""
    if isinstance(file, UPath):
        return objstore.size(file), objstore.sha256(file)
    return file.stat().st_size, file_sha256(file)


def release_files(folder: Path | UPath, shards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the path, bytes and sha256 of every file in a release folder but its shards.

    Paths are relative to `folder`, sorted. The shards (checksummed in
    `shards`), manifest.json and `parts/` are left out. A folder on an object
    store is read object by object, streaming each one once.
    """
    shard_paths = {shard["path"] for shard in shards}
    entries = []
    for relative in folder_files(folder):
        if relative.split("/", 1)[0] in UNLISTED_ENTRIES or relative in shard_paths:
            continue
        size, digest = size_and_sha256(folder / relative)
        entries.append({"path": relative, "bytes": size, "sha256": digest})
    return entries


def build_manifest(
    plan: dict[str, Any],
    shards: list[dict[str, Any]],
    quarantined: dict[str, int],
    validation: dict[str, Any],
    created_at: str,
    llm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the manifest of a release from its plan, final shards and validation.

    `llm` is the release's language-model usage (`usage.merge_usage`), stored as
    `manifest["llm"]` when the release used a model backend.
    """
    dataset = plan["dataset"]
    splits: dict[str, dict[str, int]] = {}
    for shard in shards:
        config_splits = splits.setdefault(shard["config"], {})
        config_splits[shard["split"]] = config_splits.get(shard["split"], 0) + shard["rows"]
    empty_splits = sorted(
        {(task["config"], task["split"]) for task in plan["shards"]}
        - {(shard["config"], shard["split"]) for shard in shards}
    )
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "dataset": dataset,
        "release": plan["release"],
        "seed": plan["seed"],
        "reference_date": plan["reference_date"],
        "parameters": plan["parameters"],
        "schema": {"version": SCHEMAS[dataset][0], "fingerprint": schema_fingerprint(dataset)},
        "contract": {
            "id": validation["contract"]["id"],
            "version": validation["contract"]["version"],
            "odcs_api_version": validation["contract"].get("apiVersion"),
        },
        "sources": [
            {key: source[key] for key in ("spec", "format", "name", "options", "sha256", "path")}
            for source in plan["sources"]
        ],
        "shards": shards,
        "splits": splits,
        "empty_splits": [{"config": config, "split": split} for config, split in empty_splits],
        "num_rows": sum(shard["rows"] for shard in shards),
        "quarantine": {
            "total": sum(quarantined.values()),
            "by_reason": dict(sorted(quarantined.items())),
        },
        "validation": {
            "success": validation.get("success"),
            "summary": "validation/summary.json",
            "seconds": validation.get("seconds"),
        },
        "generator_version": __version__,
        "packages": package_versions(),
        "python": platform.python_version(),
        "code_revision": code_revision(),
        "created_at": created_at,
        "run": plan["run"],
        "attempt": plan["attempt"],
        "output_root": plan["output_root"],
    }
    if llm:
        manifest["llm"] = llm
    manifest["content_fingerprint"] = content_fingerprint(manifest)
    return manifest
