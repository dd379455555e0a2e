"""The end-to-end suite: three real service processes, PostgreSQL and a Kafka broker.

It runs on noida-db: Tansu answers end offsets wrongly under aiokafka, and the suite
reads consumer lag from the services' health reports to know when events have settled.
The kernel's Kafka tests cover both brokers.
"""

from collections.abc import Iterator

import pytest

from tests.e2e.api import Api
from tests.infra.stack import SERVICES, Stack


@pytest.fixture(scope="module")
def stack(pg_base_dsn, broker_pool, tmp_path_factory) -> Iterator[Stack]:
    broker = broker_pool.get("external" if "external" in broker_pool_kinds() else "noida")
    stack = Stack(pg_base_dsn, broker.bootstrap, tmp_path_factory.mktemp("stack"))
    stack.create_databases()
    for s in SERVICES:
        stack.start(s)
    try:
        stack.wait_healthy()
        yield stack
    finally:
        stack.down()
        stack.drop_databases()


def broker_pool_kinds() -> list[str]:
    from tests.infra.kafka import broker_kinds

    return broker_kinds()


@pytest.fixture
async def api(stack) -> Api:
    api = Api(stack)
    await api.login()
    yield api
    await api.close()


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if "tests/e2e/" in item.nodeid:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.kafka)
            item.add_marker(pytest.mark.postgres)
