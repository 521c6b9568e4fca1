"""Fixtures that run one real Airflow deployment for the whole test session.

The deployment has its own PostgreSQL database (`corpusforge_test_<hex>`, dropped at
the end), an Airflow home in a temporary folder, and the API server, scheduler, DAG
processor and, for the scale-out scenario, two Celery workers as subprocesses on
127.0.0.1. Tests that need it skip
with a reason when PostgreSQL (or, for the Celery tests, Redis) is unreachable, and
fail instead when CI=true.

The scenarios of deployment_scenarios.py start together once the deployment is up;
each fixture below returns the outcome of one of them. Only the scenarios that the
selected tests request are started.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from deployment_helpers import (
    POSTGRES_HOST,
    POSTGRES_PORT,
    PRELOAD_MODULES,
    REDIS_HOST,
    REDIS_PORT,
    TASK_MODULES,
    AirflowDeployment,
    create_database,
    drop_database,
    new_database_name,
)
from deployment_scenarios import (
    BACKFILL,
    KILLED_SHARD,
    RESTART,
    SCALE_OUT,
    SCHEDULED,
    WORKER_LOSS,
    Backfills,
    KilledShard,
    RestartedRun,
    ScaleOut,
    ScheduledRelease,
    WorkerLoss,
    Workload,
)
from testsupport import in_ci, service_reachable


def require_service(name: str, host: str, port: int) -> None:
    """Skip the test when `host:port` is closed, or fail it when CI=true."""
    if service_reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if in_ci():
        pytest.fail(message + " (CI=true requires it)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """Create a PostgreSQL database for this test session and drop it afterwards."""
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    name = new_database_name()
    create_database(name)
    try:
        yield name
    finally:
        drop_database(name)


@pytest.fixture(scope="session")
def redis_server() -> str:
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    return f"{REDIS_HOST}:{REDIS_PORT}"


def _delete_queue_keys(queue: str) -> None:
    """Delete the Redis keys of `queue`, and its messages that a killed worker left unacked.

    Kombu's Redis transport keeps every message a worker has taken but not acknowledged
    in the shared `unacked` hash, as JSON `[message, exchange, routing_key]`, until the
    visibility timeout (24 hours here) returns it to its queue.
    """
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
    for key in client.scan_iter(match=f"*{queue}*"):
        client.delete(key)
    for tag, payload in client.hscan_iter("unacked"):
        _message, _exchange, routing_key = json.loads(payload)
        if routing_key == queue:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)


@pytest.fixture(scope="session")
def airflow_deployment(
    postgres_database: str, tmp_path_factory, request: pytest.FixtureRequest
) -> Iterator[AirflowDeployment]:
    """Start Airflow on PostgreSQL and unpause `stephint_consumer` and `stephint`.

    Unpausing `stephint` makes the scheduler create the run of the latest weekly date
    at once, with the default parameters. When Redis is reachable the scheduler also
    loads the CeleryExecutor (the scale-out scenario starts the Celery workers).
    """
    celery = service_reachable(REDIS_HOST, REDIS_PORT)
    root = tmp_path_factory.mktemp("deployment")
    deployment = AirflowDeployment.create(root, postgres_database, celery=celery)
    # The restart scenario stops the first scheduler before any run validates a
    # release, so that scheduler needs only the modules of the earlier tasks.
    requested = {name for item in request.session.items for name in item.fixturenames}
    preload = TASK_MODULES if RESTART in requested else PRELOAD_MODULES
    try:
        deployment.start_core(preload)
        for dag_id in ("stephint_consumer", "stephint"):
            deployment.wait_for_dag(dag_id)
            deployment.unpause(dag_id)
        yield deployment
    finally:
        # Nothing is left to check, so components get little time to stop on their own.
        deployment.stop_all(timeout=5)
        if celery:
            _delete_queue_keys(deployment.queue)


@pytest.fixture(scope="session")
def workload(
    airflow_deployment: AirflowDeployment, request: pytest.FixtureRequest
) -> Iterator[Workload]:
    """Start the scenarios whose fixtures the selected tests request."""
    requested = {name for item in request.session.items for name in item.fixturenames}
    started = Workload(airflow_deployment)
    try:
        started.start(requested)
        yield started
    finally:
        started.shutdown()


@pytest.fixture(scope="session")
def scheduled_release(workload: Workload) -> ScheduledRelease:
    return workload.result(SCHEDULED)


@pytest.fixture(scope="session")
def backfills(workload: Workload) -> Backfills:
    return workload.result(BACKFILL)


@pytest.fixture(scope="session")
def killed_shard_run(workload: Workload) -> KilledShard:
    return workload.result(KILLED_SHARD)


@pytest.fixture(scope="session")
def scale_out(redis_server: str, workload: Workload) -> ScaleOut:
    return workload.result(SCALE_OUT)


@pytest.fixture(scope="session")
def worker_loss(redis_server: str, workload: Workload) -> WorkerLoss:
    return workload.result(WORKER_LOSS)


@pytest.fixture(scope="session")
def restarted_run(workload: Workload) -> RestartedRun:
    return workload.result(RESTART)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the deployment's component logs to the report of a failed test."""
    outcome = yield
    report = outcome.get_result()
    deployment = getattr(item, "funcargs", {}).get("airflow_deployment")
    if report.failed and isinstance(deployment, AirflowDeployment):
        report.sections.append(("Airflow component logs", deployment.all_logs()))
