"""Benchmark an MLLMU-Med build: patients and records per second, and the share of image work.

The phases are the library calls `corpusforge build` makes: plan
(`plan_release`), generation of every shard in one process (`generate_shard`),
and, with `--validate`, the data contract (`validate_staging`). Image work is
the time spent inside the imaging calls the builder makes: phantom drawing,
image decoding, downscaling, test transforms, PNG encoding and perceptual
hashing. Each of those functions is wrapped with a timer before the build
starts; none of them calls another, so the times do not overlap.

Usage:
    .venv/bin/python bench/mllmu_med_bench.py --patients 120 \\
        --out bench/results/mllmu_med-120.json
    .venv/bin/python bench/mllmu_med_bench.py --source vqa_rad:../shared/data/vqa_rad \\
        --source medqa:../shared/data/medqa/medqa_usmle_test_200.jsonl
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("mllmu_med_bench")

# (module, attribute) of every imaging call the MLLMU-Med builder makes.
IMAGE_CALLS = (
    ("corpusforge.generators.imaging.phantom", "draw_phantom"),
    ("corpusforge.generators.imaging.io", "load_image"),
    ("corpusforge.generators.imaging.io", "encode_png"),
    ("corpusforge.generators.imaging.io", "phash"),
    ("corpusforge.generators.mllmu_med.images", "test_transform"),
    ("corpusforge.generators.mllmu_med.images", "downscale"),
)


class ImageTimer:
    """Seconds spent in the wrapped imaging calls and their counts, per call name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, module_name: str, attribute: str) -> None:
        module = importlib.import_module(module_name)
        original = getattr(module, attribute)
        name = f"{module_name.rsplit('.', 1)[-1]}.{attribute}"

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                self.calls[name] = self.calls.get(name, 0) + 1

        setattr(module, attribute, timed)

    def total(self) -> float:
        return sum(self.seconds.values())


def run(sources: list[str] | None, patients: int, validate: bool, root: Path) -> dict[str, Any]:
    from corpusforge.generators.mllmu_med import images, planner  # noqa: F401 (wrapped below)
    from corpusforge.generators.pipeline import (
        BuildParams,
        RunInfo,
        generate_shard,
        load_plan,
        plan_release,
    )

    timer = ImageTimer()
    for module_name, attribute in IMAGE_CALLS:
        timer.wrap(module_name, attribute)
    sources = sources or [f"phantom:?patients={patients}", "embedded_dicom:", "facts:"]

    started = time.perf_counter()
    staging = plan_release(
        BuildParams(
            dataset="mllmu_med", release="bench", seed=1, output_root=str(root), sources=sources
        ),
        RunInfo(run_id="bench", started_at="2026-01-01T00:00:00+00:00"),
    )
    plan_seconds = time.perf_counter() - started
    plan_image_seconds = timer.total()

    plan = load_plan(staging, with_units=True)
    patient_ids = {
        unit["patient"]["patient_id"]
        for shard in plan["shards"]
        for unit in shard["units"]
        if "patient" in unit
    }
    started = time.perf_counter()
    rows = 0
    for index in range(len(plan["shards"])):
        rows += generate_shard(staging, index)["rows"]
    generate_seconds = time.perf_counter() - started
    generate_image_seconds = timer.total() - plan_image_seconds

    result: dict[str, Any] = {
        "sources": sources,
        "patients": len(patient_ids),
        "rows": rows,
        "shards": len(plan["shards"]),
        "plan_seconds": round(plan_seconds, 3),
        "generate_seconds": round(generate_seconds, 3),
        "patients_per_second": round(len(patient_ids) / (plan_seconds + generate_seconds), 2),
        "rows_per_second_generate": round(rows / generate_seconds, 1),
        "image_seconds": {name: round(value, 3) for name, value in sorted(timer.seconds.items())},
        "image_calls": dict(sorted(timer.calls.items())),
        "image_share_plan": round(plan_image_seconds / plan_seconds, 3),
        "image_share_generate": round(generate_image_seconds / generate_seconds, 3),
        "image_share_plan_and_generate": round(
            timer.total() / (plan_seconds + generate_seconds), 3
        ),
    }
    if validate:
        from corpusforge.data_contracts import validate_staging

        started = time.perf_counter()
        validate_staging(staging)
        result["validate_seconds"] = round(time.perf_counter() - started, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=120, help="phantom patients (default 120)")
    parser.add_argument("--source", action="append", dest="sources", help="sources instead")
    parser.add_argument("--validate", action="store_true", help="also time the data contract")
    parser.add_argument("--out", type=Path, help="write the JSON result here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="mllmu-med-bench-") as folder:
        result = run(args.sources, args.patients, args.validate, Path(folder))
    result["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "pillow": importlib.metadata.version("pillow"),
        "numpy": importlib.metadata.version("numpy"),
        "pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
