"""The end-to-end suite: three real service processes, PostgreSQL and Apache Kafka (the
suite's single broker, or `TEST_KAFKA_BOOTSTRAP`). `kafka_cluster3_nodes` (tests/infra)
is the 3-node cluster for broker faults.
"""

from collections.abc import Iterator

import httpx
import pytest

from services.main import embedded_app
from shared.settings import KernelSettings
from tests.e2e.api import Api
from tests.infra.kafka import broker_kinds
from tests.infra.stack import SERVICES, Stack


@pytest.fixture
def stack(pg_base_dsn, broker_pool, tmp_path_factory) -> Iterator[Stack]:
    broker = broker_pool.get(broker_kinds()[0])
    # A stack per test: a week one test closed would make another's sign-ins late ones.
    # The tests close weeks themselves; the scheduler would close the same week on start.
    stack = Stack(
        pg_base_dsn,
        broker.bootstrap,
        tmp_path_factory.mktemp("stack"),
        extra_env={"FRONTLINE_RUN_SCHEDULER": "false"},
    )
    stack.create_databases()
    for s in SERVICES:
        stack.start(s)
    try:
        stack.wait_healthy()
        yield stack
    finally:
        stack.down()
        stack.drop_databases()


@pytest.fixture
async def api(stack) -> Api:
    api = Api.of_stack(stack)
    await api.login()
    yield api
    await api.close()


@pytest.fixture
async def embedded_api(tmp_path):
    """The same system embedded (one process, SQLite, local bus), for comparisons."""
    admin = ("admin", "embedded-admin-pass")
    kernel = KernelSettings(
        var_dir=tmp_path,
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
        yield api
        await api.close()


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if "tests/e2e/" in item.nodeid:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.kafka)
            item.add_marker(pytest.mark.postgres)
