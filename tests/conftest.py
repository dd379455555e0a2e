"""Fixtures every test can use: a frozen clock, a backend (SQLite, PostgreSQL) and a system.

A test module narrows the services it starts by overriding the `services` fixture.
"""

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import pytest_asyncio

from services.main import SERVICES, specs
from shared.clock import FrozenClock
from shared.runtime import build_app
from shared.settings import KafkaSettings, KernelSettings, ServiceSettings
from tests.infra.kafka import Broker, broker_kinds
from tests.infra.postgres import create_database, drop_database, unique_db_name
from tests.support import ADMIN, DEFAULT_NOW, System

pytest_plugins = ["tests.infra.fixtures"]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(DEFAULT_NOW)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request) -> str:
    return request.param


@pytest.fixture
def services() -> list[str]:
    return list(SERVICES)


@pytest.fixture
def kernel_settings(tmp_path) -> KernelSettings:
    return KernelSettings(
        var_dir=tmp_path,
        bootstrap_admin_username=ADMIN[0],
        bootstrap_admin_password=ADMIN[1],
        relay_idle_seconds=0.05,
        consumer_retry_seconds=0.01,
        run_scheduler=False,
    )


@pytest_asyncio.fixture(scope="session")
async def pg_service_dbs(pg_base_dsn) -> AsyncIterator[dict[str, str]]:
    """One PostgreSQL database per service for the whole session (emptied before each test)."""
    names = {s: unique_db_name(s) for s in SERVICES}
    for name in names.values():
        await create_database(pg_base_dsn, name)
    yield {s: f"{pg_base_dsn}/{n}" for s, n in names.items()}
    for name in names.values():
        await drop_database(pg_base_dsn, name)


@pytest.fixture
def service_settings(request, backend, services) -> dict[str, ServiceSettings]:
    """Where each service keeps its data: SQLite files under tmp_path, or PostgreSQL."""
    if backend == "sqlite":
        return {}
    dbs = request.getfixturevalue("pg_service_dbs")
    return {
        spec.name: spec.settings_cls(
            database_url=dbs[spec.name].replace("postgresql://", "postgresql+asyncpg://", 1)
        )
        for spec in specs(services)
    }


async def _empty(url: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'alembic_version'"
        )
        if tables:
            names = ", ".join(f'"{t["tablename"]}"' for t in tables)
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def system(services, service_settings, kernel_settings, clock) -> AsyncIterator[System]:
    for settings in service_settings.values():
        await _empty(settings.database_url)
    app = build_app(
        specs(services), kernel=kernel_settings, clock=clock, service_settings=service_settings
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://frontline") as client:
            yield System(app, client, clock)


def transport_params() -> list:
    """ "local" plus "kafka-apache" (or "kafka-external"), marked kafka."""
    kafka = [pytest.param(f"kafka-{k}", marks=pytest.mark.kafka) for k in broker_kinds()]
    return ["local", *kafka]


def kafka_settings(broker: Broker) -> KafkaSettings:
    """Client settings for one test: its own topic namespace and group names."""
    run = uuid.uuid4().hex[:8]
    consumer = broker.overrides["consumer"]
    return KafkaSettings(
        bootstrap_servers=broker.bootstrap,
        partitions=3,
        replication_factor=broker.replication_factor,
        min_insync_replicas=min(2, broker.replication_factor),
        session_timeout_ms=consumer["session_timeout_ms"],
        heartbeat_interval_ms=consumer["heartbeat_interval_ms"],
        fetch_max_wait_ms=consumer["fetch_max_wait_ms"],
        topic_namespace=f"t{run}.",
        client_id_prefix=f"t{run}",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Keywords also hold directory names (a checkout in ".../kafka/"): count by markers.
    for item in items:
        item.user_properties.append(("markers", [m.name for m in item.iter_markers()]))


def pytest_terminal_summary(terminalreporter) -> None:
    """Say which real servers the run exercised, so a green run shows it was not hollow."""
    passed = [
        set(dict(r.user_properties).get("markers", ()))
        for r in terminalreporter.stats.get("passed", [])
    ]
    kafka = "Apache Kafka" if broker_kinds() == ["apache"] else "Kafka (external)"
    counts = {
        "PostgreSQL": sum("postgres" in m for m in passed),
        kafka: sum("kafka" in m for m in passed),
        "three processes (e2e)": sum("e2e" in m for m in passed),
    }
    line = ", ".join(f"{name}: {n} passed" for name, n in counts.items())
    terminalreporter.write_line(f"real servers exercised: {line}")
