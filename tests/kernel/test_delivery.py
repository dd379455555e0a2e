"""Outbox, relay, inbox and DLQ: the delivery guarantees of DESIGN.md §2, on SQLite and
PostgreSQL, through the local bus and through both Kafka test brokers.
"""

import asyncio
from collections import Counter
from contextlib import asynccontextmanager

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from shared import dlq
from shared.events import decode
from shared.outbox import OUTBOX, Relay
from shared.runtime import build_app, settle
from shared.settings import KernelSettings, ServiceSettings
from shared.transport import Record
from tests.conftest import kafka_settings, transport_params
from tests.kernel import toy


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def toy_db(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'toy.sqlite'}"
    return request.getfixturevalue("pg_database_url")


@pytest.fixture(params=transport_params())
def kernel(request, tmp_path, broker_pool) -> KernelSettings:
    base = dict(var_dir=tmp_path, relay_idle_seconds=0.05, consumer_retry_seconds=0.01)
    if request.param == "local":
        return KernelSettings(**base)
    broker = broker_pool.get(request.param.removeprefix("kafka-"))
    return KernelSettings(**base, transport="kafka", kafka=kafka_settings(broker))


@asynccontextmanager
async def running(kernel: KernelSettings, url: str, *, workers: bool = True):
    app = build_app(
        [toy.spec],
        kernel=kernel,
        service_settings={"toy": ServiceSettings(database_url=url, migrate_on_start=False)},
        workers=workers,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield app, client


async def tally(app, key: str):
    async with app.state.runtimes["toy"].transaction() as s:
        table = toy.Tally.__table__
        return (await s.execute(table.select().where(table.c.key == key))).first()


async def test_redelivery_after_relay_dies_before_marking_counts_once(kernel, toy_db):
    async with running(kernel, toy_db, workers=False) as (app, client):
        assert (await client.post("/toy/v1/notes", json={"key": "a", "seq": 1})).status_code == 201
        rt = app.state.runtimes["toy"]
        # The relay published, then died before marking: the same rows go out again.
        async with rt.sessionmaker() as s:
            rows = (await s.execute(rt.relay._unsent())).all()
        assert len(rows) == 1
        await rt.relay._publish(rows)
        assert await rt.relay.drain() == 1
        assert app.state.transport.sent["frontline.toy"] == 2
        await rt.start()  # now the consumer runs
        await settle(app)
        row = await tally(app, "a")
        assert (row.count, row.last_seq) == (1, 1)
        assert rt.runner.applied == 1 and rt.runner.skipped == 1


async def test_rolled_back_change_publishes_nothing(kernel, toy_db):
    async with running(kernel, toy_db) as (app, client):
        r = await client.post(
            "/toy/v1/notes", json={"key": "b", "seq": 1, "fail_after_write": True}
        )
        assert r.status_code == 409 and r.json()["code"] == "toy_failure"
        await client.post("/toy/v1/notes", json={"key": "c", "seq": 1})
        await settle(app)
        assert await tally(app, "b") is None
        assert (await tally(app, "c")).count == 1
        async with app.state.runtimes["toy"].transaction() as s:
            keys = (await s.execute(select(OUTBOX.c.key))).scalars().all()
        assert keys == ["c"]


async def test_order_per_key_holds(kernel, toy_db):
    async with running(kernel, toy_db) as (app, client):
        for seq in range(1, 31):
            for key in ("k1", "k2", "k3", "k4"):
                await client.post("/toy/v1/notes", json={"key": key, "seq": seq})
        await settle(app, timeout=60)
        for key in ("k1", "k2", "k3", "k4"):
            row = await tally(app, key)
            assert (row.count, row.last_seq, row.in_order) == (30, 30, True)


@pytest.mark.postgres
async def test_two_relays_on_one_postgresql_database_publish_each_row_once_in_order(
    pg_database_url, tmp_path
):
    """Replicas' relays race on one outbox: the advisory lock and SKIP LOCKED of the claim
    (one statement that also marks the rows sent) let each row out once, by id per key."""
    kernel = KernelSettings(var_dir=tmp_path, relay_idle_seconds=0.05)
    async with running(kernel, pg_database_url, workers=False) as (app, client):
        for seq in range(1, 11):
            for key in ("k1", "k2", "k3", "k4"):
                await client.post("/toy/v1/notes", json={"key": key, "seq": seq})
        rt = app.state.runtimes["toy"]
        relays = [
            Relay("toy", rt.sessionmaker, app.state.transport, rt.clock, batch_size=3)
            for _ in range(3)
        ]
        sent = await asyncio.gather(*(r.drain() for _ in range(4) for r in relays))
        assert sum(sent) + await relays[0].drain() == 40
        assert app.state.transport.sent["frontline.toy"] == 40
        seqs: dict[str, list[int]] = {}
        for m in await app.state.transport.read("frontline.toy"):
            seqs.setdefault(m.key, []).append(decode(m.value).payload["seq"])
        assert seqs == {key: list(range(1, 11)) for key in ("k1", "k2", "k3", "k4")}
        async with rt.transaction() as s:
            unsent = await s.scalar(
                select(func.count()).select_from(OUTBOX).where(OUTBOX.c.published_at.is_(None))
            )
        assert unsent == 0


async def outcomes(client) -> Counter:
    """The toy consumer's events metric by outcome (the counters belong to the process)."""
    text = (await client.get("/toy/metrics")).text
    counts: Counter = Counter()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "frontline_events_total":
                counts[s.labels["outcome"]] += s.value
    return counts


async def test_poison_event_goes_to_dlq_and_the_next_is_handled(kernel, toy_db):
    async with running(kernel, toy_db) as (app, client):
        before = await outcomes(client)
        await client.post("/toy/v1/notes", json={"key": "p", "seq": 1, "poison": True})
        await client.post("/toy/v1/notes", json={"key": "p", "seq": 2})
        await settle(app)
        runner = app.state.runtimes["toy"].runner
        assert runner.dead == 1
        row = await tally(app, "p")
        assert (row.count, row.last_seq) == (1, 2)
        assert app.state.transport.sent["frontline.toy.dlq"] == 1
        if kernel.transport == "local":
            [dead] = await app.state.transport.read("frontline.toy.dlq")
            assert decode(dead.value).payload["poison"] is True
            assert "poison note" in dead.headers["error"]
        after = await outcomes(client)
        attempts = kernel.consumer_max_attempts
        assert after["failed"] - before["failed"] == attempts
        assert after["dead"] - before["dead"] == 1 and after["applied"] - before["applied"] == 1


async def test_undecodable_message_goes_to_dlq(kernel, toy_db):
    async with running(kernel, toy_db) as (app, client):
        await app.state.transport.publish([Record("frontline.toy", "x", b"not json")])
        await client.post("/toy/v1/notes", json={"key": "x", "seq": 1})
        await settle(app)
        assert app.state.runtimes["toy"].runner.dead == 1
        assert (await tally(app, "x")).count == 1


async def test_outbox_rows_are_marked_after_publishing(kernel, toy_db):
    async with running(kernel, toy_db) as (app, client):
        for seq in (1, 2, 3):
            await client.post("/toy/v1/notes", json={"key": "m", "seq": seq})
        await settle(app)
        async with app.state.runtimes["toy"].transaction() as s:
            unsent = await s.scalar(
                select(func.count()).select_from(OUTBOX).where(OUTBOX.c.published_at.is_(None))
            )
        assert unsent == 0
        health = (await client.get("/toy/health")).json()
        assert health["outbox"]["unsent"] == 0 and health["database"] == "ok"


async def test_dead_letter_can_be_inspected_and_replayed_after_a_fix(kernel, toy_db, monkeypatch):
    async with running(kernel, toy_db) as (app, client):
        await client.post("/toy/v1/notes", json={"key": "r", "seq": 1, "poison": True})
        await settle(app)
        transport = app.state.transport
        [entry] = [dlq.describe(m) for m in await dlq.read(transport, "frontline.toy.dlq")]
        assert entry["type"] == "toy.note.added" and entry["source_topic"] == "frontline.toy"
        assert "poison note" in entry["error"]
        assert await tally(app, "r") is None
        monkeypatch.setattr(toy, "POISON_IS_FATAL", False)  # the fix is deployed
        assert await dlq.replay(transport, "frontline.toy.dlq", now=app.state.clock.now()) == 1
        await settle(app)
        assert (await tally(app, "r")).count == 1
        # Replaying again changes nothing: the inbox knows the event id.
        await dlq.replay(transport, "frontline.toy.dlq", now=app.state.clock.now())
        await settle(app)
        assert (await tally(app, "r")).count == 1


async def test_a_write_that_fails_at_commit_is_never_answered_201(kernel, toy_db):
    async with running(kernel, toy_db) as (app, client):
        r = await client.post("/toy/v1/orphans")
        assert r.status_code == 409 and r.json()["code"] == "integrity_conflict"
        await settle(app)
        async with app.state.runtimes["toy"].transaction() as s:
            assert await s.scalar(select(func.count()).select_from(toy.Child)) == 0
            assert await s.scalar(select(func.count()).select_from(OUTBOX)) == 0


async def test_metrics_show_lag_per_topic_and_partition_once_caught_up(kernel, toy_db):
    async with running(kernel, toy_db) as (app, client):
        for seq in range(3):
            r = await client.post("/toy/v1/notes", json={"key": f"p{seq}", "seq": seq})
            assert r.status_code == 201
        await settle(app)
        text = (await client.get("/toy/metrics")).text
        [lag] = [
            f for f in text_string_to_metric_families(text) if f.name == "frontline_consumer_lag"
        ]
        partitions = {(s.labels["topic"], int(s.labels["partition"])): s.value for s in lag.samples}
        assert partitions and all(v == 0 for v in partitions.values())
        # Its own topic, and the registry's (every service keeps users' token versions) once
        # a fetch has said how far it goes.
        topics = {t for t, _ in partitions}
        assert "frontline.toy" in topics and topics <= {"frontline.toy", "frontline.registry"}
        expected = kernel.kafka.partitions if kernel.transport == "kafka" else 1
        # The partitions fetched so far (the notes' keys may all hash to one), each by number.
        toy = {p for t, p in partitions if t == "frontline.toy"}
        assert toy and toy <= set(range(expected))
