"""Pytest plugin: PostgreSQL databases and Kafka-protocol brokers for tests.

Loaded from tests/conftest.py with ``pytest_plugins = ["tests.infra.fixtures"]``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.infra.kafka import Broker, broker_kinds, client_overrides, kafka_broker
from tests.infra.postgres import create_database, drop_database, postgres_server, unique_db_name


@pytest.fixture(scope="session")
def pg_base_dsn() -> Iterator[str]:
    """``postgresql://user@host:port`` of a server living for the whole session."""
    with postgres_server() as base:
        yield base


@pytest_asyncio.fixture
async def pg_database_url(pg_base_dsn: str, request) -> AsyncIterator[str]:
    """SQLAlchemy URL ``postgresql+asyncpg://.../<fresh database>``, dropped after the test."""
    name = unique_db_name(request.node.name[:20])
    await create_database(pg_base_dsn, name)
    try:
        yield f"{pg_base_dsn.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    finally:
        await drop_database(pg_base_dsn, name)


# Session scope + params: pytest groups the tests by broker, so each broker starts once
# and the first is stopped before the second starts.
@pytest.fixture(scope="session", params=broker_kinds(), ids=lambda kind: kind)
def kafka_bootstrap(request, broker_pool: BrokerPool) -> Broker:
    return broker_pool.get(request.param)


class BrokerPool:
    """Starts each test broker on first use and keeps it for the session.

    Lets a test be parametrized over transports ("local", "kafka-noida", "kafka-tansu")
    next to other parameters, which a parametrized session fixture cannot do; and keeps
    one broker of each kind per session whichever fixture asked first.
    """

    def __init__(self) -> None:
        self.stack = contextlib.ExitStack()
        self.running: dict[str, Broker] = {}

    def get(self, kind: str) -> Broker:
        if kind not in self.running:
            bootstrap = self.stack.enter_context(kafka_broker(kind))
            self.running[kind] = Broker(kind, bootstrap, client_overrides(kind))
        return self.running[kind]


@pytest.fixture(scope="session")
def broker_pool() -> Iterator[BrokerPool]:
    pool = BrokerPool()
    with pool.stack:
        yield pool


_MARKERS = {"pg_base_dsn": "postgres", "kafka_bootstrap": "kafka", "broker_pool": "kafka"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests get their marker from the fixtures they use, so `-m "not kafka"` just works.
    for item in items:
        for fixture, marker in _MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
