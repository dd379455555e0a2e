"""Faults on the 3-node Apache Kafka cluster, PostgreSQL and three service processes.

Each scenario feeds the same sign-ins and findings as the embedded run (tests/e2e/scenario.py)
while a fault strikes, then compares the outcome with it field by field, and records
acknowledged writes, events lost, effects doubled and dead letters (0 for transient
faults), printed at the end of the run under "fault scenarios".
"""

import asyncio
import copy
import uuid
from datetime import UTC, datetime

from aiokafka.admin import AIOKafkaAdminClient

from shared import dlq
from shared.clock import LOCAL_TZ
from shared.events import decode, encode
from shared.kafka import KafkaTransport
from shared.settings import KafkaSettings
from shared.transport import Record
from tests.e2e.api import Api
from tests.e2e.conftest import FAULT_REPORT
from tests.e2e.scenario import Scenario, differences, lost_and_doubled
from tests.e2e.test_distributed import count_sign_ins
from tests.infra.postgres import _run_sync, create_database, drop_database
from tests.infra.stack import SERVICES, Stack


def transport_of(stack: Stack) -> KafkaTransport:
    env = stack.env()
    settings = KafkaSettings(
        bootstrap_servers=stack.bootstrap,
        topic_namespace=env["FRONTLINE_KAFKA_TOPIC_NAMESPACE"],
        replication_factor=3,
    )
    return KafkaTransport(settings, client_id=f"fault-{uuid.uuid4().hex[:6]}")


async def dead_letters(stack: Stack) -> int:
    transport = transport_of(stack)
    return sum([len(await dlq.read(transport, f"frontline.{s}.dlq")) for s in SERVICES])


async def leader_of(stack: Stack, topic: str, partition: int = 0) -> int:
    name = stack.env()["FRONTLINE_KAFKA_TOPIC_NAMESPACE"] + topic
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([name])
    finally:
        await admin.close()
    return next(p["leader"] for p in described["partitions"] if p["partition"] == partition)


async def survives(api: Api, expected: dict, name: str, fault) -> None:
    """Run the scenario with `fault(step)` between requests; the end must equal the
    embedded run's, with nothing lost, nothing doubled and no dead letter."""
    run = Scenario(api)
    await run.seed()
    before = api.acked
    await run.load(fault)
    acked = api.acked - before
    await api.settle(timeout=180)
    stored = await count_sign_ins(api, list(run.cadres.values()))
    await run.conclude()
    actual = await run.snapshot()
    lost, doubled = lost_and_doubled(actual, expected)
    want = len(run.sign_ins())
    lost, doubled = lost + max(0, want - stored), doubled + max(0, stored - want)
    dead = await dead_letters(api.stack)
    FAULT_REPORT.append(
        f"{name}: acknowledged writes {acked}, events lost {lost}, "
        f"effects doubled {doubled}, DLQ entries {dead}"
    )
    diffs = differences(actual, expected)
    assert not diffs, "\n".join(diffs)
    assert (lost, doubled, dead) == (0, 0, 0)


async def test_kill_9_of_the_partition_leader_under_load_then_its_restart(api: Api, expected):
    cluster, leader = api.stack.cluster, []

    async def fault(step: int) -> None:
        if step == 3:
            leader.append(await leader_of(api.stack, "frontline.assessment"))
            cluster.kill(leader[0])
        elif step == 20:
            cluster.restart(leader[0])

    await survives(api, expected, "partition leader kill -9, then restart", fault)
    assert all(cluster.pids.values())


async def test_the_broker_cut_off_behind_the_proxy_then_restored(api: Api, expected):
    cluster = api.stack.cluster

    async def fault(step: int) -> None:
        if step == 2:
            cluster.cut()
        elif step == 24:  # sign-ins and findings all answered 2xx meanwhile (Api.call)
            health = (await api.clients["assessment"].get("/assessment/health")).json()
            assert health["outbox"]["unsent"] >= 20
            cluster.restore()

    try:
        await survives(api, expected, "brokers cut off behind the proxy, then restored", fault)
    finally:
        cluster.restore()


async def test_services_started_while_the_broker_is_down(api: Api, expected):
    stack, cluster = api.stack, api.stack.cluster

    async def fault(step: int) -> None:
        if step == 2:
            cluster.cut()
            for s in ("assessment", "incentives"):
                stack.kill(s)
                stack.start(s)
            stack.wait_healthy(["assessment", "incentives"], timeout=90)
        elif step == 24:
            cluster.restore()

    try:
        await survives(api, expected, "services started while the broker is down", fault)
    finally:
        cluster.restore()


async def test_postgres_restarted_in_immediate_mode_mid_load(api_on_own_postgres: Api, expected):
    api = api_on_own_postgres
    api.retrying = True  # requests that meet the restart fail, and the phone sends them again

    async def fault(step: int) -> None:
        if step in (10, 30):
            api.stack.postgres.restart("immediate")

    await survives(api, expected, "PostgreSQL restarted (immediate) mid-load", fault)


async def test_a_dead_letter_replayed_after_newer_events_changes_nothing(api: Api):
    """A village party secretary's provincial honor: its award dead-lettered, the honor
    revoked meanwhile, then the award replayed. The revocation stands (entity versions):
    the eligibility is, field by field, the one without the honor."""
    run = Scenario(api)
    await run.seed()
    today = datetime.now(LOCAL_TZ).date()
    month = f"{today.year:04d}-{today.month:02d}"
    secretary = await api.call(
        "POST",
        "/registry/v1/cadres",
        json={
            "name": "village secretary",
            "phone": f"138{uuid.uuid4().int % 10**8:08d}",
            "category": "village_cadre",
            "position": "party_secretary",
        },
    )
    cadre, finance = secretary["id"], run.finance

    async def eligibility() -> dict:
        return await api.call(
            "GET", f"/incentives/v1/eligibility/{cadre}", params={"month": month}, as_=finance
        )

    honor = await api.call(
        "POST",
        "/registry/v1/honors",
        json={"cadre_id": cadre, "level": "province", "year": today.year - 1, "title": "优秀党员"},
    )
    await api.settle()
    awarded = await eligibility()
    assert "deputy_section_treatment" in {c["kind"] for c in awarded["components"]}
    transport = transport_of(api.stack)
    [award] = [
        m
        for m in await transport.read("frontline.registry")
        if m.key == honor["id"] and b"registry.honor.awarded" in m.value
    ]
    await api.call(
        "POST", f"/registry/v1/honors/{honor['id']}/revoke", json={"reason": "wrong person"}
    )
    await api.settle()
    revoked = await eligibility()
    assert differences(revoked, awarded)  # the honor mattered
    # The award as incentives would have dead-lettered it had it failed there at the time:
    # an event it never applied (a fresh event id, so its inbox does not know it), the
    # honor's first version, replayed after the revocation (a later version) was applied.
    env = decode(award.value)
    never_applied = encode(env.model_copy(update={"event_id": uuid.uuid4()}))
    group = f"{api.stack.env()['FRONTLINE_KAFKA_CLIENT_ID_PREFIX']}-incentives"
    headers = {
        "source_topic": "frontline.registry",
        "source_partition": str(award.partition),
        "source_offset": str(award.offset),
        "consumer_group": group,
        "error": "replayed by the fault suite",
    }
    await transport.start()
    try:
        await transport.publish(
            [Record("frontline.registry.dlq", award.key, never_applied, headers)]
        )
        [letter] = await dlq.entries(transport, "frontline.registry.dlq")
        at = (letter["dlq_partition"], letter["dlq_offset"])
        assert (
            await dlq.replay(transport, "frontline.registry.dlq", now=datetime.now(UTC), at=at) == 1
        )
    finally:
        await transport.stop()
    await api.settle()
    replayed = await eligibility()
    diffs = differences(replayed, revoked)
    FAULT_REPORT.append(
        f"DLQ replay after newer events: acknowledged writes 2, events lost 0, "
        f"effects doubled {len(diffs)}, DLQ entries 1 (the one replayed)"
    )
    assert not diffs, "\n".join(diffs)


async def test_a_service_on_an_empty_database_rebuilds_from_the_log(api: Api, expected):
    """incentives' database lost and recreated empty: the eligibility it rebuilds from the
    topics equals, field by field, the one it had (and the embedded run's)."""
    run = Scenario(api)
    await run.seed()
    await run.load()
    await run.conclude()
    before = await run.snapshot(lines=False)
    stack = api.stack
    stack.kill("incentives", sig=15)  # a clean stop: its group is empty at once
    name = stack.databases["incentives"]
    _run_sync(_recreate(stack.pg_base, name))
    stack.start("incentives")
    stack.wait_healthy(["incentives"])
    await api.settle(timeout=120)
    # A stipend batch is incentives' own record, not a projection: it is not in the log.
    # Health reports no lag until the rewound group has fetched: wait for the end state.
    deadline = asyncio.get_running_loop().time() + 90
    while (after := await run.snapshot(lines=False)) != before:
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(1)
    expected = copy.deepcopy(expected)
    for cadre in expected.values():
        cadre.pop("lines")
    diffs = differences(after, before) + differences(after, expected)
    FAULT_REPORT.append(
        f"rebuild from the log: eligibility of {len(after)} cadres, "
        f"{len(differences(after, before))} fields differ"
    )
    assert not diffs, "\n".join(diffs)


async def _recreate(base: str, name: str) -> None:
    await drop_database(base, name)
    await create_database(base, name)
