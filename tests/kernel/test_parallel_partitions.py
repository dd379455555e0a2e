"""A poll's partitions applied side by side (ServiceSpec.parallel_partitions, on
PostgreSQL): order per key, one effect per event under redelivery, the poison event to the
DLQ, through Apache Kafka (three partitions per topic).
"""

from contextlib import asynccontextmanager

import httpx
import pytest

from shared.inbox import ConsumerRunner
from shared.runtime import build_app, settle
from shared.settings import KernelSettings, ServiceSettings
from tests.conftest import kafka_settings, transport_params
from tests.kernel import toy

pytestmark = pytest.mark.postgres
KEYS = [f"k{i}" for i in range(12)]


@pytest.fixture(params=[p for p in transport_params() if p != "local"])
def kernel(request, tmp_path, broker_pool) -> KernelSettings:
    broker = broker_pool.get(request.param.removeprefix("kafka-"))
    return KernelSettings(
        var_dir=tmp_path,
        relay_idle_seconds=0.05,
        consumer_retry_seconds=0.01,
        transport="kafka",
        kafka=kafka_settings(broker),
    )


@pytest.fixture
def side_by_side(monkeypatch) -> dict[str, int]:
    """The toy service opts in; counts how many events were being applied at once."""
    monkeypatch.setattr(toy.spec, "parallel_partitions", True)
    seen = {"now": 0, "most": 0}
    consume = ConsumerRunner._consume

    async def counting(self, m):
        seen["now"] += 1
        seen["most"] = max(seen["most"], seen["now"])
        try:
            return await consume(self, m)
        finally:
            seen["now"] -= 1

    monkeypatch.setattr(ConsumerRunner, "_consume", counting)
    return seen


@asynccontextmanager
async def running(kernel: KernelSettings, url: str):
    app = build_app(
        [toy.spec],
        kernel=kernel,
        service_settings={"toy": ServiceSettings(database_url=url, migrate_on_start=False)},
        workers=False,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield app, client


async def tallies(app) -> dict[str, tuple]:
    async with app.state.runtimes["toy"].transaction() as s:
        rows = (await s.execute(toy.Tally.__table__.select())).all()
    return {r.key: (r.count, r.last_seq, r.in_order) for r in rows}


async def test_partitions_side_by_side_keep_order_per_key_and_apply_once(
    kernel, pg_database_url, side_by_side
):
    async with running(kernel, pg_database_url) as (app, client):
        rt = app.state.runtimes["toy"]
        assert rt.runner.parallel_partitions
        for seq in range(1, 11):
            for key in KEYS:
                r = await client.post("/toy/v1/notes", json={"key": key, "seq": seq})
                assert r.status_code == 201
        # Everything is on the broker twice before the consumer starts (a relay that died
        # before marking), so its polls hold several partitions at once.
        async with rt.sessionmaker() as s:
            rows = (await s.execute(rt.relay._unsent().limit(None))).all()
        await rt.relay._publish(rows)
        assert await rt.relay.drain() == len(KEYS) * 10
        await rt.start()
        await settle(app, timeout=60)
        assert await tallies(app) == {k: (10, 10, True) for k in KEYS}
        assert (rt.runner.applied, rt.runner.skipped) == (len(KEYS) * 10, len(KEYS) * 10)
    assert side_by_side["most"] > 1


async def test_side_by_side_a_poison_event_goes_to_the_dlq_and_its_partition_goes_on(
    kernel, pg_database_url, side_by_side
):
    async with running(kernel, pg_database_url) as (app, client):
        rt = app.state.runtimes["toy"]
        for key in KEYS:
            await client.post("/toy/v1/notes", json={"key": key, "seq": 1})
        await client.post("/toy/v1/notes", json={"key": "k0", "seq": 2, "poison": True})
        for key in KEYS:
            await client.post("/toy/v1/notes", json={"key": key, "seq": 2})
        await rt.relay.drain()
        await rt.start()
        await settle(app, timeout=60)
        expected = {k: (2, 2, True) for k in KEYS}
        assert await tallies(app) == expected
        assert rt.runner.dead == 1
        assert app.state.transport.sent["frontline.toy.dlq"] == 1
