"""Pytest plugin: PostgreSQL databases and Apache Kafka brokers for tests.

Loaded from tests/conftest.py with ``pytest_plugins = ["tests.infra.fixtures"]``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from shared.devstack.kafka import KafkaCluster
from tests.infra.kafka import (
    Broker,
    broker_kinds,
    client_overrides,
    kafka_broker,
    kafka_cluster3,
)
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


@pytest.fixture(scope="session", params=broker_kinds(), ids=lambda kind: kind)
def kafka_bootstrap(request, broker_pool: BrokerPool) -> Broker:
    return broker_pool.get(request.param)


class BrokerPool:
    """Starts each test broker on first use and keeps it for the session.

    Lets a test be parametrized over transports ("local", "kafka-apache") next to other
    parameters, which a parametrized session fixture cannot do; and keeps one broker of
    each kind per session whichever fixture asked first.
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


@pytest.fixture(scope="session")
def _kafka_cluster3_session() -> Iterator[KafkaCluster]:
    with kafka_cluster3() as cluster:
        yield cluster


@pytest.fixture
def kafka_cluster3_nodes(_kafka_cluster3_session: KafkaCluster) -> KafkaCluster:
    """The session's 3-node Apache Kafka cluster (replication factor 3, min.insync.replicas
    2), every node running when the test starts: a test may kill -9, pause or restart nodes
    (`cluster.kill(node_id)`, `.pause`, `.resume`, `.restart`, `.pids`, `.node_at(address)`).
    """
    cluster = _kafka_cluster3_session
    for node in cluster.nodes:
        if node.pid is not None:
            cluster.resume(node.node_id)
    if any(node.pid is None for node in cluster.nodes):
        for node in cluster.nodes:
            if node.pid is None:
                cluster.restart(node.node_id)
    return cluster


_MARKERS = {
    "pg_base_dsn": "postgres",
    "kafka_bootstrap": "kafka",
    "broker_pool": "kafka",
    "kafka_cluster3_nodes": "kafka",
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests get their marker from the fixtures they use, so `-m "not kafka"` just works.
    for item in items:
        for fixture, marker in _MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
