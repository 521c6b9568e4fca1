"""Benchmark a Med-MIM release at a multiple of the embedded default size, phase by phase.

The default (`--scale 10`) builds ten times the embedded default: 10x the
phantom patients and 10x the records of every split, from the same sources.
The phases are the library calls that `corpusforge build` makes: plan
(`plan_release`, which reads every source and decodes every image), generation
of every shard (`generate_shard`), validation (`validate_staging`) and
publishing (`publish_release`). Each phase runs in a fresh Python process, so
the RSS high-water mark (`ru_maxrss`) of that process belongs to the phase. With
`--workers N > 1` generation runs in a process pool, and its peak is the
largest peak of one worker.

Usage:
    .venv/bin/python bench/med_mim_bench.py --scale 10 --out bench/results/med_mim-10x.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PHASES = ("plan", "generate", "validate", "publish")
# The embedded default of the med_mim builder and its phantom source.
DEFAULT_RECORDS = {"records": 1430, "heldin_records": 200, "heldout_records": 120}
DEFAULT_PATIENTS = 100

log = logging.getLogger("med_mim_bench")


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _generate(staging: Path, workers: int) -> int:
    from concurrent.futures import ProcessPoolExecutor

    from corpusforge.generators.pipeline import generate_shard, load_plan

    indices = range(len(load_plan(staging)["shards"]))
    if workers <= 1:
        return sum(generate_shard(staging, index)["rows"] for index in indices)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return sum(
            result["rows"] for result in pool.map(generate_shard, [staging] * len(indices), indices)
        )


def run_phase(args: argparse.Namespace) -> dict[str, Any]:
    """Run one phase in this process and return its wall time, CPU time, rows and peak RSS."""
    result: dict[str, Any] = {"phase": args.phase}
    cpu_before = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    if args.phase == "plan":
        from corpusforge.generators.pipeline import BuildParams, RunInfo, load_plan, plan_release

        options = {name: value * args.scale for name, value in DEFAULT_RECORDS.items()}
        params = BuildParams(
            dataset="med_mim",
            release="bench",
            seed=args.seed,
            output_root=args.output_root,
            sources=[
                f"phantom_series:?patients={DEFAULT_PATIENTS * args.scale}",
                "embedded_dicom:",
            ],
            shard_size=args.shard_size,
            options=options,
        )
        staging = plan_release(params, RunInfo(run_id="med-mim-bench"))
        result["staging"] = str(staging)
        result["shards"] = len(load_plan(staging)["shards"])
    elif args.phase == "generate":
        result["rows"] = _generate(Path(args.staging), args.workers)
    elif args.phase == "validate":
        from corpusforge.data_contracts import validate_staging

        result["rows"] = validate_staging(args.staging).rows
    else:
        from corpusforge.generators.publish import publish_release

        published = publish_release(args.staging)
        result["rows"] = published.num_rows
        result["splits"] = published.splits
    result["seconds"] = round(time.perf_counter() - started, 3)
    cpu_after = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN)
    result["cpu_seconds"] = round(cpu_after - cpu_before, 3)
    # Linux reports ru_maxrss in kilobytes.
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["workers_peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
    )
    return result


def _spawn(phase: str, args: argparse.Namespace, staging: str | None, log_dir: Path) -> dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--phase",
        phase,
        "--scale",
        str(args.scale),
        "--seed",
        str(args.seed),
        "--shard-size",
        str(args.shard_size),
        "--workers",
        str(args.workers),
        "--output-root",
        args.output_root,
    ]
    if staging:
        command += ["--staging", staging]
    log_path = log_dir / f"{phase}.log"
    started = time.perf_counter()
    with log_path.open("w") as log_file:
        completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=log_file, text=True)
    if completed.returncode != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-40:])
        raise RuntimeError(f"phase {phase} failed; last lines of {log_path}:\n{tail}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(time.perf_counter() - started, 3)
    log.info("%s: %.1f s, peak RSS %.0f MB", phase, result["seconds"], result["peak_rss_mb"])
    return result


def machine() -> dict[str, Any]:
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        # Other processes on the machine slow the phases down.
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=10, help="multiple of the default size")
    parser.add_argument("--seed", type=int, default=20250101)
    parser.add_argument("--shard-size", type=int, default=1000, help="records per shard")
    parser.add_argument("--workers", type=int, default=1, help="processes that generate shards")
    parser.add_argument("--out", type=Path, help="JSON file for the results")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--staging", help=argparse.SUPPRESS)
    parser.add_argument("--output-root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    if args.phase:
        print(json.dumps(run_phase(args)))
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="med-mim-bench-"))
    args.output_root = str(workdir / "published")
    try:
        phases = {"plan": _spawn("plan", args, None, workdir)}
        staging = phases["plan"]["staging"]
        for phase in PHASES[1:]:
            phases[phase] = _spawn(phase, args, staging, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    rows = phases["publish"]["rows"]
    total = sum(phases[phase]["seconds"] for phase in PHASES)
    generation_peak = phases["generate"]["peak_rss_mb"]
    if args.workers > 1:
        generation_peak = phases["generate"]["workers_peak_rss_mb"]
    record = {
        "scale": args.scale,
        "workers": args.workers,
        "shard_size": args.shard_size,
        "rows": rows,
        "splits": phases["publish"]["splits"],
        "shards": phases["plan"]["shards"],
        "records_per_second": {
            "generate": round(rows / phases["generate"]["seconds"], 1),
            "end_to_end": round(rows / total, 1),
        },
        "peak_rss_mb": {
            phase: generation_peak if phase == "generate" else phases[phase]["peak_rss_mb"]
            for phase in PHASES
        },
        "phases": phases,
        "machine": machine(),
    }
    text = json.dumps(record, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
