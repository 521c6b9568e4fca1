"""Run a real Airflow deployment for the tests: PostgreSQL metadata database, scheduler,
DAG processor, API server and, optionally, Celery workers, each as its own process group.

Every component runs the `airflow` program of this virtualenv with an environment
built here, so the pytest process keeps its own Airflow configuration (tests/conftest.py
points it at a SQLite home). Tests drive the deployment through the `airflow` command
line and the REST API, from several threads at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO_ROOT / "dags"
AIRFLOW_BIN = Path(sys.executable).parent / "airflow"

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_USER = "postgres"
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379

# Prefix of the databases the tests create, so a leftover one is easy to spot and drop.
DATABASE_PREFIX = "corpusforge_test_"
TERMINAL_RUN_STATES = {"success", "failed"}

# Modules that the tasks import. Loading them once in a parent process, before
# task processes are forked from it, saves each task from importing them again:
# importing Great Expectations and sympy took about 19 s of CPU per task
# (`/usr/bin/time python -c "import ..."` on a 2-core CI machine). The
# LocalExecutor's forkserver preloads PRELOAD_MODULES. A Celery worker, and a
# scheduler that is restarted before it validates anything, preload only
# TASK_MODULES, which every task imports.
TASK_MODULES = (
    "airflow.sdk.execution_time.task_runner",
    "corpusforge.generators.pipeline",
    "corpusforge.generators.publish",
    "corpusforge.generators.stephint.builder",
    "corpusforge.generators.med_mim.builder",
    "corpusforge.generators.mllmu_med.builder",
    # Every task parses its DAG file with the DagBag, 0.4 to 0.9 s of imports.
    "airflow.dag_processing.dagbag",
)
PRELOAD_MODULES = (
    "airflow.executors.local_executor",
    *TASK_MODULES,
    "corpusforge.data_contracts.validate",
    "great_expectations",
    "datasets",
)

# Importable from every component through PYTHONPATH: the host name each task
# reports, so that the tasks of two Celery workers on one machine have different
# host names, and an alert hook that appends every failure report to a JSON-lines file.
HOOKS_MODULE = "corpusforge_deploy_hooks"
HOOKS_SOURCE = '''"""Hooks that the corpusforge deployment tests install in every component."""

import json
import os
import socket


def worker_hostname():
    return os.environ.get("CORPUSFORGE_TEST_HOSTNAME") or socket.getfqdn()


def record_alert(report):
    with open(os.environ["CORPUSFORGE_TEST_ALERTS"], "a", encoding="utf-8") as handle:
        handle.write(json.dumps(report, sort_keys=True) + "\\n")
'''

# Runs whose id starts with this prefix run every task on the CeleryExecutor, and all
# other runs use the default executor, LocalExecutor. The scheduler loads both
# executors, so one scheduler serves both kinds of run without a restart.
CELERY_RUN_PREFIX = "celery__"
# Airflow imports `airflow_local_settings` from PYTHONPATH in every component and
# registers its functions as cluster policies. The scheduler calls
# task_instance_mutation_hook whenever it creates, expands or retries a task
# instance (Airflow 3.3 "Cluster Policies" documentation).
LOCAL_SETTINGS_SOURCE = f'''"""Cluster policies of the corpusforge deployment tests."""


def task_instance_mutation_hook(task_instance, dag_run=None):
    if task_instance.run_id.startswith({CELERY_RUN_PREFIX!r}):
        task_instance.executor = "CeleryExecutor"
'''

# Runs `airflow scheduler` once the multiprocessing forkserver has imported its preload
# modules and the file named by $CORPUSFORGE_TEST_START_FLAG exists. So a scheduler can
# load its modules while the database is migrated, or while the scheduler it replaces
# still runs. Left to Airflow, the forkserver starts with the first task, and the
# scheduler loop waits for the whole import. That took 34 s once on a 2-core machine
# shared with other jobs, long enough to miss heartbeats and reset its own queued task.
SCHEDULER_MODULE = "corpusforge_scheduler"
SCHEDULER_SOURCE = '''"""Start the forkserver, wait for the start flag file, then run `airflow`."""

import multiprocessing
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    preload = os.environ["AIRFLOW__CORE__MP_FORKSERVER_PRELOAD"]
    multiprocessing.set_start_method("forkserver", force=True)
    multiprocessing.set_forkserver_preload([name for name in preload.split(",") if name])
    # The first child makes the forkserver start and import the preload modules.
    warm_up = multiprocessing.Process(target=os.getpid)
    warm_up.start()
    warm_up.join()
    start_flag = Path(os.environ["CORPUSFORGE_TEST_START_FLAG"])
    while not start_flag.exists():
        time.sleep(0.2)

    from airflow.__main__ import main

    sys.argv[0] = "airflow"
    sys.exit(main())
'''

# Airflow's Celery configuration plus Celery's `imports`, which a worker imports
# before it forks its pool, so that tasks start with the heavy modules loaded
# (the Celery counterpart of PRELOAD_MODULES).
CELERY_CONFIG_MODULE = "corpusforge_celery_config"
CELERY_CONFIG_SOURCE = f'''"""Celery settings of the corpusforge deployment tests."""

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG = {{**DEFAULT_CELERY_CONFIG, "imports": {list(TASK_MODULES)!r}}}
'''


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free when this function ran."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_url(database: str, driver: str = "postgresql+psycopg2") -> str:
    return f"{driver}://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"


def _admin_connection():
    import psycopg2

    connection = psycopg2.connect(
        host=POSTGRES_HOST, port=POSTGRES_PORT, user=POSTGRES_USER, dbname="postgres"
    )
    connection.autocommit = True
    return connection


def create_database(name: str) -> None:
    from psycopg2 import sql

    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    connection = _admin_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()
    log.info("created PostgreSQL database %s", name)


def drop_database(name: str) -> None:
    """Drop database `name`, closing the connections that components left open."""
    from psycopg2 import sql

    connection = _admin_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    finally:
        connection.close()
    log.info("dropped PostgreSQL database %s", name)


def new_database_name() -> str:
    return f"{DATABASE_PREFIX}{secrets.token_hex(4)}"


def check_postgres(database: str, port: int = POSTGRES_PORT, timeout: int = 5) -> None:
    """Raise DeploymentError naming the server and the fix when `database` is unreachable."""
    import psycopg2

    try:
        connection = psycopg2.connect(
            host=POSTGRES_HOST,
            port=port,
            user=POSTGRES_USER,
            dbname=database,
            connect_timeout=timeout,
        )
    except psycopg2.OperationalError as error:
        raise DeploymentError(
            f"PostgreSQL at {POSTGRES_HOST}:{port} (database {database}) is "
            f"unreachable: {str(error).strip()}. Start PostgreSQL or fix the address; "
            "no Airflow home was created."
        ) from error
    connection.close()


def base_environment(
    home: Path, database_url: str, output_root: Path, celery: bool = False
) -> dict[str, str]:
    """Return the environment of every component: this process's, minus Airflow and
    corpusforge settings, plus the deployment's configuration.

    With `celery`, the scheduler also loads the CeleryExecutor, for runs whose id
    starts with CELERY_RUN_PREFIX.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "CORPUSFORGE", "PYTEST"))
    }
    api_port = free_port()
    base_url = f"http://127.0.0.1:{api_port}"
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor,CeleryExecutor"
            if celery
            else "LocalExecutor",
            # The CI machines have 2 cores, where more parallel tasks than this only add
            # process start-up cost.
            "AIRFLOW__CORE__PARALLELISM": "6",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
            # Every component signs and checks the task tokens with the same secret.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            # Components start no log server here, but a free port keeps one that starts
            # anyway from clashing with another deployment on this machine.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # The DAG files do not change during a test session: parse each one once.
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
            "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
            "AIRFLOW__CORE__MP_FORKSERVER_PRELOAD": ",".join(PRELOAD_MODULES),
            # The scheduler loop sleeps this long when it found nothing to do. It is shorter
            # than the default 1 s, so a run's next task starts sooner after the previous one.
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            # The task supervisor waits in select() for up to this many seconds and can
            # miss the task's exit, which kept each executor slot busy about 5 s longer
            # than its task (bench/paper_scale_bench.py logs, Airflow 3.3). 1 is the minimum.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            # Short limits, so that a killed task, scheduler or Celery worker is noticed
            # within the tests. A task's supervisor sends a heartbeat about every
            # [workers] min_heartbeat_interval (1 s, above), so 15 s leaves room for a
            # busy machine.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "15",
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{HOOKS_MODULE}.worker_hostname",
            # A queue of its own, so Celery workers of other runs on this Redis never
            # take these tasks. The DAG processor stamps it on every task it parses.
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"corpusforge_{secrets.token_hex(4)}",
            "PYTHONPATH": os.pathsep.join(
                [str(home / "pythonpath"), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            # Used by the runs on the CeleryExecutor and by the Celery workers.
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": database_url.replace(
                "postgresql+psycopg2://", "db+postgresql://"
            ),
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": f"{CELERY_CONFIG_MODULE}.CELERY_CONFIG",
            "CORPUSFORGE_TEST_ALERTS": str(home / "alerts.jsonl"),
            "CORPUSFORGE_OUTPUT_ROOT": str(output_root),
            "HF_DATASETS_OFFLINE": "1",
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(home / "huggingface"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class DeploymentError(RuntimeError):
    """A component failed to start, died, or a request to it failed."""


@dataclass
class AirflowDeployment:
    """One Airflow deployment: its home, environment and running component processes."""

    home: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    # Set when the deployment shuts down: every wait in other threads then stops.
    stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def create(
        cls, root: Path, database: str, port: int = POSTGRES_PORT, celery: bool = False
    ) -> AirflowDeployment:
        """Check PostgreSQL, then create the Airflow home `root/airflow-home` and its files.

        Raises DeploymentError before anything is written when the database is unreachable.
        """
        check_postgres(database, port)
        home = root / "airflow-home"
        pythonpath = home / "pythonpath"
        pythonpath.mkdir(parents=True)
        # Components that start together would each write a default airflow.cfg.
        (home / "airflow.cfg").write_text("# Settings: AIRFLOW__* environment variables.\n")
        (pythonpath / f"{HOOKS_MODULE}.py").write_text(HOOKS_SOURCE)
        (pythonpath / f"{CELERY_CONFIG_MODULE}.py").write_text(CELERY_CONFIG_SOURCE)
        (pythonpath / f"{SCHEDULER_MODULE}.py").write_text(SCHEDULER_SOURCE)
        (pythonpath / "airflow_local_settings.py").write_text(LOCAL_SETTINGS_SOURCE)
        output_root = root / "published"
        output_root.mkdir()
        return cls(home, base_environment(home, postgres_url(database), output_root, celery))

    @property
    def celery(self) -> bool:
        return "CeleryExecutor" in self.env["AIRFLOW__CORE__EXECUTOR"]

    @property
    def base_url(self) -> str:
        return self.env["AIRFLOW__API__BASE_URL"]

    @property
    def queue(self) -> str:
        return self.env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]

    @property
    def migrated_flag(self) -> Path:
        return self.home / "migrated"

    def migrate(self) -> None:
        self.cli("db", "migrate", timeout=600)
        self.migrated_flag.touch()

    def start_core(self, preload: tuple[str, ...] = PRELOAD_MODULES) -> None:
        """Migrate the database unless migrate() ran, and start the scheduler, API server
        and DAG processor.

        The scheduler starts first and its forkserver imports `preload` during the
        migration. Waits until the API server reports them all healthy.
        """
        self.start_scheduler("scheduler", preload, start_flag=self.migrated_flag)
        if not self.migrated_flag.exists():
            self.migrate()
        self.start("api-server", ["api-server"])
        self.start("dag-processor", ["dag-processor"])
        self.wait_healthy(["scheduler", "dag_processor"])

    def start_scheduler(self, name: str, preload: tuple[str, ...], start_flag: Path) -> None:
        """Start scheduler component `name`, which runs Airflow once `start_flag` exists."""
        # Task logs are files in this home, which the API server reads directly, so the
        # scheduler needs no log server.
        self.start(
            name,
            ["scheduler", "--skip-serve-logs"],
            env={
                "AIRFLOW__CORE__MP_FORKSERVER_PRELOAD": ",".join(preload),
                "CORPUSFORGE_TEST_START_FLAG": str(start_flag),
            },
            program=[sys.executable, "-m", SCHEDULER_MODULE],
        )

    def prepare_restart(self) -> None:
        """Start the replacement scheduler `scheduler-restarted`, which loads its modules
        now and runs once restart_scheduler has stopped `scheduler`."""
        self.start_scheduler("scheduler-restarted", PRELOAD_MODULES, self.home / "restarted")

    def restart_scheduler(self, sig: int = signal.SIGTERM) -> None:
        """Stop `scheduler` with `sig` sent to its whole process group, let the replacement
        from prepare_restart run, and wait until it is healthy."""
        self.stop("scheduler", sig=sig)
        (self.home / "restarted").touch()
        self.wait_healthy(["scheduler"])

    def start_celery_worker(self, name: str) -> None:
        """Start a Celery worker that runs one task at a time and reports host name `name`."""
        self.start(
            name,
            ["celery", "worker", "--concurrency", "1", "--queues", self.queue]
            + ["--celery-hostname", f"{name}@%h", "--skip-serve-logs"],
            env={"CORPUSFORGE_TEST_HOSTNAME": name},
        )

    def wait_for_celery_worker(self, name: str, timeout: float = 180) -> None:
        def ready() -> bool:
            path = self.log_path(name)
            return path.exists() and " ready." in path.read_text(errors="replace")

        self.wait_until(ready, timeout, f"Celery worker {name} to be ready")

    def alerts(self) -> list[dict[str, Any]]:
        """Return the failure reports that the test alert hook received, oldest first."""
        path = Path(self.env["CORPUSFORGE_TEST_ALERTS"])
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        """Return the text of every attempt's log file of one task instance."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder = folder / f"map_index={map_index}"
        return "\n".join(path.read_text(errors="replace") for path in sorted(folder.glob("*.log")))

    @property
    def output_root(self) -> Path:
        return Path(self.env["CORPUSFORGE_OUTPUT_ROOT"])

    def log_path(self, name: str) -> Path:
        return self.home / f"{name}.log"

    # Processes

    def start(
        self,
        name: str,
        args: list[str],
        env: dict[str, str] | None = None,
        program: list[str] | None = None,
    ) -> None:
        """Start `airflow <args>` (or `program <args>`) as component `name` in a new
        process group."""
        if name in self.processes and self.processes[name].poll() is None:
            raise DeploymentError(f"component {name} is already running")
        with self.log_path(name).open("ab") as log_file:
            self.processes[name] = subprocess.Popen(
                [*(program or [str(AIRFLOW_BIN)]), *args],
                env={**self.env, **(env or {})},
                cwd=self.home,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        log.info("started %s (pid %d)", name, self.processes[name].pid)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Send `sig` to the component's process group and wait, with SIGKILL after `timeout`."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        started = time.monotonic()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s, so its group gets SIGKILL", name, timeout)
            _kill_group(process.pid)
            process.wait(timeout=10)
        # Children that ignored the signal (task processes) must not outlive the test.
        _kill_group(process.pid)
        log.info("stopped %s in %.1f s", name, _since(started))

    def stop_all(self, timeout: float = 30) -> None:
        """Stop every component at once: SIGTERM to all groups, then wait for each."""
        self.stopping.set()
        for process in list(self.processes.values()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for name in list(self.processes):
            self.stop(name, timeout=timeout)

    def check_running(self) -> None:
        """Raise DeploymentError with the log of the first component that exited."""
        if self.stopping.is_set():
            raise DeploymentError("the deployment is shutting down")
        # A copy, because a scheduler restart in another thread changes the dict.
        for name, process in list(self.processes.items()):
            if process.poll() is not None:
                raise DeploymentError(
                    f"{name} exited with code {process.returncode}\n{self.log_tail(name)}"
                )

    def log_tail(self, name: str, lines: int = 80) -> str:
        path = self.log_path(name)
        if not path.exists():
            return f"(no log at {path})"
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- last {len(text)} lines of {path} ---\n" + "\n".join(text)

    def all_logs(self, lines: int = 60) -> str:
        names = sorted(path.stem for path in self.home.glob("*.log"))
        return "\n".join(self.log_tail(name, lines) for name in names)

    # Command line and REST API

    def cli(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess:
        """Run `airflow <args>` against this deployment and return the finished process."""
        started = time.monotonic()
        result = subprocess.run(
            [str(AIRFLOW_BIN), *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise DeploymentError(
                f"airflow {' '.join(args)} failed with exit code {result.returncode}\n"
                f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
            )
        log.info(
            "airflow %s: exit code %d after %.1f s",
            " ".join(args[:2]),
            result.returncode,
            _since(started),
        )
        return result

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        """Send a JSON request to the REST API (`/api/v2/...`) and return the decoded reply."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:2000]
            raise DeploymentError(f"{method} {path} failed: HTTP {error.code}: {detail}") from error
        return json.loads(payload) if payload else None

    # Waiting

    def wait_until(
        self,
        condition: Callable[[], Any],
        timeout: float,
        what: str,
        interval: float = 1.0,
    ) -> Any:
        """Poll `condition` until it returns a true value, or raise with the logs on time-out."""
        started = time.monotonic()
        deadline = started + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            self.check_running()
            try:
                value = condition()
            except (DeploymentError, OSError) as error:
                last_error = error
                value = None
            if value:
                log.info("waited %.1f s for %s", _since(started), what)
                return value
            self.stopping.wait(interval)
        raise DeploymentError(
            f"timed out after {timeout:.0f} s waiting for {what}"
            + (f" (last error: {last_error})" if last_error else "")
            + "\n"
            + self.all_logs()
        )

    def health(self) -> dict[str, Any]:
        return self.api("GET", "/api/v2/monitor/health")

    def wait_healthy(self, components: Iterable[str], timeout: float = 180) -> None:
        """Wait until the API server reports the metadata database and `components` healthy."""

        def healthy() -> bool:
            status = self.health()
            wanted = ["metadatabase", *components]
            return all(status.get(name, {}).get("status") == "healthy" for name in wanted)

        self.wait_until(healthy, timeout, f"healthy {', '.join(components)}")

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        """Wait until the DAG processor has parsed `dag_id` into the database."""

        def parsed() -> dict[str, Any] | None:
            try:
                return self.api("GET", f"/api/v2/dags/{dag_id}")
            except DeploymentError as error:
                if "HTTP 404" in str(error):
                    return None
                raise

        return self.wait_until(parsed, timeout, f"DAG {dag_id} to be parsed", interval=2)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": True})

    def trigger(
        self, dag_id: str, logical_date: str, conf: dict[str, Any], prefix: str = "manual__"
    ) -> str:
        """Create a manual run of `dag_id` at `logical_date` (ISO 8601) and return its id.

        The run id starts with `prefix`: CELERY_RUN_PREFIX runs it on the CeleryExecutor.
        """
        run_id = f"{prefix}{logical_date}__{secrets.token_hex(3)}"
        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf}
        return self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        quoted = urllib.request.quote(run_id, safe="")
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> dict[str, Any]:
        """Wait until run `run_id` has finished and return it, whatever its final state."""

        def finished() -> dict[str, Any] | None:
            run = self.dag_run(dag_id, run_id)
            return run if run["state"] in TERMINAL_RUN_STATES else None

        return self.wait_until(finished, timeout, f"run {run_id} of {dag_id} to finish", 2)

    def backfills(self, dag_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/api/v2/backfills?dag_id={dag_id}&limit=100")["backfills"]

    def close_backfills(self, dag_id: str) -> None:
        """Mark every open backfill of `dag_id` completed; call it once their runs finished.

        Airflow rejects a new backfill while one of the same DAG is open. The scheduler
        closes a backfill whose runs all finished on a fixed 30 s timer (Airflow 3.3.2
        `SchedulerJobRunner._mark_backfills_complete`, not configurable). Cancelling it
        does the same at once: the cancel endpoint pauses the backfill, fails its queued
        runs (there are none left) and sets `completed_at`.
        """
        for backfill in self.backfills(dag_id):
            if backfill["completed_at"]:
                continue
            try:
                self.api("PUT", f"/api/v2/backfills/{backfill['id']}/cancel")
            except DeploymentError as error:
                # The scheduler's timer closed it in the meantime.
                if "HTTP 409" not in str(error):
                    raise

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        reply = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=id")
        return reply["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        quoted = urllib.request.quote(run_id, safe="")
        reply = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=200")
        return reply["task_instances"]

    def wait_for_runs(
        self,
        dag_id: str,
        select: Callable[[dict[str, Any]], bool],
        count: int,
        timeout: float = 180,
    ) -> list[dict[str, Any]]:
        """Wait until `count` runs of `dag_id` match `select` and all of them have finished."""

        def finished() -> list[dict[str, Any]] | None:
            runs = [run for run in self.dag_runs(dag_id) if select(run)]
            if len(runs) >= count and all(run["state"] in TERMINAL_RUN_STATES for run in runs):
                return runs
            return None

        return self.wait_until(finished, timeout, f"{count} finished runs of {dag_id}", 2)


def _since(started: float) -> float:
    return time.monotonic() - started


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
