"""Rebuild from the log: a service started on an empty database reads every topic from its
start and reaches the state it had; topics are created compacted or with a retention.
On the local bus and on Apache Kafka.
"""

import asyncio

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.runtime import settle
from tests.kernel import toy
from tests.kernel.test_delivery import kernel, running  # noqa: F401 (fixtures)


async def tallies(app) -> dict[str, tuple]:
    async with app.state.runtimes["toy"].transaction() as s:
        rows = (await s.execute(toy.Tally.__table__.select())).all()
    return {r.key: (r.count, r.last_seq, r.in_order) for r in rows}


async def read_up_to(app, n: int) -> None:
    runner = app.state.runtimes["toy"].runner
    for _ in range(600):  # give up after a minute
        if runner.seen["frontline.toy"] >= n:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"read {runner.seen['frontline.toy']} of {n}")


async def test_a_service_on_an_empty_database_rebuilds_from_the_log(kernel, tmp_path):  # noqa: F811
    first = f"sqlite+aiosqlite:///{tmp_path / 'first.sqlite'}"
    async with running(kernel, first) as (app, client):
        for seq in range(1, 6):
            for key in ("a", "b", "c"):
                await client.post("/toy/v1/notes", json={"key": key, "seq": seq})
        await settle(app, timeout=60)
        before = await tallies(app)
    assert before == {k: (5, 5, True) for k in "abc"}
    # Same group, same topics, its committed offsets at the end; the database is new.
    empty = f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.sqlite'}"
    async with running(kernel, empty) as (app, client):
        await client.post("/toy/v1/notes", json={"key": "a", "seq": 6})
        await settle(app, timeout=60)
        # settle counts what this process published; the log holds 15 more before it.
        await read_up_to(app, 16)
        assert await tallies(app) == {**before, "a": (6, 6, True)}
    # Restarted on it (no longer empty): it goes on from its committed offsets.
    async with running(kernel, empty) as (app, client):
        await client.post("/toy/v1/notes", json={"key": "a", "seq": 7})
        await settle(app, timeout=60)
        runner = app.state.runtimes["toy"].runner
        assert await tallies(app) == {**before, "a": (7, 7, True)}
        assert (runner.seen["frontline.toy"], runner.skipped) == (1, 0)


async def test_topics_are_created_compacted_or_with_a_retention(kernel, tmp_path):  # noqa: F811
    if kernel.transport != "kafka":
        return  # the local bus has no topic configs: shared/prune.py does its retention
    async with running(kernel, f"sqlite+aiosqlite:///{tmp_path / 't.sqlite'}") as (_, client):
        # Topics are created when the broker is first reached (the health check pings it).
        assert (await client.get("/toy/health")).json()["broker"] == "ok"
    ns, k = kernel.kafka.topic_namespace, kernel.kafka
    admin = AIOKafkaAdminClient(bootstrap_servers=k.bootstrap_servers)
    await admin.start()
    try:
        names = ["frontline.registry", "frontline.assessment", "frontline.registry.dlq"]
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, ns + n) for n in names]
        )
    finally:
        await admin.close()
    got = {res[3].removeprefix(ns): {c[0]: c[1] for c in res[4]} for res in response.resources}
    assert got["frontline.registry"]["cleanup.policy"] == "compact"
    assert got["frontline.assessment"]["cleanup.policy"] == "delete"
    assert got["frontline.assessment"]["retention.ms"] == str(k.retention_ms)
    assert got["frontline.registry.dlq"]["retention.ms"] == str(k.dlq_retention_ms)
