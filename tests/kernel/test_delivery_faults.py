"""Delivery under faults, against real PostgreSQL/SQLite and Apache Kafka (issue 10):
transient failures are waited out (never dead-lettered), unreadable records do not jam a
partition, a service starts and takes writes without the broker, a send that fails
part-way never reorders a key, and offsets lost to retention are reported.
"""

import asyncio
import contextlib
from collections import defaultdict

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.errors import KafkaTimeoutError

from shared.devstack.kafka import free_port, kafka_cluster
from shared.events import decode
from shared.kafka import KafkaTransport
from shared.runtime import build_app, settle
from shared.settings import KernelSettings, ServiceSettings
from tests.conftest import kafka_settings, transport_params
from tests.kernel import toy
from tests.kernel.test_delivery import outcomes


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def toy_db(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'toy.sqlite'}"
    return request.getfixturevalue("pg_database_url")


BASE = dict(relay_idle_seconds=0.05, consumer_retry_seconds=0.01, consumer_backoff_max_seconds=0.3)


@pytest.fixture(params=transport_params())
def kernel(request, tmp_path, broker_pool) -> KernelSettings:
    if request.param == "local":
        return KernelSettings(var_dir=tmp_path, **BASE)
    broker = broker_pool.get(request.param.removeprefix("kafka-"))
    # A short max.poll.interval: a stall longer than it must not cost the group membership.
    kafka = kafka_settings(broker).model_copy(update={"max_poll_interval_ms": 1500})
    return KernelSettings(var_dir=tmp_path, **BASE, transport="kafka", kafka=kafka)


@pytest.fixture
def kafka_kernel(tmp_path, kafka_bootstrap) -> KernelSettings:
    return KernelSettings(
        var_dir=tmp_path, **BASE, transport="kafka", kafka=kafka_settings(kafka_bootstrap)
    )


@contextlib.asynccontextmanager
async def running(kernel: KernelSettings, url: str, *, transport=None, workers: bool = True):
    app = build_app(
        [toy.spec],
        kernel=kernel,
        transport=transport,
        service_settings={"toy": ServiceSettings(database_url=url, migrate_on_start=False)},
        workers=workers,
    )
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        async with client:
            yield app, client


async def until(condition, timeout: float = 180.0) -> None:
    """Wait for a state the workers reach on their own (polled: they signal nothing)."""
    async with asyncio.timeout(timeout):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def tally(app, key: str):
    async with app.state.runtimes["toy"].transaction() as s:
        table = toy.Tally.__table__
        return (await s.execute(table.select().where(table.c.key == key))).first()


async def note(client, key: str, seq: int) -> None:
    r = await client.post("/toy/v1/notes", json={"key": key, "seq": seq})
    assert r.status_code == 201, r.text


async def test_a_database_outage_is_waited_out_in_order_and_never_dead_lettered(
    kernel, toy_db, monkeypatch
):
    async with running(kernel, toy_db) as (app, client):
        rt = app.state.runtimes["toy"]
        runner = rt.runner
        await note(client, "warm", 1)
        await settle(app, timeout=120)
        kafka = getattr(runner.consumer, "consumer", None)  # the aiokafka member, if any
        generation = kafka._coordinator.generation if kafka else None

        retried = (await outcomes(client))["retried"]
        monkeypatch.setattr(toy, "OUTAGE", True)
        await note(client, "t", 1)
        await note(client, "t", 2)

        async def stalled_long() -> bool:
            # Longer than max.poll.interval.ms (1.5 s) on Kafka: 12 retries, backing off
            # 0.01, 0.02, ... up to 0.3 s.
            return runner.stall is not None and runner.retries >= 12

        await until(stalled_long)
        assert (await outcomes(client))["retried"] - retried >= 12
        health = (await client.get("/toy/health")).json()
        assert health["consumer"].startswith("stalled since ")
        assert " on frontline.toy@" in health["consumer"]
        assert runner.dead == 0 and await tally(app, "t") is None
        if kafka:  # still the same member of its group: no rebalance, no re-join
            assert runner.consumer.consumer is kafka
            assert kafka._coordinator.generation == generation and kafka.assignment()

        monkeypatch.setattr(toy, "OUTAGE", False)
        await settle(app, timeout=120)
        row = await tally(app, "t")
        assert (row.count, row.last_seq, row.in_order) == (2, 2, True)
        assert runner.dead == 0 and app.state.transport.sent["frontline.toy.dlq"] == 0
        assert (await client.get("/toy/health")).json()["consumer"] == "ok"


async def test_an_unreadable_key_or_a_null_header_is_dead_lettered_not_a_jam(kafka_kernel, toy_db):
    async with running(kafka_kernel, toy_db) as (app, client):
        transport = app.state.transport
        topic = transport.real("frontline.toy")
        raw = AIOKafkaProducer(bootstrap_servers=kafka_kernel.kafka.bootstrap_servers)
        await raw.start()
        try:
            bad_key = b"\xff\xfe-key"
            await raw.send_and_wait(topic, b'{"x": 1}', key=bad_key)
            await raw.send_and_wait(topic, b"{}", key=b"k", headers=[("trace", None)])
        finally:
            await raw.stop()
        await note(client, "after", 1)
        runner = app.state.runtimes["toy"].runner

        async def both_dead() -> bool:
            return runner.dead == 2

        await until(both_dead)
        await settle(app, timeout=120)
        assert (await tally(app, "after")).count == 1
        dead = await transport.read("frontline.toy.dlq")
        errors = sorted(m.headers["error"] for m in dead)
        assert errors == [
            "unreadable record: header 'trace' is null",
            "unreadable record: key is not UTF-8",
        ]
        # The dead letter keeps the record's own key bytes.
        [letter] = [m for m in dead if "key is not UTF-8" in m.headers["error"]]
        assert letter.key.encode(errors="surrogateescape") == bad_key


async def test_a_service_starts_and_takes_writes_without_the_broker_then_delivers(toy_db, tmp_path):
    port = free_port()  # nothing listens here yet
    kafka = kafka_settings_for(f"127.0.0.1:{port}")
    kernel = KernelSettings(var_dir=tmp_path, **BASE, transport="kafka", kafka=kafka)
    with contextlib.ExitStack() as broker:  # stopped after the app
        async with running(kernel, toy_db) as (app, client):
            await writes_without_broker_then_delivery(app, client, broker, port)


async def writes_without_broker_then_delivery(app, client, broker, port: int) -> None:
    for seq in (1, 2, 3):
        await note(client, "offline", seq)
    r = await client.get("/toy/health")
    health = r.json()
    assert r.status_code == 200 and health["status"] == "ok"  # HTTP stays ready
    assert health["broker"].startswith("unreachable since ")
    assert health["outbox"]["unsent"] == 3
    await note(client, "offline", 4)
    assert (await client.get("/toy/health")).json()["outbox"]["unsent"] == 4  # growing

    broker.enter_context(kafka_cluster(1, ports=[port]))
    await settle(app, timeout=120)
    row = await tally(app, "offline")
    assert (row.count, row.last_seq, row.in_order) == (4, 4, True)
    health = (await client.get("/toy/health")).json()
    assert health["broker"] == "ok" and health["outbox"]["unsent"] == 0
    assert health["consumer"] == "ok"


def kafka_settings_for(bootstrap: str):
    from tests.infra.kafka import Broker, client_overrides

    return kafka_settings(Broker("apache", bootstrap, client_overrides("apache")))


class FailsOnce(KafkaTransport):
    """The real transport, whose send of one chosen record fails once (as a send whose
    batch timed out would): the records around it are sent for real."""

    def __init__(self, *args, fail_value: bytes, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail_value, self.failed = fail_value, False

    async def _send(self, producer, r):
        if not self.failed and decode(r.value).payload["seq"] == self.fail_value:
            self.failed = True
            await asyncio.sleep(0.2)  # the others' sends land meanwhile
            raise KafkaTimeoutError("injected: this send timed out")
        return await super()._send(producer, r)


async def test_a_publish_that_fails_part_way_never_lets_a_later_event_of_a_key_overtake(
    kafka_kernel, toy_db
):
    transport = FailsOnce(kafka_kernel.kafka, client_id="flaky", fail_value=2)
    async with running(kafka_kernel, toy_db, transport=transport, workers=False) as (app, client):
        for seq in range(1, 6):
            for key in ("a", "b"):
                await note(client, key, seq)
        relay = app.state.runtimes["toy"].relay
        with pytest.raises(KafkaTimeoutError):
            await relay.run_once()
        assert transport.failed
        assert await relay.drain() == 10
        log = await read_topic(kafka_kernel, transport.real("frontline.toy"))
        for key in ("a", "b"):
            seqs = log[key]
            first = [seqs.index(n) for n in range(1, 6)]
            assert first == sorted(first), f"{key}: {seqs}"  # no seq before an earlier one
        # The key whose send failed left only its prefix the first time, then the whole.
        assert {tuple(v) for v in log.values()} == {(1, 1, 2, 3, 4, 5), (1, 2, 3, 4, 5) * 2}
        await app.state.runtimes["toy"].start()  # now the consumer applies them
        await settle(app, timeout=120)
        for key in ("a", "b"):
            row = await tally(app, key)
            assert (row.count, row.last_seq, row.in_order) == (5, 5, True)


async def read_topic(kernel: KernelSettings, topic: str) -> dict[str, list[int]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kernel.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = await consumer.end_offsets(tps)
        out: dict[str, list[int]] = defaultdict(list)
        async with asyncio.timeout(30):
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        out[r.key.decode()].append(decode(r.value).payload["seq"])
        return out
    finally:
        await consumer.stop()


async def test_a_committed_offset_lost_to_retention_is_reported_loudly(kafka_kernel, toy_db):
    async with running(kafka_kernel, toy_db) as (app, client):
        await note(client, "r", 1)
        await settle(app)  # applied and committed
    # While the service is down, events arrive and retention deletes them unread.
    async with running(kafka_kernel, toy_db, workers=False) as (app, client):
        for seq in (2, 3, 4):
            await note(client, "r", seq)
        await app.state.runtimes["toy"].relay.drain()
        topic = app.state.transport.real("frontline.toy")
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_kernel.kafka.bootstrap_servers)
        await admin.start()
        try:
            [described] = await admin.describe_topics([topic])
            tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
            probe = AIOKafkaConsumer(bootstrap_servers=kafka_kernel.kafka.bootstrap_servers)
            await probe.start()
            try:
                ends = await probe.end_offsets(tps)
            finally:
                await probe.stop()
            await admin.delete_records(
                {tp: RecordsToDelete(before_offset=ends[tp]) for tp in tps if ends[tp]}
            )
        finally:
            await admin.close()
    async with running(kafka_kernel, toy_db) as (app, client):
        await note(client, "r", 5)
        runner = app.state.runtimes["toy"].runner

        async def gap_seen() -> bool:
            return bool(runner.gaps)

        await until(gap_seen)
        [gap] = runner.gaps
        assert gap["topic"] == "frontline.toy" and gap["lost"] == 3
        health = (await client.get("/toy/health")).json()
        assert health["consumer"].startswith("events lost to retention")
        assert health["consumer_gaps"] == runner.gaps
        await settle(app, timeout=120)
        row = await tally(app, "r")
        assert (row.count, row.last_seq) == (2, 5)  # 2, 3, 4 were never seen
