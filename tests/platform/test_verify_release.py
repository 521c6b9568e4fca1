"""Checksums of every published file: the manifest's `files`, `verify`, and the summary's paths."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import fsspec
import pytest
from release_helpers import build, stage
from upath import UPath

from corpusforge.generators import objstore, store
from corpusforge.generators.manifest import content_fingerprint
from corpusforge.generators.pipeline import local_staging
from corpusforge.generators.publish import publish_release
from corpusforge.main import main

# A file name with accents, so that the card (which names each source) has non-ASCII text.
BAD_SOURCE_NAME = "problèmes_ü_test.jsonl"
QUARANTINE_FILE = "quarantine/shard-00000.jsonl"


def _sources(folder: Path) -> list[str]:
    """Return a source of good records and one whose only record is quarantined."""
    bad = folder / BAD_SOURCE_NAME
    bad.write_text('{"question": "What is 2+2?", "answer": "I do not know."}\n', encoding="utf-8")
    return ["synthetic_math:?count=5", f"gsm8k:{bad}?split=test"]


def _manifest(release: Path) -> dict:
    return json.loads((release / "manifest.json").read_text(encoding="utf-8"))


def _write_manifest(release: Path, manifest: dict) -> None:
    (release / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """Return the output root of one published StepHint release `r1` with a quarantined record."""
    folder = tmp_path_factory.mktemp("verify")
    root = folder / "out"
    build(root, "r1", sources=_sources(folder))
    return root


@pytest.fixture
def release(published: Path, tmp_path: Path) -> Path:
    """Return a copy of the published release that a test may change."""
    root = tmp_path / "out"
    shutil.copytree(published, root, symlinks=True)
    return root / "stephint" / "r1"


def test_manifest_lists_every_other_file(release: Path):
    manifest = _manifest(release)
    on_disk = {
        file.relative_to(release).as_posix() for file in release.rglob("*") if file.is_file()
    }
    shards = {shard["path"] for shard in manifest["shards"]}
    listed = {entry["path"] for entry in manifest["files"]}

    assert listed == on_disk - shards - {"manifest.json"}
    assert {"README.md", "plan.json", "validation/summary.json", QUARANTINE_FILE} <= listed
    for entry in manifest["files"]:
        assert entry["bytes"] == (release / entry["path"]).stat().st_size, entry["path"]
    assert store.verify_release(release) == []


def test_files_stay_out_of_fingerprint(release: Path):
    manifest = _manifest(release)
    without_files = {key: value for key, value in manifest.items() if key != "files"}

    assert content_fingerprint(manifest) == manifest["content_fingerprint"]
    assert content_fingerprint(without_files) == manifest["content_fingerprint"]


def test_summary_names_published_shards(release: Path, published: Path):
    text = (release / "validation" / "summary.json").read_text(encoding="utf-8")
    summary = json.loads(text)
    manifest = _manifest(release)

    files = [shard["file"] for shard in summary["shards"] if shard["file"] is not None]
    assert sorted(files) == sorted(shard["path"] for shard in manifest["shards"])
    for shard in summary["shards"]:
        for result in shard["gx_results"]:
            assert (release / result).is_file(), result
    assert "parts/" not in text
    assert str(published) not in text
    assert str(release.parent.parent.parent) not in text


def test_summary_keeps_empty_shard_without_file(release: Path):
    summary = json.loads((release / "validation" / "summary.json").read_text(encoding="utf-8"))
    empty = [shard for shard in summary["shards"] if shard["rows"] == 0]

    assert len(empty) == 1
    assert empty[0]["file"] is None
    assert summary["success"] is True


def test_card_with_unicode_verifies(release: Path):
    card = (release / "README.md").read_bytes()
    entry = next(item for item in _manifest(release)["files"] if item["path"] == "README.md")

    assert BAD_SOURCE_NAME.encode("utf-8") in card
    assert entry["bytes"] == len(card)
    assert store.verify_release(release) == []


def test_tampered_card_detected(release: Path):
    card = release / "README.md"
    text = card.read_text(encoding="utf-8")
    # "è" has as many UTF-8 bytes as "é", so only the sha256 can show the change.
    card.write_text(text.replace("è", "é", 1), encoding="utf-8")

    problems = store.verify_release(release)
    assert len(problems) == 1
    assert problems[0].startswith("README.md: sha256 ")


def test_deleted_quarantine_file_detected(release: Path):
    (release / QUARANTINE_FILE).unlink()

    assert store.verify_release(release) == [f"{QUARANTINE_FILE}: missing"]


def test_changed_summary_size_detected(release: Path):
    summary = release / "validation" / "summary.json"
    summary.write_text(summary.read_text(encoding="utf-8") + " ", encoding="utf-8")

    problems = store.verify_release(release)
    assert len(problems) == 2
    assert problems[0].startswith("validation/summary.json: size ")
    assert problems[1].startswith("validation/summary.json: sha256 ")


@pytest.mark.parametrize(
    "extra", ["notes.txt", "validation/extra.json", "quarantine/shard-00099.jsonl", "parts/x"]
)
def test_extra_file_detected(release: Path, extra: str):
    (release / extra).parent.mkdir(parents=True, exist_ok=True)
    (release / extra).write_text("{}\n", encoding="utf-8")

    assert store.verify_release(release) == [f"{extra}: not listed in the manifest"]


def test_manifest_without_files_checks_shards_only(release: Path):
    manifest = _manifest(release)
    del manifest["files"]
    _write_manifest(release, manifest)
    card = release / "README.md"
    card.write_text(card.read_text(encoding="utf-8") + "changed\n", encoding="utf-8")

    check = store.check_release(release)
    assert check.problems == []
    assert check.checked_files == 0
    assert "README.md" in check.unchecked
    assert QUARANTINE_FILE in check.unchecked
    assert "validation/summary.json" in check.unchecked
    assert not any(path.startswith("data/") for path in check.unchecked)


def test_manifest_without_files_still_checks_shards(release: Path):
    manifest = _manifest(release)
    del manifest["files"]
    _write_manifest(release, manifest)
    (release / "data" / "chains" / "train-00009-of-00009.parquet").write_bytes(b"PAR1")
    shard = release / manifest["shards"][0]["path"]
    shard.unlink()

    problems = store.verify_release(release)
    assert problems == [
        f"{manifest['shards'][0]['path']}: missing",
        "data/chains/train-00009-of-00009.parquet: not listed in the manifest",
    ]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (None, "manifest.json: field files is missing or is not a list"),
        ({"README.md": "x"}, "manifest.json: field files is missing or is not a list"),
        ([{"path": "README.md", "bytes": 1}], "manifest.json: invalid entry in files"),
        ([{"path": "../../outside.txt", "bytes": 1, "sha256": "0" * 64}], "../../outside.txt"),
    ],
)
def test_invalid_files_field_reported(release: Path, files, expected: str):
    manifest = _manifest(release)
    manifest["files"] = files
    _write_manifest(release, manifest)
    (release.parent.parent / "outside.txt").write_text("x", encoding="utf-8")

    problems = store.verify_release(release)
    assert any(problem.startswith(expected) for problem in problems), problems
    if "outside" in expected:
        assert f"{expected}: missing" in problems


def test_cli_verify_reports_card(release: Path, capsys):
    root = str(release.parent.parent)
    assert main(["verify", "stephint", "r1", "--output-root", root]) == 0
    output = capsys.readouterr().out
    assert "OK 1 shards and 5 other files of stephint release r1" in output
    assert "NOTE" not in output

    (release / "README.md").write_text("replaced\n", encoding="utf-8")
    assert main(["verify", "stephint", "r1", "--output-root", root]) == 1
    assert "FAILED README.md: size " in capsys.readouterr().out


def test_cli_verify_notes_unchecked_files(release: Path, capsys):
    manifest = _manifest(release)
    del manifest["files"]
    _write_manifest(release, manifest)

    root = str(release.parent.parent)
    assert main(["verify", "stephint", "r1", "--output-root", root]) == 0
    output = capsys.readouterr().out
    assert "NOTE: manifest.json has no checksums of files other than shards" in output
    assert "README.md" in output
    assert "OK 1 shards of stephint release r1" in output


def test_republish_after_interrupt_keeps_summary(tmp_path: Path, monkeypatch):
    """A publish that stops after rewriting the summary publishes the same summary on rerun."""
    from corpusforge.data_contracts import validate_staging
    from corpusforge.generators import publish

    staging = stage(tmp_path, "r1", sources=["synthetic_math:?count=20"])
    validate_staging(staging)

    def stop(*args, **kwargs):
        raise RuntimeError("stopped")

    monkeypatch.setattr(publish, "release_manifest", stop)
    with pytest.raises(RuntimeError, match="stopped"):
        publish_release(staging)
    first = (staging / "validation" / "summary.json").read_text(encoding="utf-8")
    monkeypatch.undo()

    published = publish_release(staging)
    release = Path(published.path)
    assert (release / "validation" / "summary.json").read_text(encoding="utf-8") == first
    assert "parts/" not in first
    assert store.verify_release(release) == []


@pytest.fixture
def memory_root() -> str:
    url = f"memory://cf-verify-{uuid.uuid4().hex[:12]}/out"
    yield url
    fsspec.filesystem("memory").rm(UPath(url).path, recursive=True)


def _build_remote(root: str, folder: Path) -> UPath:
    """Stage, validate and publish `r1` on an object store; return its attempt folder."""
    from corpusforge.data_contracts import validate_staging

    staging = stage(root, "r1", sources=_sources(folder), shard_size=10)
    with local_staging(staging) as local:
        validate_staging(local)
    publish_release(staging)
    return store.release_dir(root, "stephint", "r1")


def test_remote_release_lists_every_object(memory_root: str, tmp_path: Path):
    folder = _build_remote(memory_root, tmp_path)
    manifest = objstore.read_json(folder / "manifest.json")
    shards = {shard["path"] for shard in manifest["shards"]}
    listed = {entry["path"] for entry in manifest["files"]}
    summary = objstore.read_text(folder / "validation" / "summary.json")

    assert listed == set(objstore.files_under(folder)) - shards - {"manifest.json"}
    assert {"README.md", "plan.json", "validation/summary.json", QUARANTINE_FILE} <= listed
    assert "parts/" not in summary
    assert str(tmp_path) not in summary
    assert store.verify_release(folder) == []


def test_remote_release_detects_changes(memory_root: str, tmp_path: Path):
    folder = _build_remote(memory_root, tmp_path)
    card = objstore.read_text(folder / "README.md")
    objstore.write_bytes(folder / "README.md", card.replace("è", "é", 1).encode("utf-8"))
    objstore.remove(folder / QUARANTINE_FILE)
    objstore.write_bytes(folder / "validation" / "extra.json", b"{}\n")

    problems = store.verify_release(folder)
    assert len(problems) == 3
    assert problems[0].startswith("README.md: sha256 ")
    assert problems[1] == f"{QUARANTINE_FILE}: missing"
    assert problems[2] == "validation/extra.json: not listed in the manifest"
