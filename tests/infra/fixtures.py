"""Pytest plugin: PostgreSQL databases and Kafka-protocol brokers for tests.

Loaded from tests/conftest.py with ``pytest_plugins = ["tests.infra.fixtures"]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import NamedTuple

import pytest
import pytest_asyncio

from tests.infra.kafka import broker_kinds, client_overrides, kafka_broker
from tests.infra.postgres import create_database, drop_database, postgres_server, unique_db_name


class Broker(NamedTuple):
    kind: str  # "noida", "tansu" or "external"
    bootstrap: str  # "host:port"
    overrides: dict[str, dict]  # {"producer": {...}, "consumer": {...}} aiokafka kwargs


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
def kafka_bootstrap(request) -> Iterator[Broker]:
    kind = request.param
    with kafka_broker(kind) as bootstrap:
        yield Broker(kind, bootstrap, client_overrides(kind))


_MARKERS = {"pg_base_dsn": "postgres", "kafka_bootstrap": "kafka"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests get their marker from the fixtures they use, so `-m "not kafka"` just works.
    for item in items:
        for fixture, marker in _MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
