"""DESIGN.md §2 guarantees with three real processes, PostgreSQL and the 3-node Kafka cluster
(the broker faults are in test_faults.py)."""

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
from aiokafka import AIOKafkaProducer

from tests.e2e.api import Api, last_ended_week, sign_in, week_label
from tests.e2e.scenario import Scenario, differences
from tests.infra.stack import ROOT

DAYS = range(2, 7)  # Wednesday .. Sunday of the week: five days
NIGHTS = range(2, 6)  # Wednesday .. Saturday evenings: four nights


async def seed(api: Api):
    """A county, a township, a village with its fence, two posted cadres and their users."""
    monday = last_ended_week(datetime.now(UTC))
    county = await api.unit("county", None)
    town = await api.unit("township", county["id"])
    village = await api.unit(
        "village", town["id"], geofence={"lat": 25.1, "lon": 105.47, "radius_m": 800}
    )
    start = monday - timedelta(days=40)
    good = await api.posted_cadre(village["id"], "first_secretary", start, "first_secretary")
    short = await api.posted_cadre(village["id"], "member", start, "resident_cadre")
    tokens = {c["id"]: await api.user(["cadre"], cadre_id=c["id"]) for c in (good, short)}
    await api.settle()
    return monday, good, short, tokens


def presence_items(cadre_id: str, monday, days, nights) -> list[dict]:
    items = [sign_in(cadre_id, monday + timedelta(days=d), 10) for d in days]
    items += [sign_in(cadre_id, monday + timedelta(days=d), 21, 30) for d in nights]
    return items


async def test_the_whole_chain_from_posting_to_stipend_batch(api: Api):
    monday, good, short, tokens = await seed(api)
    for cadre, days in ((good, DAYS), (short, range(2, 6))):  # one day short
        for item in presence_items(cadre["id"], monday, days, NIGHTS):
            body = await api.call(
                "POST", "/assessment/v1/sign-ins", json=item, as_=tokens[cadre["id"]]
            )
            assert body["status"] == "accepted", body
    week = week_label(monday)
    closing = {**api.admin, "X-Request-ID": "e2e-close-week"}
    closed = await api.call("POST", f"/assessment/v1/weeks/{week}/close", as_=closing)
    assert closed["week"] == week and closed["non_compliant"] >= 1
    await api.settle()

    sunday = monday + timedelta(days=6)
    month = f"{sunday.year:04d}-{sunday.month:02d}"
    entries = await api.call("GET", "/assessment/v1/negative-list", params={"month": month})
    mine = [e for e in entries["items"] if e["subject_id"] in (good["id"], short["id"])]
    assert [(e["subject_id"], e["reason"], e["status"]) for e in mine] == [
        (short["id"], "presence_week", "active")
    ]
    actions = await api.call(
        "GET", "/assessment/v1/accountability-actions", params={"cadre_id": short["id"]}
    )
    assert [(a["rung"], a["status"], a["count"]) for a in actions["items"]] == [
        ("study_class", "pending", 1)
    ]

    finance = await api.user(["finance"])
    eligible = {
        c["id"]: await api.call(
            "GET", f"/incentives/v1/eligibility/{c['id']}", params={"month": month}, as_=finance
        )
        for c in (good, short)
    }
    assert eligible[good["id"]]["deductions"] == []
    kinds = sorted(d["kind"] for d in eligible[short["id"]]["deductions"])
    assert kinds == ["non_compliant_week", "study_class"]
    assert Decimal(eligible[short["id"]]["net"]) < Decimal(eligible[good["id"]]["net"])

    batch = await api.call(
        "POST", "/incentives/v1/stipend-batches", json={"month": month}, as_=finance
    )
    lines = await api.call(
        "GET",
        f"/incentives/v1/stipend-batches/{batch['id']}/lines",
        params={"limit": 500},
        as_=finance,
    )
    by_cadre = {line["cadre_id"]: line for line in lines["items"]}
    for c in (good, short):
        assert by_cadre[c["id"]]["net"] == eligible[c["id"]]["net"]

    # Across processes and Kafka, the deduction leads back to the close request and its user.
    [study] = [d for d in eligible[short["id"]]["deductions"] if d["kind"] == "study_class"]
    rows = await api.call(
        "GET",
        "/incentives/v1/audit",
        params={"request_id": "e2e-close-week", "limit": 500},
        as_=await api.user(["auditor"]),
    )
    [row] = [r for r in rows["items"] if r["summary"]["event_id"] == study["source"]["id"]]
    assert row["actor_name"] == api.admin_login[0] and row["kind"] == "event"
    verify = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "audit", "verify"],
        env=api.stack.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.count("chain intact") == 3, verify.stdout


async def count_sign_ins(api: Api, cadre_ids: list[str]) -> int:
    """Rows in assessment's own table: what the service acknowledged is what it kept."""
    conn = await asyncpg.connect(api.stack.db_url("assessment", driver="postgresql"))
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM sign_ins WHERE cadre_id::text = ANY($1::text[])", cadre_ids
        )
    finally:
        await conn.close()


async def ends_as(run: Scenario, expected: dict) -> None:
    assert await count_sign_ins(run.api, list(run.cadres.values())) == len(run.sign_ins())
    await run.conclude()
    diffs = differences(await run.snapshot(), expected)
    assert not diffs, "\n".join(diffs)


async def test_kill_9_of_each_service_under_load_ends_where_the_embedded_run_ends(
    api: Api, expected: dict
):
    run = Scenario(api)
    await run.seed()
    stack = api.stack

    async def faults(step: int) -> None:
        if step == 3:
            stack.kill("incentives")
        elif step == 8:
            stack.kill("registry")
        elif step == 12:
            stack.kill("assessment")
            stack.start("assessment")
            stack.wait_healthy(["assessment"])
        elif step == 20:
            stack.start("registry")
            stack.start("incentives")
            stack.wait_healthy()

    await run.load(faults)
    await ends_as(run, expected)


async def test_a_second_assessment_replica_joins_and_leaves_under_load(api: Api, expected: dict):
    run = Scenario(api)
    await run.seed()
    stack, client = api.stack, api.clients["assessment"]
    main_url = client.base_url

    async def replica(step: int) -> None:
        if step == 4:
            name = stack.start("assessment", replica="b")
            stack.wait_healthy([name])
            client.base_url = stack.url(name)  # the gateway sends traffic to the new one
        elif step == 16:
            client.base_url = main_url
            stack.kill("assessment-b")

    await run.load(replica)
    await ends_as(run, expected)


async def test_poison_event_to_dlq_consumers_go_on_and_the_cli_inspects_and_replays(api: Api):
    stack = api.stack
    env = stack.env()
    topic = f"{env['FRONTLINE_KAFKA_TOPIC_NAMESPACE']}frontline.registry"
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{not an event", key=b"poison")
    finally:
        await producer.stop()
    # The consumers go on: what the registry announces next still arrives.
    monday, good, short, tokens = await seed(api)
    body = await api.call(
        "POST",
        "/assessment/v1/sign-ins",
        json=sign_in(good["id"], monday + timedelta(days=3), 10),
        as_=tokens[good["id"]],
    )
    assert body["status"] == "accepted"

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", "dlq", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout

    # Delivery is at-least-once, dead letters too: count distinct (group, source offset).
    dead = [json.loads(line) for line in cli("list", "frontline.registry.dlq").splitlines()]
    origins = {(d["consumer_group"].rsplit("-", 1)[1], d["source_offset"]) for d in dead}
    # Every service consumes the registry's topic (users' token versions, the registry too).
    assert sorted(group for group, _ in origins) == ["assessment", "incentives", "registry"]
    assert all(d["raw"] == "{not an event" and "undecodable" in d["error"] for d in dead)
    assert "replayed 1 event(s)" in cli("replay", "frontline.registry.dlq")
    await api.settle()
    again = [json.loads(line) for line in cli("list", "frontline.registry.dlq").splitlines()]
    # Still poison: each group dead-letters the replayed copy, found at a new source offset.
    origins_again = {(d["consumer_group"], d["source_offset"]) for d in again}
    assert len(origins_again) == 6
