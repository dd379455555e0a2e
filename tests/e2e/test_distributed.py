"""DESIGN.md §2 guarantees with three real processes, PostgreSQL and a Kafka broker."""

import os
import signal
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from tests.e2e.api import Api, last_ended_week, sign_in, week_label
from tests.infra.kafka import RUNNING

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
    closed = await api.call("POST", f"/assessment/v1/weeks/{week}/close")
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


async def count_sign_ins(api: Api, cadre_ids: list[str]) -> int:
    """Rows in assessment's own table: what the service acknowledged is what it kept."""
    conn = await asyncpg.connect(api.stack.db_url("assessment", driver="postgresql"))
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM sign_ins WHERE cadre_id::text = ANY($1::text[])", cadre_ids
        )
    finally:
        await conn.close()


async def test_broker_paused_sign_ins_still_accepted_and_events_flow_after(api: Api):
    monday, good, short, tokens = await seed(api)
    pid = RUNNING[api.stack.bootstrap]
    os.kill(pid, signal.SIGSTOP)
    try:
        items = presence_items(short["id"], monday, DAYS, NIGHTS)
        for item in items:
            r = await api.clients["assessment"].post(
                "/assessment/v1/sign-ins", json=item, headers=tokens[short["id"]]
            )
            assert r.status_code == 201, r.text
        health = (await api.clients["assessment"].get("/assessment/health")).json()
        assert health["outbox"]["unsent"] >= len(items)
    finally:
        os.kill(pid, signal.SIGCONT)
    await api.settle(timeout=120)
    assert await count_sign_ins(api, [short["id"]]) == len(items)
    week = week_label(monday)
    await api.call("POST", f"/assessment/v1/weeks/{week}/close")
    presence = await api.call(
        "GET", f"/assessment/v1/cadres/{short['id']}/presence", params={"week": week}
    )
    assert (presence["days"], presence["nights"], presence["compliant"]) == (5, 4, True)


async def test_kill_9_of_each_service_under_load_loses_nothing(api: Api):
    monday, good, short, tokens = await seed(api)
    items = presence_items(good["id"], monday, DAYS, NIGHTS) + presence_items(
        short["id"], monday, range(2, 6), NIGHTS
    )
    acknowledged = []
    for i, item in enumerate(items):
        if i == 3:
            api.stack.kill("incentives")
        if i == 6:
            api.stack.kill("registry")
        if i == 9:
            api.stack.kill("assessment")
            api.stack.start("assessment")
            api.stack.wait_healthy(["assessment"])
        r = await api.clients["assessment"].post(
            "/assessment/v1/sign-ins", json=item, headers=tokens[item["cadre_id"]]
        )
        assert r.status_code in (200, 201), r.text
        acknowledged.append(r.json()["id"])
    for s in ("registry", "incentives"):
        api.stack.start(s)
    api.stack.wait_healthy()
    # The phone retries everything it sent: replays answer 200 with the first answer.
    for item, first_id in zip(items, acknowledged, strict=True):
        r = await api.clients["assessment"].post(
            "/assessment/v1/sign-ins", json=item, headers=tokens[item["cadre_id"]]
        )
        assert (r.status_code, r.json()["id"]) == (200, first_id)
    assert await count_sign_ins(api, [good["id"], short["id"]]) == len(items)

    week = week_label(monday)
    first = await api.call("POST", f"/assessment/v1/weeks/{week}/close")
    api.stack.kill("incentives")  # dies while the verdicts are on their way
    api.stack.start("incentives")
    api.stack.wait_healthy()
    again = await api.call("POST", f"/assessment/v1/weeks/{week}/close")
    assert first == again
    await api.settle(timeout=120)

    sunday = monday + timedelta(days=6)
    month = f"{sunday.year:04d}-{sunday.month:02d}"
    entries = await api.call("GET", "/assessment/v1/negative-list", params={"month": month})
    assert [e["reason"] for e in entries["items"] if e["subject_id"] == short["id"]] == [
        "presence_week"
    ]
    assert not [e for e in entries["items"] if e["subject_id"] == good["id"]]
    actions = await api.call(
        "GET", "/assessment/v1/accountability-actions", params={"cadre_id": short["id"]}
    )
    assert [a["rung"] for a in actions["items"]] == ["study_class"]
    finance = await api.user(["finance"])
    eligibility = await api.call(
        "GET", f"/incentives/v1/eligibility/{short['id']}", params={"month": month}, as_=finance
    )
    assert sorted(d["kind"] for d in eligibility["deductions"]) == [
        "non_compliant_week",
        "study_class",
    ]
