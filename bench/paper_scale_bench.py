"""Build Med-MIM, StepHint and MLLMU-Med at paper scale, through the library and through Airflow.

Paper scale means 83.2K Med-MIM question-answer pairs, 46K StepHint chains and
the MLLMU-Med embedded default (120 patients, about 11.6K rows), all with the
offline backends. `PAPER_SCALE` contains the parameters, which are both the
library's build parameters and the Airflow DAG Params. The library builds also
get the language-model settings that the DAG Params default to, so both builds
have the same parameters, release key and seed, and should have the same
content fingerprint.

Parts (`--part`, repeatable; results merge into one JSON file):

- `library`: the baseline. Per dataset, plan once, generate every shard with
  one worker, then again with two (the second pass rewrites the same parts,
  and the script checks that both passes wrote the same bytes), validate and
  publish. Every phase runs in processes of a `ProcessPoolExecutor` whose
  workers fork from a forkserver that has imported the pipeline, so import
  time stays out of the phase times, as it does under Airflow's forkserver.
  Each worker reports its own peak RSS (`ru_maxrss`) after every task.
- `airflow`: a deployment with LocalExecutor and parallelism 2 on a PostgreSQL
  database of its own (created and dropped here), with scheduler, DAG
  processor and API server on 127.0.0.1, started by `AirflowDeployment` of
  tests/deployment/deployment_helpers.py, with AIRFLOW_ENVIRONMENT on top of
  its settings.
  Unpausing a DAG makes the scheduler start one run at the default Params,
  which the script waits for as a warm-up. It then triggers one run per DAG
  with the paper-scale Params, one DAG at a time, and reads each run's and
  task's times from the metadata database.
- `memory`: plan and generate each dataset at a tenth of paper scale and at
  paper scale with one worker and the same shard size (`MEMORY_SCALES`), and
  compare the peak RSS of the worker.

Airflow's share of a run is (Airflow run wall time - library wall time with two
workers) / Airflow run wall time, where the library wall time is plan +
generate + validate + publish.

Usage:
    .venv/bin/python bench/paper_scale_bench.py --part library --part airflow --part memory \\
        --out bench/results/paper_scale.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import multiprocessing
import os
import platform
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED = 20250101
DATASETS = ("med_mim", "stephint", "mllmu_med")
PARTS = ("library", "airflow", "memory")

# Parameters of each paper-scale build: `sources`, `shard_size` and the dataset
# options, named as the DAG Params are.
#
# Med-MIM: 83.2K records requested. The five embedded DICOM images (the only
# heldout source of the default input) give fewer than 800 distinct heldout
# questions, so train gets 72,600 for a total of about 83.2K. 600 phantom
# patients (about 2,100 images) give all but about one of the train temporal
# questions requested; 500 fell short by nine.
# StepHint: 46K synthetic chains. MLLMU-Med: the embedded default.
#
# Shard sizes and tasks: every mapped task costs Airflow about a second that the
# library does not pay: task start, DAG file parse, API calls, and the
# scheduler's delay before the next task. Generation costs 0.4 to 0.9 ms of CPU
# per row on the 2-core machine of bench/README.md, "Paper scale through
# Airflow". So the Airflow runs set `max_generate_tasks` to AIRFLOW_PARALLELISM:
# each run has two generate tasks, whatever its shards, balanced by planned work.
# Med-MIM: the train split's first half holds most temporal questions and its
# second half most co-reference questions, which cost about 1.5 times as much
# to render. Shards of a quarter of the train split (18,150) let both tasks, and
# both library workers, get a share of each half.
# StepHint: rows cost the same, so two shards of half the chains.
# MLLMU-Med: shards count patients, and 60 is half of the 120 patients, so
# band_15_100, the largest split, gets two shards.
PAPER_SCALE: dict[str, dict[str, Any]] = {
    "med_mim": {
        "sources": ["phantom_series:?patients=600", "embedded_dicom:"],
        "shard_size": 18150,
        "records": 72600,
        "heldin_records": 10100,
        "heldout_records": 800,
    },
    "stephint": {"sources": ["synthetic_math:?count=46000"], "shard_size": 23000},
    "mllmu_med": {
        "sources": ["phantom:?patients=120", "embedded_dicom:", "facts:"],
        "shard_size": 60,
    },
}
# The memory check builds each dataset at a tenth of paper scale and at paper
# scale with the same shard size, so a worker's peak RSS should not depend on
# the release size. The shard sizes are the ones of the first round of this
# benchmark, small enough that the paper-scale build has many shards.
MEMORY_SHARD_SIZE = {"med_mim": 4000, "stephint": 5000, "mllmu_med": 20}
TENTH_SCALE: dict[str, dict[str, Any]] = {
    "med_mim": {
        "sources": ["phantom_series:?patients=60", "embedded_dicom:"],
        "records": 7260,
        "heldin_records": 1010,
        "heldout_records": 80,
    },
    "stephint": {"sources": ["synthetic_math:?count=4600"]},
    "mllmu_med": {"sources": ["phantom:?patients=12", "embedded_dicom:", "facts:"]},
}
MEMORY_SCALES: dict[str, dict[str, dict[str, Any]]] = {
    dataset: {
        "tenth": {**TENTH_SCALE[dataset], "shard_size": MEMORY_SHARD_SIZE[dataset]},
        "paper": {**PAPER_SCALE[dataset], "shard_size": MEMORY_SHARD_SIZE[dataset]},
    }
    for dataset in PAPER_SCALE
}
# Keys of a parameter set that are not dataset options.
COMMON_KEYS = ("sources", "shard_size")
# Modules that the library's worker processes import once, before any phase is
# timed: the counterpart of the deployment's forkserver preload.
PRELOAD_MODULES = [
    "corpusforge.generators.pipeline",
    "corpusforge.generators.publish",
    "corpusforge.generators.med_mim.builder",
    "corpusforge.generators.stephint.builder",
    "corpusforge.generators.mllmu_med.builder",
    "corpusforge.data_contracts.validate",
    "great_expectations",
    "pandas",
    "pyarrow.parquet",
]
# The library and Airflow builds use the same release key (in different output
# roots), so equal content fingerprints show that they published the same data.
RELEASE = "paper"
DATABASE_PREFIX = "corpusforge_bench_"
AIRFLOW_PARALLELISM = 2
# Airflow settings that the script adds to the deployment's environment. The
# deployment already sets `[workers] min_heartbeat_interval = 1` and preloads
# every builder and the DagBag: the first round of this script measured that
# each task otherwise kept its LocalExecutor slot about 5 s after it ended and
# spent 0.4 to 0.9 s importing the DagBag.
#
# The deployment tests shorten the scheduler's checks for lost tasks and
# unhealthy components, so their failure tests finish quickly. The benchmark puts
# Airflow's defaults back: those checks query the database all through a run,
# and that time belongs to the tests, not to a deployment.
AIRFLOW_ENVIRONMENT = {
    "AIRFLOW__CORE__PARALLELISM": str(AIRFLOW_PARALLELISM),
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "300",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "10",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "300",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "30",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "300",
}
RUN_TIMEOUT_SECONDS = 3600

log = logging.getLogger("paper_scale_bench")


# Worker-side functions. They run in pool processes and return plain dicts.


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in kilobytes.
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _worker_warm_up(_: int) -> int:
    import importlib

    for name in PRELOAD_MODULES:
        importlib.import_module(name)
    time.sleep(0.2)
    return os.getpid()


def _worker_plan(
    dataset: str, params: dict[str, Any], output_root: str, release: str, llm: dict[str, Any]
) -> dict:
    from corpusforge.generators.pipeline import BuildParams, RunInfo, load_plan, plan_release

    started = time.perf_counter()
    options = {key: value for key, value in params.items() if key not in COMMON_KEYS}
    build = BuildParams(
        dataset=dataset,
        release=release,
        seed=SEED,
        output_root=output_root,
        sources=params["sources"],
        shard_size=params["shard_size"],
        options=options,
        llm=llm,
    )
    staging = plan_release(build, RunInfo(run_id=f"paper-scale-{release}"))
    return {
        "staging": str(staging),
        "shards": len(load_plan(staging)["shards"]),
        "seconds": round(time.perf_counter() - started, 3),
        "pid": os.getpid(),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _worker_generate(staging: str, index: int) -> dict:
    from corpusforge.generators.pipeline import generate_shard

    started = time.perf_counter()
    cpu_before = _cpu_seconds()
    stats = generate_shard(staging, index)
    return {
        "index": index,
        "rows": stats["rows"],
        "seconds": round(time.perf_counter() - started, 3),
        "cpu_seconds": round(_cpu_seconds() - cpu_before, 3),
        "pid": os.getpid(),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _worker_validate(staging: str) -> dict:
    from corpusforge.data_contracts import validate_staging

    started = time.perf_counter()
    rows = validate_staging(staging).rows
    return {
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 3),
        "pid": os.getpid(),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _worker_publish(staging: str) -> dict:
    from corpusforge.generators.publish import publish_release

    started = time.perf_counter()
    published = publish_release(staging)
    return {
        "rows": published.num_rows,
        "splits": published.splits,
        "content_fingerprint": published.content_fingerprint,
        "seconds": round(time.perf_counter() - started, 3),
        "pid": os.getpid(),
        "peak_rss_mb": _peak_rss_mb(),
    }


# Library baseline


def _pool(workers: int) -> ProcessPoolExecutor:
    """Return a pool of `workers` processes that have imported PRELOAD_MODULES."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD_MODULES)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    # Start every worker now, so that process start-up stays out of the phase times.
    list(pool.map(_worker_warm_up, range(workers)))
    return pool


def _load() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"1min": round(one, 2), "5min": round(five, 2), "15min": round(fifteen, 2)}


def _parts_digest(staging: str) -> str:
    """Return a sha256 over the names and bytes of every generated part file."""
    digest = hashlib.sha256()
    for path in sorted((Path(staging) / "parts").glob("*")):
        if path.suffix == ".json":
            continue  # shard statistics contain timings
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _generate(staging: str, shards: int, workers: int) -> dict[str, Any]:
    pool = _pool(workers)
    try:
        load_before = _load()
        started = time.perf_counter()
        results = list(pool.map(_worker_generate, [staging] * shards, range(shards)))
        seconds = time.perf_counter() - started
    finally:
        pool.shutdown()
    peaks: dict[int, float] = {}
    for result in results:
        peaks[result["pid"]] = max(peaks.get(result["pid"], 0.0), result["peak_rss_mb"])
    rows = sum(result["rows"] for result in results)
    return {
        "workers": workers,
        "seconds": round(seconds, 3),
        "rows": rows,
        "rows_per_second": round(rows / seconds, 1),
        "shard_seconds": [result["seconds"] for result in results],
        # CPU seconds of the workers over wall seconds times workers: below 1 when
        # the workers waited for I/O or for a core that other processes held.
        "cpu_seconds": round(sum(result["cpu_seconds"] for result in results), 3),
        "cpu_utilization": round(
            sum(result["cpu_seconds"] for result in results) / (seconds * workers), 3
        ),
        "peak_rss_mb_per_worker": sorted(peaks.values(), reverse=True),
        "parts_sha256": _parts_digest(staging),
        "load_before": load_before,
        "load_after": _load(),
    }


def _single(function, *args) -> dict[str, Any]:
    """Run `function(*args)` in a fresh one-process pool and add the load averages."""
    pool = _pool(1)
    try:
        load_before = _load()
        result = pool.submit(function, *args).result()
    finally:
        pool.shutdown()
    return {**result, "load_before": load_before, "load_after": _load()}


def dag_llm_settings() -> dict[str, Any]:
    """Return the language-model settings that a DAG run gets from its default Params.

    These are the defaults of `llm_params()` in dags/_factory.py, copied here so
    that this process does not import Airflow. A mismatch shows up as different
    content fingerprints of the library and Airflow builds.
    """
    return {
        "backend": "offline",
        "model": None,
        "conn_id": "openai_default",
        "mode": "online",
        "concurrency": 16,
        "cache": None,
    }


def library_build(dataset: str, params: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Plan, generate with one and two workers, validate and publish one release."""
    output_root = str(workdir / "library")
    log.info("library %s: planning", dataset)
    plan = _single(_worker_plan, dataset, params, output_root, RELEASE, dag_llm_settings())
    staging = plan["staging"]
    generate = {}
    for workers in (1, 2):
        log.info("library %s: generating %d shards, %d workers", dataset, plan["shards"], workers)
        generate[str(workers)] = _generate(staging, plan["shards"], workers)
    same_bytes = generate["1"]["parts_sha256"] == generate["2"]["parts_sha256"]
    log.info("library %s: validating", dataset)
    validate = _single(_worker_validate, staging)
    log.info("library %s: publishing", dataset)
    publish = _single(_worker_publish, staging)
    shutil.rmtree(Path(output_root) / dataset, ignore_errors=True)

    wall = {
        str(workers): round(
            plan["seconds"]
            + generate[str(workers)]["seconds"]
            + validate["seconds"]
            + publish["seconds"],
            3,
        )
        for workers in (1, 2)
    }
    return {
        "params": params,
        "release": RELEASE,
        "rows": publish["rows"],
        "splits": publish["splits"],
        "content_fingerprint": publish["content_fingerprint"],
        "shards": plan["shards"],
        "plan": plan,
        "generate": generate,
        "generation_speedup_2_workers": round(
            generate["1"]["seconds"] / generate["2"]["seconds"], 3
        ),
        "same_parts_with_1_and_2_workers": same_bytes,
        "validate": validate,
        "publish": publish,
        "wall_seconds": wall,
    }


# Memory check


def memory_check(dataset: str, workdir: Path) -> dict[str, Any]:
    """Return the generation worker's peak RSS at a tenth of paper scale and at paper scale."""
    record: dict[str, Any] = {}
    for label, params in MEMORY_SCALES[dataset].items():
        output_root = str(workdir / f"memory-{label}")
        plan = _single(
            _worker_plan, dataset, params, output_root, f"memory-{label}", dag_llm_settings()
        )
        generate = _generate(plan["staging"], plan["shards"], 1)
        shutil.rmtree(Path(output_root), ignore_errors=True)
        record[label] = {
            "params": params,
            "rows": generate["rows"],
            "shards": plan["shards"],
            "plan_peak_rss_mb": plan["peak_rss_mb"],
            "generate_peak_rss_mb": generate["peak_rss_mb_per_worker"][0],
            "generate_seconds": generate["seconds"],
            "load_after": generate["load_after"],
        }
        log.info(
            "memory %s %s: %d rows, worker peak RSS %.0f MB",
            dataset,
            label,
            generate["rows"],
            record[label]["generate_peak_rss_mb"],
        )
    record["rows_ratio"] = round(record["paper"]["rows"] / record["tenth"]["rows"], 2)
    record["peak_rss_ratio"] = round(
        record["paper"]["generate_peak_rss_mb"] / record["tenth"]["generate_peak_rss_mb"], 3
    )
    return record


# Airflow


def _deployment_module():
    """Import tests/deployment/deployment_helpers.py, which is not an installed module."""
    sys.path.insert(0, str(REPO_ROOT / "tests" / "deployment"))
    import deployment_helpers

    return deployment_helpers


def _database_times(database: str, dag_id: str, run_id: str) -> dict[str, Any]:
    """Read a run's times and its task instances' times from the metadata database.

    Per task group, `queue_wait_seconds` sums each task's wait from queued to
    started. `gaps` are the seconds between the run's start, the task groups
    (plan, generate, validate, publish) and the run's end, when no task of the
    run was running: the scheduler's delay plus task start and finish.
    """
    import psycopg2

    helpers = _deployment_module()
    connection = psycopg2.connect(
        host=helpers.POSTGRES_HOST,
        port=helpers.POSTGRES_PORT,
        user=helpers.POSTGRES_USER,
        dbname=database,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT queued_at, start_date, end_date, state FROM dag_run "
                "WHERE dag_id = %s AND run_id = %s",
                (dag_id, run_id),
            )
            queued_at, start, end, state = cursor.fetchone()
            cursor.execute(
                "SELECT task_id, map_index, queued_dttm, start_date, end_date, duration, "
                "try_number, state FROM task_instance WHERE dag_id = %s AND run_id = %s "
                "ORDER BY start_date",
                (dag_id, run_id),
            )
            tasks = cursor.fetchall()
    finally:
        connection.close()

    phases: dict[str, dict[str, Any]] = {}
    for task_id, _map_index, queued, task_start, task_end, duration, try_number, _ in tasks:
        phase = phases.setdefault(
            task_id,
            {
                "tasks": 0,
                "task_seconds": 0.0,
                "queue_wait_seconds": 0.0,
                "first_start": task_start,
                "last_end": task_end,
            },
        )
        phase["tasks"] += 1
        phase["task_seconds"] += duration or 0.0
        if queued is not None:
            phase["queue_wait_seconds"] += (task_start - queued).total_seconds()
        phase["max_try_number"] = max(phase.get("max_try_number", 0), try_number)
        phase["first_start"] = min(phase["first_start"], task_start)
        phase["last_end"] = max(phase["last_end"], task_end)

    gaps: dict[str, float] = {}
    previous_name, previous_end = "run_start", start
    for name in ("plan", "generate", "validate", "publish"):
        if name in phases:
            first_start = phases[name]["first_start"]
            gaps[f"{previous_name}_to_{name}"] = round(
                (first_start - previous_end).total_seconds(), 3
            )
            previous_name, previous_end = name, phases[name]["last_end"]
    gaps[f"{previous_name}_to_run_end"] = round((end - previous_end).total_seconds(), 3)

    for phase in phases.values():
        phase["span_seconds"] = round((phase["last_end"] - phase["first_start"]).total_seconds(), 3)
        phase["task_seconds"] = round(phase["task_seconds"], 3)
        phase["queue_wait_seconds"] = round(phase["queue_wait_seconds"], 3)
        phase["first_start"] = phase["first_start"].isoformat()
        phase["last_end"] = phase["last_end"].isoformat()
    return {
        "state": state,
        "queued_at": queued_at.isoformat() if queued_at else None,
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "wall_seconds": round((end - start).total_seconds(), 3),
        "queued_to_end_seconds": round((end - queued_at).total_seconds(), 3) if queued_at else None,
        "phases": phases,
        "gaps": gaps,
        "gap_seconds": round(sum(gaps.values()), 3),
    }


def _component_cpu_seconds(processes: dict[str, subprocess.Popen]) -> dict[str, float]:
    """Return the CPU seconds used so far by each Airflow component and its live children.

    The scheduler's children are the LocalExecutor workers, which supervise
    the tasks, so a figure taken while no task runs leaves the tasks' own work out.
    """
    import psutil

    seconds: dict[str, float] = {}
    for name, popen in processes.items():
        total = 0.0
        try:
            process = psutil.Process(popen.pid)
            family = [process, *process.children(recursive=True)]
        except psutil.Error:
            family = []
        for member in family:
            try:
                times = member.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        seconds[name] = total
    return seconds


def airflow_builds(datasets: list[str], workdir: Path) -> dict[str, Any]:
    """Run one paper-scale DAG run per dataset on a deployment of its own and time each."""
    helpers = _deployment_module()
    database = f"{DATABASE_PREFIX}{secrets.token_hex(4)}"
    helpers.create_database(database)
    deployment = None
    results: dict[str, Any] = {"database": database, "parallelism": AIRFLOW_PARALLELISM}
    try:
        deployment = helpers.AirflowDeployment.create(workdir / "airflow", database)
        deployment.env.update(AIRFLOW_ENVIRONMENT)
        results["environment"] = AIRFLOW_ENVIRONMENT
        results["forkserver_preload"] = list(helpers.PRELOAD_MODULES)
        deployment.start_core(preload=helpers.PRELOAD_MODULES)
        for dag_id in datasets:
            deployment.wait_for_dag(dag_id)
            deployment.unpause(dag_id)
        # Each unpaused DAG gets one scheduled run at the default Params first.
        for dag_id in datasets:
            deployment.wait_for_runs(
                dag_id, lambda run: run["run_type"] == "scheduled", 1, RUN_TIMEOUT_SECONDS
            )
        log.info("airflow: warm-up runs at the default Params finished")

        for number, dag_id in enumerate(datasets):
            conf = {
                **PAPER_SCALE[dag_id],
                "max_generate_tasks": AIRFLOW_PARALLELISM,
                "release": RELEASE,
                "seed": SEED,
            }
            logical_date = f"2025-07-{number + 1:02d}T00:00:00+00:00"
            load_before = _load()
            cpu_before = _component_cpu_seconds(deployment.processes)
            run_id = deployment.trigger(dag_id, logical_date, conf)
            log.info("airflow %s: triggered run %s", dag_id, run_id)
            run = deployment.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT_SECONDS)
            cpu_after = _component_cpu_seconds(deployment.processes)
            times = _database_times(database, dag_id, run_id)
            manifest_path = deployment.output_root / dag_id / RELEASE / "manifest.json"
            fingerprint = None
            if manifest_path.exists():
                fingerprint = json.loads(manifest_path.read_text())["content_fingerprint"]
            results[dag_id] = {
                "run_id": run_id,
                "release": RELEASE,
                "state": run["state"],
                "content_fingerprint": fingerprint,
                "load_before": load_before,
                "load_after": _load(),
                # CPU that Airflow's own processes used during the run, beside the tasks.
                "component_cpu_seconds": {
                    name: round(cpu_after[name] - cpu_before.get(name, 0.0), 2)
                    for name in cpu_after
                },
                **times,
            }
            log.info("airflow %s: %s in %.1f s", dag_id, run["state"], times["wall_seconds"])
            shutil.rmtree(deployment.output_root / dag_id, ignore_errors=True)
    finally:
        if deployment is not None:
            deployment.stop_all()
        helpers.drop_database(database)
    return results


# Report


def machine() -> dict[str, Any]:
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "code_revision": revision,
    }


def airflow_extra(airflow: dict[str, Any], library: dict[str, Any]) -> dict[str, float]:
    """Split Airflow's extra wall time over the library's (two workers) by where it went.

    Each task group's extra is its span minus the library's phase time, and
    `between_groups` is the time when no task of the run was running. The parts
    add up to the total.
    """
    library_seconds = {
        "plan": library["plan"]["seconds"],
        "generate": library["generate"]["2"]["seconds"],
        "validate": library["validate"]["seconds"],
        "publish": library["publish"]["seconds"],
    }
    extra = {
        name: round(airflow["phases"][name]["span_seconds"] - seconds, 3)
        for name, seconds in library_seconds.items()
    }
    extra["between_groups"] = airflow["gap_seconds"]
    extra["total"] = round(airflow["wall_seconds"] - library["wall_seconds"]["2"], 3)
    return extra


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Compare the measured figures with the targets, leaving out the parts that have not run."""
    library = result.get("library", {})
    airflow = result.get("airflow", {})
    memory = result.get("memory", {})
    summary: dict[str, Any] = {}
    if all(dataset in airflow for dataset in DATASETS):
        total = sum(airflow[dataset]["wall_seconds"] for dataset in DATASETS)
        summary["airflow_total_seconds"] = round(total, 1)
        summary["target_total_under_600_s"] = total < 600
    for dataset in DATASETS:
        entry: dict[str, Any] = {}
        if dataset in library:
            entry["rows"] = library[dataset]["rows"]
            entry["library_wall_2_workers"] = library[dataset]["wall_seconds"]["2"]
            entry["generation_speedup"] = library[dataset]["generation_speedup_2_workers"]
            entry["target_speedup_1_6"] = entry["generation_speedup"] >= 1.6
        if dataset in airflow and dataset in library:
            wall = airflow[dataset]["wall_seconds"]
            share = (wall - library[dataset]["wall_seconds"]["2"]) / wall
            entry["airflow_wall"] = wall
            entry["airflow_share"] = round(share, 3)
            entry["target_share_at_most_0_1"] = share <= 0.10
            entry["airflow_extra_seconds"] = airflow_extra(airflow[dataset], library[dataset])
            # Earlier versions of this script gave the two builds different release keys.
            if airflow[dataset].get("release") == library[dataset].get("release") is not None:
                entry["same_fingerprint_library_airflow"] = (
                    airflow[dataset]["content_fingerprint"]
                    == library[dataset]["content_fingerprint"]
                )
        if dataset in memory:
            entry["peak_rss_ratio_10x_rows"] = memory[dataset]["peak_rss_ratio"]
            entry["target_rss_ratio_at_most_1_1"] = memory[dataset]["peak_rss_ratio"] <= 1.1
        summary[dataset] = entry
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--part", action="append", choices=PARTS, help="part to run; repeat for several"
    )
    parser.add_argument(
        "--dataset", action="append", choices=DATASETS, help="dataset to build (default: all)"
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON file; parts merge into it")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parts = args.part or list(PARTS)
    datasets = args.dataset or list(DATASETS)

    result: dict[str, Any] = {}
    if args.out.exists():
        result = json.loads(args.out.read_text())
    workdir = Path(tempfile.mkdtemp(prefix="paper-scale-bench-"))
    try:
        for part in parts:
            started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            section = result.setdefault(part, {})
            if part == "airflow":
                section.update(airflow_builds(datasets, workdir))
            for dataset in datasets if part != "airflow" else []:
                if part == "library":
                    section[dataset] = library_build(dataset, PAPER_SCALE[dataset], workdir)
                else:
                    section[dataset] = memory_check(dataset, workdir)
            section["started_at"] = started
            section["machine"] = machine()
            args.out.parent.mkdir(parents=True, exist_ok=True)
            result["summary"] = summarize(result)
            args.out.write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
