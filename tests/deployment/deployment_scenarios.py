"""The workload that the deployment tests share: each scenario runs in a thread of its
own as soon as the deployment is up, and the tests read its outcome.

The scenarios run at the same time on one deployment, so each uses its own release
keys and logical dates and waits only for what it depends on. Logical dates are in
2025, before the scheduled run's date, so no scenario moves LATEST away from the
scheduled release.

The scheduler restart comes first, because stopping the scheduler stops the tasks of
every LocalExecutor run in flight: only its own run and the scheduled run are running
then. The other scenarios create their runs once that scheduler has stopped, and
their tasks start under the new one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployment_helpers import CELERY_RUN_PREFIX, TERMINAL_RUN_STATES, AirflowDeployment

from corpusforge.generators import store
from corpusforge.generators.publish import read_latest

log = logging.getLogger(__name__)

# Scenario names are the names of the fixtures (in conftest.py) that return their outcome.
SCHEDULED = "scheduled_release"
BACKFILL = "backfills"
KILLED_SHARD = "killed_shard_run"
SCALE_OUT = "scale_out"
RESTART = "restarted_run"
WORKER_LOSS = "worker_loss"

# Backfill: three weekly dates (the @weekly schedule runs on Sundays at midnight UTC),
# two shards each.
BACKFILL_CONF = {"sources": ["synthetic_math:?count=20"], "shard_size": 10}
BACKFILL_FROM, BACKFILL_TO = "2025-03-01", "2025-03-16"
BACKFILL_DATES = ["2025-03-02", "2025-03-09", "2025-03-16"]

KILLED_CONF = {
    "release": "killed-shard",
    "seed": 11,
    # One shard large enough to be killed while it runs: about 1.3 s at the 1,200 rows/s
    # that a 1,000-row shard logged on a 2-core machine.
    "sources": ["synthetic_math:?count=1500"],
    "shard_size": 1500,
}
# A temporary file that write_shard opens when a shard starts: `.shard-00000.<pid>.jsonl.tmp`.
SHARD_TMP = re.compile(r"^\.shard-(\d{5})\.(\d+)\.jsonl\.tmp$")

CELERY_WORKERS = ("celery-worker-1", "celery-worker-2")
# Four shards, so that both one-slot workers get one: a busy worker takes no second task.
SCALE_OUT_CONF = {
    "release": "scale-out",
    "seed": 5,
    "sources": ["synthetic_math:?count=40"],
    "shard_size": 10,
}

RESTART_CONF = {"release": "restarted", "sources": ["synthetic_math:?count=40"], "shard_size": 10}

# The worker-loss run builds SCALE_OUT_CONF again into this folder under the output
# root. The content fingerprint leaves the output root out, so it must equal the
# fingerprint of the scale-out scenario's LocalExecutor release.
WORKER_LOSS_FOLDER = "worker-loss"


def is_scheduled(run: dict[str, Any]) -> bool:
    return run["run_type"] == "scheduled"


def is_backfill(run: dict[str, Any]) -> bool:
    return run["run_type"] == "backfill" and run["logical_date"][:10] in BACKFILL_DATES


def generate_tis(deployment: AirflowDeployment, run_id: str) -> list[dict[str, Any]]:
    return [
        ti for ti in deployment.task_instances("stephint", run_id) if ti["task_id"] == "generate"
    ]


def backfill_manifests(root: Path) -> dict[str, dict[str, Any]]:
    return {date: store.load_manifest(root / "stephint" / date) for date in BACKFILL_DATES}


class Workload:
    """The scenarios started on one deployment, each a Future of its outcome."""

    def __init__(self, deployment: AirflowDeployment):
        self.deployment = deployment
        self.futures: dict[str, Future] = {}
        # Set once scenarios may create runs: when RESTART has stopped the first
        # scheduler, or at once without RESTART.
        self.runs_may_start = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=len(SCENARIOS), thread_name_prefix="scenario")

    def start(self, names: set[str]) -> None:
        """Start SCHEDULED and the scenarios in `names`.

        SCALE_OUT and WORKER_LOSS start only on a deployment with the CeleryExecutor,
        and WORKER_LOSS also starts SCALE_OUT.
        """
        if RESTART not in names:
            self.runs_may_start.set()
        if WORKER_LOSS in names:
            # The worker-loss scenario kills a worker that the scale-out scenario starts.
            names = names | {SCALE_OUT}
        for name, scenario in SCENARIOS.items():
            if name in (SCALE_OUT, WORKER_LOSS) and not self.deployment.celery:
                continue
            if name in names or name == SCHEDULED:
                self.futures[name] = self._pool.submit(self._run, name, scenario)

    def wait_to_start_runs(self) -> None:
        """Wait until this scenario may create runs (see `runs_may_start`)."""
        while not self.runs_may_start.wait(1):
            if self.deployment.stopping.is_set():
                raise RuntimeError("the deployment is shutting down")

    def _run(self, name: str, scenario: Callable[[Workload], Any]) -> Any:
        log.info("scenario %s started", name)
        try:
            return scenario(self)
        except Exception:
            log.exception("scenario %s failed", name)
            raise
        finally:
            log.info("scenario %s finished", name)

    def result(self, name: str) -> Any:
        """Wait for scenario `name` and return its outcome, or raise its error."""
        if name not in self.futures:
            raise RuntimeError(f"scenario {name} was not started")
        return self.futures[name].result()

    def shutdown(self) -> None:
        """Make every scenario stop waiting, then wait for their threads to end."""
        self.deployment.stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class ScheduledRelease:
    run: dict[str, Any]
    latest: str | None
    event: dict[str, Any]
    consumer_run: dict[str, Any]


def run_scheduled(workload: Workload) -> ScheduledRelease:
    """Wait for the run that unpausing `stephint` starts and for the consumer run it triggers.

    The consumer is paused once that run has finished, so that the releases of the
    other scenarios start no more consumer runs.
    """
    deployment = workload.deployment
    (run,) = deployment.wait_for_runs("stephint", is_scheduled, 1, timeout=300)
    latest = read_latest(deployment.output_root / "stephint")
    query = urllib.parse.urlencode(
        {"source_dag_id": "stephint", "source_run_id": run["dag_run_id"]}
    )
    events = deployment.api("GET", f"/api/v2/assets/events?{query}")["asset_events"]
    if len(events) != 1:
        raise AssertionError(f"run {run['dag_run_id']} made {len(events)} Asset events, not 1")
    event = events[0]

    def consumer_run() -> dict[str, Any] | None:
        for candidate in deployment.dag_runs("stephint_consumer"):
            if candidate["state"] not in TERMINAL_RUN_STATES:
                continue
            quoted = urllib.parse.quote(candidate["dag_run_id"], safe="")
            upstream = deployment.api(
                "GET", f"/api/v2/dags/stephint_consumer/dagRuns/{quoted}/upstreamAssetEvents"
            )["asset_events"]
            if any(item["id"] == event["id"] for item in upstream):
                return candidate
        return None

    release = event["extra"]["release"]
    consumer = deployment.wait_until(consumer_run, 180, f"a consumer run for {release}", 2)
    deployment.pause("stephint_consumer")
    return ScheduledRelease(run, latest, event, consumer)


@dataclass
class Backfills:
    first_runs: list[dict[str, Any]]
    first_task_instances: dict[str, list[dict[str, Any]]]
    first: dict[str, dict[str, Any]]
    second: dict[str, dict[str, Any]]
    # The backfill over the same dates with reprocess_behavior "none".
    existing_created: dict[str, Any]
    existing_runs_before: dict[str, dict[str, Any]]
    existing_runs_after: dict[str, dict[str, Any]]
    existing_manifests: dict[str, dict[str, Any]]


def _backfill_cli(deployment: AirflowDeployment, *extra: str) -> None:
    deployment.cli(
        "backfill",
        "create",
        "--dag-id",
        "stephint",
        "--from-date",
        BACKFILL_FROM,
        "--to-date",
        BACKFILL_TO,
        "--dag-run-conf",
        json.dumps(BACKFILL_CONF),
        "--max-active-runs",
        "3",
        *extra,
    )


def _backfill_runs(deployment: AirflowDeployment) -> dict[str, dict[str, Any]]:
    return {run["dag_run_id"]: run for run in deployment.dag_runs("stephint") if is_backfill(run)}


def run_backfills(workload: Workload) -> Backfills:
    """Backfill three dates, backfill them again with `--reprocess-behavior completed`,
    then once more through the REST API with reprocess_behavior "none"."""
    deployment = workload.deployment
    root = deployment.output_root

    workload.wait_to_start_runs()
    _backfill_cli(deployment)
    first_runs = deployment.wait_for_runs("stephint", is_backfill, 3, timeout=300)
    first_task_instances = {
        run["dag_run_id"]: deployment.task_instances("stephint", run["dag_run_id"])
        for run in first_runs
    }
    first = backfill_manifests(root)
    deployment.close_backfills("stephint")

    # The scheduled release is LATEST before the past dates are published again, and its
    # consumer run no longer reads the releases that the reprocessing replaces.
    workload.result(SCHEDULED)
    _backfill_cli(deployment, "--reprocess-behavior", "completed")

    def reprocessed() -> dict[str, dict[str, Any]] | None:
        runs = _backfill_runs(deployment).values()
        if any(run["state"] not in TERMINAL_RUN_STATES for run in runs):
            return None
        manifests = backfill_manifests(root)
        changed = all(
            manifests[date]["attempt"] != first[date]["attempt"] for date in BACKFILL_DATES
        )
        return manifests if changed else None

    second = deployment.wait_until(reprocessed, 300, "the reprocessed backfill", interval=2)
    deployment.close_backfills("stephint")

    # The REST API takes the same request as `airflow backfill create`.
    runs_before = _backfill_runs(deployment)
    body = {
        "dag_id": "stephint",
        "from_date": f"{BACKFILL_FROM}T00:00:00Z",
        "to_date": f"{BACKFILL_TO}T00:00:00Z",
        "dag_run_conf": BACKFILL_CONF,
        "reprocess_behavior": "none",
        "max_active_runs": 3,
    }
    created = deployment.api("POST", "/api/v2/backfills", body)
    return Backfills(
        first_runs,
        first_task_instances,
        first,
        second,
        created,
        runs_before,
        _backfill_runs(deployment),
        backfill_manifests(root),
    )


@dataclass
class KilledShard:
    # The run after the killed attempt's retry.
    run: dict[str, Any]
    retried_ti: dict[str, Any]
    manifest: dict[str, Any]
    # The same shard cleared after publishing, which fails because its staging is gone.
    cleared_ti: dict[str, Any]
    alerts: list[dict[str, Any]]
    cleared_log: str
    manifest_after_clear: dict[str, Any]


def run_killed_shard(workload: Workload) -> KilledShard:
    """Run KILLED_CONF, SIGKILL the task process while it writes its only shard, then
    clear that shard once the retry has published the release."""
    deployment = workload.deployment
    workload.wait_to_start_runs()
    deployment.api(
        "POST",
        "/api/v2/variables",
        {"key": "corpusforge_alert_callback", "value": "corpusforge_deploy_hooks:record_alert"},
    )
    run_id = deployment.trigger("stephint", "2025-05-11T00:00:00+00:00", KILLED_CONF)
    staging_dir = deployment.output_root / "stephint" / ".staging"

    def shard_writer_pid() -> int | None:
        for folder in staging_dir.glob("killed-shard.*"):
            for path in (folder / "quarantine").glob(".shard-*.jsonl.tmp"):
                match = SHARD_TMP.match(path.name)
                if match:
                    return int(match.group(2))
        return None

    pid = deployment.wait_until(shard_writer_pid, 180, "shard 1 of 1 to start", interval=0.1)
    os.kill(pid, signal.SIGKILL)
    run = deployment.wait_for_run("stephint", run_id, timeout=240)
    (retried_ti,) = generate_tis(deployment, run_id)
    release = deployment.output_root / "stephint" / "killed-shard"
    manifest = store.load_manifest(release)

    deployment.api(
        "POST",
        "/api/v2/dags/stephint/clearTaskInstances",
        {
            "dry_run": False,
            "only_failed": False,
            "dag_run_id": run_id,
            "task_ids": [["generate", 0]],
        },
    )

    def failed_generate() -> dict[str, Any] | None:
        (ti,) = generate_tis(deployment, run_id)
        return ti if ti["state"] == "failed" else None

    cleared_ti = deployment.wait_until(failed_generate, 180, "the cleared shard to fail", 1)
    alerts = [alert for alert in deployment.alerts() if alert["run_id"] == run_id]
    cleared_log = deployment.task_log("stephint", run_id, "generate", map_index=0)
    return KilledShard(
        run, retried_ti, manifest, cleared_ti, alerts, cleared_log, store.load_manifest(release)
    )


@dataclass
class ScaleOut:
    local_manifest: dict[str, Any]
    local_tis: list[dict[str, Any]]
    celery_run: dict[str, Any]
    celery_manifest: dict[str, Any]
    celery_tis: list[dict[str, Any]]


def _build(deployment: AirflowDeployment, logical_date: str, prefix: str) -> tuple:
    run_id = deployment.trigger("stephint", logical_date, SCALE_OUT_CONF, prefix=prefix)
    run = deployment.wait_for_run("stephint", run_id, timeout=300)
    manifest = store.load_manifest(deployment.output_root / "stephint" / SCALE_OUT_CONF["release"])
    return run, manifest, deployment.task_instances("stephint", run_id)


def run_scale_out(workload: Workload) -> ScaleOut:
    """Build SCALE_OUT_CONF on the LocalExecutor, then again on the two Celery workers."""
    deployment = workload.deployment
    if not deployment.celery:
        raise RuntimeError("the deployment was started without the CeleryExecutor")
    workload.wait_to_start_runs()
    for name in CELERY_WORKERS:
        deployment.start_celery_worker(name)
    local_run, local_manifest, local_tis = _build(
        deployment, "2025-06-01T00:00:00+00:00", "manual__"
    )
    if local_run["state"] != "success":
        raise AssertionError(f"the LocalExecutor run ended {local_run['state']}")
    for name in CELERY_WORKERS:
        deployment.wait_for_celery_worker(name)
    # The consumer run no longer reads the release that the Celery run replaces.
    workload.result(SCHEDULED)
    celery_run, celery_manifest, celery_tis = _build(
        deployment, "2025-06-08T00:00:00+00:00", CELERY_RUN_PREFIX
    )
    return ScaleOut(local_manifest, local_tis, celery_run, celery_manifest, celery_tis)


@dataclass
class RestartedRun:
    state_at_restart: str
    run: dict[str, Any]
    generate_tis: list[dict[str, Any]]


def run_restart(workload: Workload) -> RestartedRun:
    """Stop the scheduler with SIGTERM while a run generates its shards, start it again,
    and wait for the run."""
    deployment = workload.deployment
    try:
        deployment.prepare_restart()
        run_id = deployment.trigger("stephint", "2025-05-18T00:00:00+00:00", RESTART_CONF)

        def generating() -> bool:
            states = [ti["state"] for ti in generate_tis(deployment, run_id)]
            return bool(states) and any(state in ("running", "success") for state in states)

        deployment.wait_until(generating, 180, "the first shard of the run", interval=1)
        state_at_restart = deployment.dag_run("stephint", run_id)["state"]
        # SIGTERM to the whole process group, as a service manager stopping the
        # scheduler does. The tasks it runs stop too, and Airflow runs them again.
        deployment.restart_scheduler()
    finally:
        workload.runs_may_start.set()
    run = deployment.wait_for_run("stephint", run_id, timeout=300)
    return RestartedRun(state_at_restart, run, generate_tis(deployment, run_id))


@dataclass
class WorkerLoss:
    killed_worker: str
    killed_map_index: int
    # The try of the killed task instance that was running when its worker was killed.
    killed_try_number: int
    # The task process: Airflow 3.3's supervisor puts it in a process group of its own
    # inside the worker's session, so killing the worker's group alone leaves it alive.
    task_pid: int
    # Processes of the worker's session still alive after the kill (zombies excluded).
    survivors: list[int]
    seconds_to_finish: float
    run: dict[str, Any]
    generate_tis: list[dict[str, Any]]
    # Every try of the killed task instance, oldest first.
    tries: list[dict[str, Any]]
    heartbeat_timeouts: list[dict[str, Any]]
    release: Path
    manifest: dict[str, Any]
    local_fingerprint: str


def _session_processes(session_id: int) -> list[int]:
    """Return the live (not zombie) processes of session `session_id`, read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # The command name in brackets may contain spaces, so split after its end.
        fields = text[text.rindex(")") + 2 :].split()
        state, session = fields[0], int(fields[3])
        if session == session_id and state != "Z":
            members.append(int(stat.parent.name))
    return members


def _stop_running_shard(
    deployment: AirflowDeployment, run_id: str, workers: dict[str, int]
) -> tuple[dict[str, Any], int] | None:
    """Stop (SIGSTOP) the task process of a generate shard that runs on one of `workers`,
    given as host name to worker process id.

    Return the task instance and the process id once the task instance is still
    running one second after its process was stopped, so the kill that follows
    lands mid-shard, or None to be polled again.
    """
    for ti in generate_tis(deployment, run_id):
        worker_pid = workers.get(ti["hostname"] or "")
        if ti["state"] != "running" or worker_pid is None or not ti["pid"]:
            continue
        pid = ti["pid"]
        try:
            # The process id belongs to this worker while it is in the worker's session.
            if os.getsid(pid) != worker_pid:
                continue
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            continue
        quoted = urllib.parse.quote(run_id, safe="")
        path = f"/api/v2/dags/stephint/dagRuns/{quoted}/taskInstances/generate/{ti['map_index']}"
        try:
            deployment.stopping.wait(1)
            current = deployment.api("GET", path)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
            raise
        if current["state"] == "running" and current["try_number"] == ti["try_number"]:
            return current, pid
        # The shard finished before its process stopped: let it go and pick another.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    return None


def run_worker_loss(workload: Workload) -> WorkerLoss:
    """Build SCALE_OUT_CONF on the two Celery workers and SIGKILL a worker mid-shard.

    Runs after the scale-out scenario, which starts the workers and whose LocalExecutor
    release gives the expected fingerprint. The task's supervisor dies with the worker,
    so no heartbeat reaches Airflow. The scheduler fails that try after
    TASK_INSTANCE_HEARTBEAT_TIMEOUT and retries it on the surviving worker.
    """
    deployment = workload.deployment
    scale_out = workload.result(SCALE_OUT)
    root = deployment.output_root / WORKER_LOSS_FOLDER
    conf = {**SCALE_OUT_CONF, "output_root": str(root)}
    run_id = deployment.trigger(
        "stephint", "2025-06-15T00:00:00+00:00", conf, prefix=CELERY_RUN_PREFIX
    )
    workers = {name: deployment.processes[name].pid for name in CELERY_WORKERS}
    ti, task_pid = deployment.wait_until(
        lambda: _stop_running_shard(deployment, run_id, workers),
        180,
        "a generate shard running on a Celery worker",
        interval=0.2,
    )
    killed_worker = ti["hostname"]
    worker_pid = workers[killed_worker]
    task_group = os.getpgid(task_pid)
    # The worker's group first: its pool process runs the task's supervisor, which
    # would report the task failed if it saw the task process die before itself.
    deployment.stop(killed_worker, sig=signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(task_group, signal.SIGKILL)
    killed_at = time.monotonic()
    deployment.stopping.wait(1)
    survivors = _session_processes(worker_pid)
    log.info(
        "killed Celery worker %s (pid %d) and its task process %d while it ran shard %d",
        killed_worker,
        worker_pid,
        task_pid,
        ti["map_index"],
    )

    run = deployment.wait_for_run("stephint", run_id, timeout=240)
    seconds_to_finish = time.monotonic() - killed_at
    log.info("run %s ended %s %.1f s after the kill", run_id, run["state"], seconds_to_finish)
    quoted = urllib.parse.quote(run_id, safe="")
    tries = deployment.api(
        "GET",
        f"/api/v2/dags/stephint/dagRuns/{quoted}/taskInstances/generate/{ti['map_index']}/tries",
    )["task_instances"]
    query = urllib.parse.urlencode(
        {"dag_id": "stephint", "run_id": run_id, "event": "heartbeat timeout"}
    )
    heartbeat_timeouts = deployment.api("GET", f"/api/v2/eventLogs?{query}")["event_logs"]
    release = root / "stephint" / SCALE_OUT_CONF["release"]
    return WorkerLoss(
        killed_worker=killed_worker,
        killed_map_index=ti["map_index"],
        killed_try_number=ti["try_number"],
        task_pid=task_pid,
        survivors=survivors,
        seconds_to_finish=seconds_to_finish,
        run=run,
        generate_tis=generate_tis(deployment, run_id),
        tries=sorted(tries, key=lambda item: item["try_number"]),
        heartbeat_timeouts=heartbeat_timeouts,
        release=release,
        manifest=store.load_manifest(release),
        local_fingerprint=scale_out.local_manifest["content_fingerprint"],
    )


SCENARIOS: dict[str, Callable[[Workload], Any]] = {
    SCHEDULED: run_scheduled,
    BACKFILL: run_backfills,
    KILLED_SHARD: run_killed_shard,
    SCALE_OUT: run_scale_out,
    RESTART: run_restart,
    WORKER_LOSS: run_worker_loss,
}
