"""Builders of Med-MIM test inputs and releases, run with the same library calls as the DAG."""

from __future__ import annotations

import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from corpusforge.generators.med_mim.facts import ImageFacts
from corpusforge.generators.pipeline import (
    BuildParams,
    RunInfo,
    generate_shard,
    load_plan,
    plan_release,
)
from corpusforge.generators.publish import PublishedRelease, publish_release

ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"
CSV_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position"
)
SMALL_OPTIONS = {"records": 48, "heldin_records": 16, "heldout_records": 16}
SMALL_SOURCES = ["phantom_series:?patients=10&size=96", "embedded_dicom:"]


def require_shared(request, *parts: str) -> Path:
    """Call `require_shared` of tests/conftest.py, found through pytest's plugin manager.

    `from conftest import require_shared` can import another folder's conftest.py
    when several test folders are collected together.
    """
    conftest = request.config.pluginmanager.get_plugin(str(ROOT_CONFTEST))
    return conftest.require_shared(*parts)


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text(CSV_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def stage(
    root: Path,
    release: str = "r1",
    sources: list[str] | None = None,
    options: dict[str, Any] | None = None,
    shard_size: int = 64,
    seed: int = 11,
    order: str = "sequential",
    workers: int = 1,
) -> Path:
    """Plan and generate every shard of a Med-MIM release; return the staging folder."""
    staging = plan_release(
        BuildParams(
            dataset="med_mim",
            release=release,
            seed=seed,
            output_root=str(root),
            sources=sources or SMALL_SOURCES,
            shard_size=shard_size,
            options={**SMALL_OPTIONS, **(options or {})},
        ),
        RunInfo(run_id="test-run", started_at="2026-01-01T00:00:00+00:00"),
    )
    indices = list(range(len(load_plan(staging)["shards"])))
    if order == "reverse":
        indices.reverse()
    elif order == "shuffled":
        random.Random(5).shuffle(indices)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(generate_shard, [staging] * len(indices), indices))
    else:
        for index in indices:
            generate_shard(staging, index)
    return staging


def build(root: Path, release: str = "r1", **kwargs: Any) -> PublishedRelease:
    """Stage, validate and publish a Med-MIM release."""
    from corpusforge.data_contracts import validate_staging

    staging = stage(root, release, **kwargs)
    validate_staging(staging)
    return publish_release(staging)


def nih_image(
    position: int, findings: tuple[str, ...], patient: str = "nih_cxr14:1", **fields: Any
) -> ImageFacts:
    """Return the facts of a ChestX-ray14 visit for template tests."""
    values = {
        "follow_up": position * 2,
        "age": 60 + position,
        "view": "PA",
        "modality": "X-ray",
        "region": "chest",
        **fields,
    }
    return ImageFacts(
        key=f"0:{patient}/{position}",
        source=0,
        source_format="nih_cxr14",
        locator={"kind": "file", "path": "unused"},
        patient=patient,
        source_image=f"{position}.png",
        visit=position + 1,
        findings=findings,
        **values,
    )


def phantom_image(
    position: int, findings: tuple[str, ...], count: int, largest: float, **fields: Any
) -> ImageFacts:
    """Return the facts of a phantom visit for template tests."""
    values = {"modality": "CT", "region": "chest", "plane": "axial", **fields}
    return ImageFacts(
        key=f"0:phantom/0/{position}",
        source=0,
        source_format="phantom_series",
        locator={"kind": "phantom", "patient": 0, "visit": position},
        patient="phantom_series:0:0",
        source_image=f"phantom/0/{position}",
        visit=position + 1,
        follow_up=position,
        age=50 + position,
        findings=findings,
        lesion_count=count,
        largest_lesion_mm=largest,
        **values,
    )
