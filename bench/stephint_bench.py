"""Benchmark a StepHint release built from `synthetic_math:?count=N`, phase by phase.

The phases are the library calls that `corpusforge build` makes: plan
(`plan_release`), generation of every shard (`generate_shard`), validation
(`validate_staging`) and publishing (`publish_release`). Each phase runs in a
fresh Python process, so the RSS high-water mark (`ru_maxrss`) of that process
belongs to the phase alone. With `--workers 1` the phase process generates the
shards itself. With more workers it forks a `ProcessPoolExecutor`, as
`corpusforge build --workers N` does, and the peak is the largest peak of one
worker (`RUSAGE_CHILDREN`).

Each phase process first imports the modules the phase uses (timed as
`import_seconds`), then runs the phase (timed as `seconds`), so library import
time is reported apart from the work. Validation imports Great Expectations,
which takes seconds.

Usage:
    .venv/bin/python bench/stephint_bench.py --records 10000 --workers 1 \\
        --out bench/results/stephint-10k.json
    .venv/bin/python bench/stephint_bench.py --records 100000 --workers 1 \\
        --baseline bench/results/stephint-10k.json --out bench/results/stephint-100k.json

`--baseline` names an earlier result, usually the 10K run, and adds the ratio of
each phase's peak RSS to the baseline's peak to the output.

`--profile-validate FILE` runs the validation phase under cProfile and writes
its statistics to FILE (read them with `python -m pstats FILE`). The profiler
slows the phase down, so its times are not comparable with other runs.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import importlib
import importlib.metadata
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

# Modules each phase process imports before its timer starts.
PHASE_IMPORTS = {
    "plan": ["corpusforge.generators.pipeline", "corpusforge.generators.stephint.builder"],
    "generate": [
        "corpusforge.generators.pipeline",
        "corpusforge.generators.stephint.builder",
        # pyarrow imports pandas on the first `Table.from_pylist`.
        "pandas",
        "pyarrow",
    ],
    "validate": [
        "corpusforge.data_contracts",
        # data_contracts imports Great Expectations on first use.
        "great_expectations",
        "great_expectations.expectations",
    ],
    # publish_release looks up the builder for the dataset card. The StepHint
    # builder imports math-verify and SymPy, and its card statistics read the
    # shards with `pyarrow.parquet.read_table`, which imports pyarrow.dataset and pandas.
    "publish": [
        "corpusforge.generators.publish",
        "corpusforge.generators.stephint.builder",
        "pandas",
        "pyarrow.compute",
        "pyarrow.dataset",
        "pyarrow.parquet",
    ],
}

# Spec targets: validation plus publishing take at most this share of generation
# time, and a phase's peak RSS grows by at most this factor from the baseline run.
MAX_VALIDATE_PUBLISH_SHARE = 0.20
MAX_PEAK_RSS_RATIO = 1.10

# Folders whose code a StepHint build runs, besides the top level of generators/.
STEPHINT_CODE_PREFIXES = ("generators/stephint/", "data_contracts/", "schemas/", "cli/")

PACKAGES = ("math-verify", "sympy", "pyarrow", "pandas", "great-expectations")

log = logging.getLogger("stephint_bench")


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _usage(who: int, cpu_before: float) -> dict[str, float]:
    """Return the peak RSS in MB of `who` and its CPU seconds since `cpu_before`.

    `who` is RUSAGE_SELF or RUSAGE_CHILDREN. The peak covers the whole process,
    imports included, because `ru_maxrss` cannot be reset.
    """
    # Linux reports ru_maxrss in kilobytes.
    return {
        "peak_rss_mb": round(resource.getrusage(who).ru_maxrss / 1024, 1),
        "cpu_seconds": round(_cpu_seconds(who) - cpu_before, 3),
    }


def _run_generation(staging: Path, workers: int) -> int:
    from concurrent.futures import ProcessPoolExecutor

    from corpusforge.generators.pipeline import generate_shard, load_plan

    num_shards = len(load_plan(staging)["shards"])
    rows = 0
    if workers <= 1:
        for index in range(num_shards):
            rows += generate_shard(staging, index)["rows"]
        return rows
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(generate_shard, staging, index) for index in range(num_shards)]
        for future in futures:
            rows += future.result()["rows"]
    return rows


def run_phase(args: argparse.Namespace) -> dict[str, Any]:
    """Run one phase in this process and return its timings and resource use."""
    import_started = time.perf_counter()
    for module in PHASE_IMPORTS[args.phase]:
        importlib.import_module(module)
    import_seconds = time.perf_counter() - import_started

    result: dict[str, Any] = {"phase": args.phase}
    self_cpu_before = _cpu_seconds(resource.RUSAGE_SELF)
    children_cpu_before = _cpu_seconds(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    if args.phase == "plan":
        from corpusforge.generators.pipeline import BuildParams, RunInfo, plan_release

        params = BuildParams(
            dataset="stephint",
            release=args.release,
            seed=args.seed,
            output_root=args.output_root,
            sources=[f"synthetic_math:?count={args.records}"],
            shard_size=args.shard_size,
        )
        staging = plan_release(params, RunInfo(run_id="stephint-bench"))
        result["staging"] = str(staging)
    elif args.phase == "generate":
        result["rows"] = _run_generation(Path(args.staging), args.workers)
    elif args.phase == "validate":
        from corpusforge.data_contracts import validate_staging
        from corpusforge.data_contracts.gx_batches import MAX_BATCH_BYTES, MAX_BATCH_ROWS

        if args.profile_validate:
            profiler = cProfile.Profile()
            report = profiler.runcall(validate_staging, args.staging)
            profiler.dump_stats(args.profile_validate)
        else:
            report = validate_staging(args.staging)
        result["rows"] = report.rows
        result["gx_batch_limits"] = {"max_rows": MAX_BATCH_ROWS, "max_bytes": MAX_BATCH_BYTES}
    else:
        from corpusforge.generators.publish import publish_release

        published = publish_release(args.staging)
        result["rows"] = published.num_rows
        result["content_fingerprint"] = published.content_fingerprint
    result["seconds"] = round(time.perf_counter() - started, 3)
    result["import_seconds"] = round(import_seconds, 3)
    result["self"] = _usage(resource.RUSAGE_SELF, self_cpu_before)
    result["children"] = _usage(resource.RUSAGE_CHILDREN, children_cpu_before)
    return result


def _spawn_phase(phase: str, args: argparse.Namespace, extra: list[str], log_dir: Path) -> dict:
    """Run `phase` in a new Python process and return its result with the process wall time."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--phase",
        phase,
        "--records",
        str(args.records),
        "--workers",
        str(args.workers),
        "--shard-size",
        str(args.shard_size),
        "--seed",
        str(args.seed),
        "--release",
        args.release,
        *extra,
    ]
    if phase == "validate" and args.profile_validate:
        command += ["--profile-validate", str(args.profile_validate)]
    log_path = log_dir / f"{phase}.log"
    started = time.perf_counter()
    with log_path.open("w") as log_file:
        completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=log_file, text=True)
    process_seconds = time.perf_counter() - started
    if completed.returncode != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-40:])
        raise RuntimeError(
            f"phase {phase} failed with exit code {completed.returncode}; "
            f"last lines of {log_path}:\n{tail}"
        )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(process_seconds, 3)
    log.info(
        "%s: %.1f s (imports %.1f s, process %.1f s)",
        phase,
        result["seconds"],
        result["import_seconds"],
        process_seconds,
    )
    return result


def _peak_rss_mb(phase: str, result: dict[str, Any], workers: int) -> float:
    """Return the peak RSS of the process that does the phase's work."""
    if phase == "generate" and workers > 1:
        return result["children"]["peak_rss_mb"]
    return result["self"]["peak_rss_mb"]


def machine_info() -> dict[str, Any]:
    """Return the CPU count, CPU model, RAM and versions of the machine running the benchmark."""
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total_kb = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_total_kb = int(line.split()[1])
                break
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = "not installed"
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "ram_gib": round(mem_total_kb / 1024**2, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
        # Other processes on the machine slow the phases down.
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        # Without bytecode caches every fresh process compiles its imports from source.
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
    }


def code_state() -> dict[str, Any]:
    """Return the git commit of the benchmarked code and the changed files a StepHint build runs.

    Files of the other datasets are left out of `changed_files`.
    """
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        command = ["git", "-C", str(root), *args]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=all").splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "changed_files": []}
    changed = []
    for line in status:
        path = line[3:]
        top_level_generator = path.startswith("generators/") and path.count("/") == 1
        if top_level_generator or path.startswith(STEPHINT_CODE_PREFIXES):
            changed.append(path)
    return {"commit": commit, "changed_files": changed}


def summarize(
    args: argparse.Namespace, phases: dict[str, dict[str, Any]], baseline: dict[str, Any] | None
) -> dict[str, Any]:
    """Return the benchmark record: per-phase figures, rates, shares and target checks."""
    generate = phases["generate"]
    generation_seconds = generate["seconds"]
    generation_cpu = generate["self"]["cpu_seconds"] + generate["children"]["cpu_seconds"]
    validate_publish_seconds = phases["validate"]["seconds"] + phases["publish"]["seconds"]
    validate_publish_process_seconds = (
        phases["validate"]["process_seconds"] + phases["publish"]["process_seconds"]
    )
    share = validate_publish_seconds / generation_seconds
    share_with_imports = validate_publish_process_seconds / generate["process_seconds"]
    # CPU seconds change less than wall time when other processes load the machine.
    validate_publish_cpu = sum(
        phases[phase][who]["cpu_seconds"]
        for phase in ("validate", "publish")
        for who in ("self", "children")
    )
    share_cpu = validate_publish_cpu / generation_cpu

    phase_figures = {}
    for phase in PHASES:
        result = phases[phase]
        phase_figures[phase] = {
            "seconds": result["seconds"],
            "import_seconds": result["import_seconds"],
            "process_seconds": result["process_seconds"],
            "peak_rss_mb": _peak_rss_mb(phase, result, args.workers),
            "self": result["self"],
            "children": result["children"],
        }

    targets: dict[str, Any] = {
        "validate_publish_share": {
            "limit": MAX_VALIDATE_PUBLISH_SHARE,
            "measured": round(share, 4),
            "met": share <= MAX_VALIDATE_PUBLISH_SHARE,
        },
        "validate_publish_share_with_imports": {
            "limit": MAX_VALIDATE_PUBLISH_SHARE,
            "measured": round(share_with_imports, 4),
            "met": share_with_imports <= MAX_VALIDATE_PUBLISH_SHARE,
        },
        "validate_publish_share_cpu": {
            "limit": MAX_VALIDATE_PUBLISH_SHARE,
            "measured": round(share_cpu, 4),
            "met": share_cpu <= MAX_VALIDATE_PUBLISH_SHARE,
        },
    }
    if baseline is not None:
        ratios = {}
        for phase in PHASES:
            base_peak = baseline["phases"][phase]["peak_rss_mb"]
            ratio = phase_figures[phase]["peak_rss_mb"] / base_peak
            ratios[phase] = {
                "baseline_records": baseline["records"],
                "baseline_peak_rss_mb": base_peak,
                "peak_rss_mb": phase_figures[phase]["peak_rss_mb"],
                "ratio": round(ratio, 3),
                "met": ratio <= MAX_PEAK_RSS_RATIO,
            }
        targets["peak_rss_vs_baseline"] = {"limit": MAX_PEAK_RSS_RATIO, "phases": ratios}

    return {
        "benchmark": "stephint",
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/stephint_bench.py", *sys.argv[1:]]),
        "source": f"synthetic_math:?count={args.records}",
        "records": args.records,
        "rows": phases["publish"]["rows"],
        "content_fingerprint": phases["publish"]["content_fingerprint"],
        "workers": args.workers,
        "shard_size": args.shard_size,
        "seed": args.seed,
        "release": args.release,
        "machine": machine_info(),
        "code": code_state(),
        "phases": phase_figures,
        "generation": {
            "records_per_second": round(args.records / generation_seconds, 1),
            "records_per_second_per_core": round(
                args.records / generation_seconds / args.workers, 1
            ),
            "records_per_cpu_second": round(args.records / generation_cpu, 1),
        },
        "gx_batch_limits": phases["validate"].get("gx_batch_limits"),
        "validate_publish_share": round(share, 4),
        "validate_publish_share_with_imports": round(share_with_imports, 4),
        "validate_publish_share_cpu": round(share_cpu, 4),
        "targets": targets,
    }


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
    load_at_start = round(os.getloadavg()[0], 2)
    work_dir = Path(tempfile.mkdtemp(prefix="stephint-bench-", dir=args.tmp_dir))
    output_root = work_dir / "published"
    log.info("building %d records into %s", args.records, output_root)
    try:
        phases = {"plan": _spawn_phase("plan", args, ["--output-root", str(output_root)], work_dir)}
        staging = ["--staging", phases["plan"]["staging"]]
        for phase in PHASES[1:]:
            phases[phase] = _spawn_phase(phase, args, staging, work_dir)
    finally:
        if args.keep:
            log.info("kept %s", work_dir)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    result = summarize(args, phases, baseline)
    result["machine"]["load_average_1min_at_start"] = load_at_start
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000, help="synthetic source records")
    parser.add_argument("--workers", type=int, default=1, help="processes that generate shards")
    parser.add_argument("--shard-size", type=int, default=1000, help="source records per shard")
    parser.add_argument("--seed", type=int, default=1, help="release seed")
    parser.add_argument("--release", default="bench", help="release key")
    parser.add_argument("--out", type=Path, help="write the JSON result to this file")
    parser.add_argument(
        "--baseline", type=Path, help="earlier result whose peak RSS the targets compare against"
    )
    parser.add_argument(
        "--tmp-dir", help="folder for the temporary output root (default: the system temp folder)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary output root after the run"
    )
    parser.add_argument(
        "--profile-validate",
        type=Path,
        help="run validation under cProfile and write its statistics to this file",
    )
    # Internal: run one phase in this process and print its result as one JSON line.
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--output-root", help=argparse.SUPPRESS)
    parser.add_argument("--staging", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.phase else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.records < 1 or args.workers < 1:
        raise SystemExit("--records and --workers must be at least 1")
    if args.phase:
        print(json.dumps(run_phase(args)))
        return 0

    result = run_benchmark(args)
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        log.info("wrote %s", args.out)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
