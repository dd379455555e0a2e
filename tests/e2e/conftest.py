"""The end-to-end suite: three real service processes, PostgreSQL and the 3-node Apache
Kafka cluster (replication factor 3, min.insync.replicas 2), which the services reach
through TCP proxies so a test can kill, restart or cut off brokers. The PostgreSQL restart
runs on a PostgreSQL of its own.
"""

import contextlib
from collections.abc import Iterator

import httpx
import pytest

from services.main import embedded_app
from shared.settings import KernelSettings
from tests.e2e.api import Api
from tests.e2e.scenario import Scenario
from tests.infra.postgres import RestartablePostgres, _run_sync
from tests.infra.stack import SERVICES, Stack


def _stack(pg_base: str, cluster, log_dir) -> Iterator[Stack]:
    cluster.restore()  # proxies a failed test may have left cut
    # A stack per test: a week one test closed would make another's sign-ins late ones.
    # The tests close weeks themselves; the scheduler would close the same week on start.
    stack = Stack(
        pg_base,
        cluster.bootstrap,
        log_dir,
        extra_env={"FRONTLINE_RUN_SCHEDULER": "false"},
        replication_factor=3,
    )
    stack.cluster = cluster
    stack.create_databases()
    for s in SERVICES:
        stack.start(s)
    try:
        stack.wait_healthy()
        yield stack
    finally:
        stack.down()
        cluster.restore()
        stack.drop_databases()


@pytest.fixture
def stack(pg_base_dsn, kafka_cluster3_nodes, tmp_path_factory) -> Iterator[Stack]:
    """The services on the shared PostgreSQL and the 3-node cluster (through its proxies)."""
    yield from _stack(pg_base_dsn, kafka_cluster3_nodes, tmp_path_factory.mktemp("stack"))


@pytest.fixture
def own_postgres() -> Iterator[RestartablePostgres]:
    """A PostgreSQL of the test's own, which it may restart (never the shared server)."""
    pg = RestartablePostgres()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def stack_on_own_postgres(own_postgres, kafka_cluster3_nodes, tmp_path_factory):
    stack_dir = tmp_path_factory.mktemp("stack")
    for stack in _stack(own_postgres.base, kafka_cluster3_nodes, stack_dir):
        stack.postgres = own_postgres
        yield stack


@pytest.fixture
async def api(stack) -> Api:
    api = Api.of_stack(stack)
    await api.login()
    yield api
    await api.close()


@pytest.fixture
async def api_on_own_postgres(stack_on_own_postgres) -> Api:
    api = Api.of_stack(stack_on_own_postgres)
    await api.login()
    yield api
    await api.close()


@pytest.fixture(scope="session")
def expected(tmp_path_factory) -> dict:
    """The scenario's outcome in the embedded app with nothing going wrong, once a session
    (its own event loop in a thread: the tests compare every faulty run with it)."""

    async def undisturbed() -> dict:
        async with embedded(tmp_path_factory.mktemp("embedded")) as api:
            reference = Scenario(api)
            await reference.seed()
            await reference.load()
            await reference.conclude()
            return await reference.snapshot()

    return _run_sync(undisturbed())


@contextlib.asynccontextmanager
async def embedded(var_dir):
    admin = ("admin", "embedded-admin-pass")
    kernel = KernelSettings(
        var_dir=var_dir,
        bootstrap_admin_username=admin[0],
        bootstrap_admin_password=admin[1],
        relay_idle_seconds=0.05,
        run_scheduler=False,
    )
    app = embedded_app(kernel=kernel)
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://embedded", timeout=30
        )
        api = Api({s: client for s in SERVICES}, admin)
        await api.login()
        try:
            yield api
        finally:
            await api.close()


@pytest.fixture
async def embedded_api(tmp_path):
    """The same system embedded (one process, SQLite, local bus), for comparisons."""
    async with embedded(tmp_path) as api:
        yield api


# Per fault scenario: acknowledged writes, events lost, effects doubled, dead letters.
FAULT_REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if FAULT_REPORT:
        terminalreporter.section("fault scenarios")
        for line in FAULT_REPORT:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if "tests/e2e/" in item.nodeid:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.kafka)
            item.add_marker(pytest.mark.postgres)
