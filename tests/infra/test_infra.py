"""The test infrastructure itself, against real servers: nothing here is mocked."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import defaultdict

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.infra.kafka import RUNNING, Broker, create_topics
from tests.infra.postgres import (
    FORCE_THROWAWAY_ENV,
    create_database,
    drop_database,
    postgres_server,
    unique_db_name,
)


def test_unique_db_name_is_a_plain_identifier():
    name = unique_db_name("Sign-In test")
    assert name.startswith("fl_sign_in_test_") and name.isidentifier() and name.islower()
    assert unique_db_name("x") != unique_db_name("x")


async def test_postgres_round_trip_on_fresh_database(pg_database_url: str):
    engine = create_async_engine(pg_database_url)
    try:
        async with engine.begin() as conn:
            assert (
                await conn.scalar(
                    text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                )
                == 0
            )
            await conn.execute(text("CREATE TABLE t (id int PRIMARY KEY, name text)"))
            await conn.execute(text("INSERT INTO t VALUES (1, 'a'), (2, 'b')"))
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id, name FROM t ORDER BY id"))).all()
            db = await conn.scalar(text("SELECT current_database()"))
    finally:
        await engine.dispose()
    assert [tuple(r) for r in rows] == [(1, "a"), (2, "b")]
    assert pg_database_url.endswith(f"/{db}")


async def test_throwaway_cluster(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(FORCE_THROWAWAY_ENV, "1")
    with postgres_server() as base:
        assert not base.endswith(":5432")
        name = unique_db_name("throwaway")
        await create_database(base, name)
        conn = await asyncpg.connect(f"{base}/{name}")
        try:
            assert await conn.fetchval("SELECT 6 * 7") == 42
            assert await conn.fetchval("SELECT current_database()") == name
        finally:
            await conn.close()
        await drop_database(base, name)
    with pytest.raises(OSError):  # stopped on exit
        await asyncpg.connect(f"{base}/postgres", timeout=3)


def _kafka_children() -> list[int]:
    """Pids of Apache Kafka nodes whose parent is this pytest process."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == os.getpid() and b"kafka.Kafka" in argv:
            found.append(int(pid))
    return found


def _names(prefix: str) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"{prefix}-topic-{suffix}", f"{prefix}-group-{suffix}"


def _producer(broker: Broker) -> AIOKafkaProducer:
    # Production settings, minus what the broker under test cannot do.
    options = {"acks": "all", "enable_idempotence": True, **broker.overrides["producer"]}
    return AIOKafkaProducer(bootstrap_servers=broker.bootstrap, **options)


def _consumer(broker: Broker, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **broker.overrides["consumer"],
    )


async def _produce(broker: Broker, topic: str, messages: list[tuple[str, str]]) -> None:
    producer = _producer(broker)
    await producer.start()
    try:
        assert await producer.partitions_for(topic) == {0, 1, 2}
        for key, value in messages:
            await producer.send_and_wait(topic, value.encode(), key=key.encode())
    finally:
        await producer.stop()


async def _consume(consumer: AIOKafkaConsumer, count: int, timeout: float = 30) -> list:
    records: list = []
    async with asyncio.timeout(timeout):
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
    return records


def _messages(keys: int, per_key: int, start: int = 0) -> list[tuple[str, str]]:
    return [(f"k{k}", f"k{k}-{i}") for i in range(start, start + per_key) for k in range(keys)]


async def test_the_suite_broker_is_apache_kafka_started_once(kafka_bootstrap: Broker):
    if kafka_bootstrap.kind != "external":
        assert RUNNING[kafka_bootstrap.bootstrap] in _kafka_children()
        assert len(RUNNING) == 1


async def test_keyed_messages_keep_order_per_key(kafka_bootstrap: Broker):
    topic, group = _names("order")
    await create_topics(kafka_bootstrap.bootstrap, [topic], partitions=3)
    sent = _messages(keys=6, per_key=5)
    await _produce(kafka_bootstrap, topic, sent)

    consumer = _consumer(kafka_bootstrap, topic, group)
    await consumer.start()
    try:
        assert consumer.partitions_for_topic(topic) == {0, 1, 2}
        records = await _consume(consumer, len(sent))
        await consumer.commit()
    finally:
        await consumer.stop()

    by_key: dict[str, list[str]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for r in records:
        by_key[r.key.decode()].append(r.value.decode())
        partitions[r.key.decode()].add(r.partition)
    assert dict(by_key) == {f"k{k}": [f"k{k}-{i}" for i in range(5)] for k in range(6)}
    assert all(len(p) == 1 for p in partitions.values())  # a key stays on one partition
    assert len(set().union(*partitions.values())) > 1  # keys are spread over partitions


async def test_restarted_consumer_resumes_after_commit(kafka_bootstrap: Broker):
    topic, group = _names("resume")
    await create_topics(kafka_bootstrap.bootstrap, [topic], partitions=3)
    first, second = _messages(3, 4), _messages(3, 4, start=4)

    await _produce(kafka_bootstrap, topic, first)
    consumer = _consumer(kafka_bootstrap, topic, group)
    await consumer.start()
    try:
        assert len(await _consume(consumer, len(first))) == len(first)
        await consumer.commit()
    finally:
        await consumer.stop()

    await _produce(kafka_bootstrap, topic, second)
    consumer = _consumer(kafka_bootstrap, topic, group)
    await consumer.start()
    try:
        records = await _consume(consumer, len(second))
        extra = await consumer.getmany(timeout_ms=1000)
    finally:
        await consumer.stop()
    assert sorted(r.value.decode() for r in records) == sorted(v for _, v in second)
    assert not any(extra.values())


async def test_three_node_cluster_keeps_acknowledged_writes_when_the_leader_is_killed(
    kafka_cluster3_nodes,
):
    """RF 3, min.insync.replicas 2: kill -9 of a partition's leader loses no acknowledged
    record, writes go on with two nodes, and the node rejoins after a restart."""
    cluster = kafka_cluster3_nodes
    broker = Broker("apache", cluster.bootstrap, {"producer": {}, "consumer": {}}, 3)
    topic, group = _names("ha")
    await create_topics(cluster.bootstrap, [topic], partitions=1, replication_factor=3)
    await _produce_one_partition(broker, topic, _messages(1, 5))
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        (partition,) = described["partitions"]
        assert sorted(partition["replicas"]) == [1, 2, 3]
        leader = partition["leader"]
    finally:
        await admin.close()
    cluster.kill(leader)
    await _produce_one_partition(broker, topic, _messages(1, 5, start=5))
    consumer = _consumer(broker, topic, group)
    await consumer.start()
    try:
        records = await _consume(consumer, 10, timeout=60)
    finally:
        await consumer.stop()
    assert [r.value.decode() for r in records] == [f"k0-{i}" for i in range(10)]
    cluster.restart(leader)
    assert cluster.pids[leader] is not None


async def _produce_one_partition(broker: Broker, topic: str, messages) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value.encode(), key=key.encode())
    finally:
        await producer.stop()
