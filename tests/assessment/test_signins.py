"""Sign-in on post: every flag with its boundary, idempotency, bad input, the batch."""

import asyncio
from datetime import UTC, date, timedelta

import pytest
from sqlalchemy import event, func, select, text

from services.assessment.models import SignIn
from services.assessment.service.common import distance_m
from shared import audit
from shared.audit import AUDIT
from shared.contracts.enums import Role
from tests.assessment import factories as f

METRES_PER_DEGREE_LAT = 2 * 3.141592653589793 * 6_371_008.8 / 360
NOW = f.local(2026, 11, 25, 10)  # the frozen clock


def north(metres: float) -> float:
    return f.VILLAGE_LAT + metres / METRES_PER_DEGREE_LAT


@pytest.fixture
async def posted(system):
    t = await f.tree(system)
    return await f.posted_cadre(system, t.village)


async def stored_count(system, cadre_id) -> int:
    async with system.transaction("assessment") as s:
        return await s.scalar(
            select(func.count()).select_from(SignIn).where(SignIn.cadre_id == cadre_id)
        )


async def test_an_accepted_sign_in_answers_201_with_its_record(system, posted):
    body = f.sign_in_body(posted, f.local(2026, 11, 25, 9), key="k-1") | {"app": "2.1"}
    r = await system.client.post(
        "/assessment/v1/sign-ins", json=body, headers=system.headers(Role.cadre, cadre_id=posted)
    )
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {
        "id",
        "idempotency_key",
        "cadre_id",
        "device_time",
        "received_at",
        "status",
        "reasons",
    }
    assert body["idempotency_key"] == "k-1" and body["cadre_id"] == str(posted)
    assert (body["status"], body["reasons"]) == ("accepted", [])
    assert body["received_at"].startswith("2026-11-25T02:00:00")
    signed = await f.events(system, "assessment.signin.recorded")
    assert [e.payload["sign_in_id"] for e in signed] == [body["id"]]
    assert signed[0].payload["counted"] is True


@pytest.mark.parametrize(
    ("metres", "accuracy", "flagged"),
    [
        (519, 20, False),  # within radius 500 + accuracy 20
        (521, 20, True),
        (599, 500, False),  # accuracy counts at most 100 m
        (601, 500, True),
    ],
)
async def test_outside_geofence_is_distance_beyond_radius_plus_capped_accuracy(
    system, posted, metres, accuracy, flagged
):
    lat = north(metres)
    assert abs(distance_m(f.VILLAGE_LAT, f.VILLAGE_LON, lat, f.VILLAGE_LON) - metres) < 0.5
    r = await f.sign_in(system, posted, f.local(2026, 11, 25, 9), lat=lat, accuracy_m=accuracy)
    assert r.status_code == 201
    assert r.json()["reasons"] == (["outside_geofence"] if flagged else [])
    assert r.json()["status"] == ("flagged" if flagged else "accepted")


async def test_not_posted_outside_any_posting(system):
    t = await f.tree(system)
    never = await f.cadre(system)
    r = await f.sign_in(system, never, f.local(2026, 11, 25, 9))
    assert r.json()["reasons"] == ["not_posted"]
    ended = await f.cadre(system)
    posting = await f.post(system, ended, t.village)
    await f.end_posting(system, posting, ended, t.village, date(2026, 11, 24))
    on_last_day = await f.sign_in(system, ended, f.local(2026, 11, 24, 19))
    assert on_last_day.json()["reasons"] == []
    day_after = await f.sign_in(system, ended, f.local(2026, 11, 25, 9))
    assert day_after.json()["reasons"] == ["not_posted"]


async def test_implausible_travel_is_above_200_kmh_from_the_previous_sign_in(system):
    # A wide fence, so that only the speed can flag these.
    county = await f.unit(system, f.UnitKind.county, [])
    wide = await f.unit(system, f.UnitKind.village, [county], fence=(25.0, 105.5, 100_000))
    c = await f.posted_cadre(system, wide)
    start = f.local(2026, 11, 25, 8)
    await f.attend(system, c, [start])
    lat = north(50_000)  # 50 km away: 15 minutes is exactly 200 km/h
    slow = await f.sign_in(system, c, start + timedelta(minutes=15, seconds=1), lat=lat)
    assert slow.json()["reasons"] == []
    # From that one, 50 km back in just under 15 minutes is too fast.
    fast = await f.sign_in(system, c, start + timedelta(minutes=29, seconds=59))
    assert fast.json()["reasons"] == ["implausible_travel"]


async def test_implausible_travel_compares_by_device_time_not_arrival(system):
    county = await f.unit(system, f.UnitKind.county, [])
    wide = await f.unit(system, f.UnitKind.village, [county], fence=(25.0, 105.5, 100_000))
    c = await f.posted_cadre(system, wide)
    await f.attend(system, c, [f.local(2026, 11, 25, 9)])
    # Uploaded later but taken earlier: its previous sign-in is none, so nothing to compare.
    earlier = await f.sign_in(system, c, f.local(2026, 11, 24, 9), lat=north(50_000))
    assert earlier.json()["reasons"] == []


async def test_mock_location_is_flagged(system, posted):
    r = await f.sign_in(system, posted, f.local(2026, 11, 25, 9), mock_location=True)
    assert (r.json()["status"], r.json()["reasons"]) == ("flagged", ["mock_location"])


async def test_late_sync_beyond_the_offline_window_is_stored_not_counted(system, posted):
    window = timedelta(days=14)
    inside = await f.sign_in(system, posted, NOW - window + timedelta(minutes=1))
    assert inside.json()["reasons"] == []
    late = await f.sign_in(system, posted, NOW - window - timedelta(minutes=1))
    assert late.status_code == 201
    assert late.json()["reasons"] == ["late_sync"]
    assert await stored_count(system, posted) == 2
    signed = await f.events(system, "assessment.signin.recorded")
    assert [e.payload["counted"] for e in signed] == [True, False]


async def test_device_time_more_than_5_minutes_ahead_is_422(system, posted):
    ok = await f.sign_in(system, posted, NOW + timedelta(minutes=5))
    assert ok.status_code == 201
    ahead = await f.sign_in(system, posted, NOW + timedelta(minutes=5, seconds=1))
    assert ahead.status_code == 422
    assert ahead.headers["content-type"].startswith("application/problem+json")
    assert ahead.json()["field"] == "device_time"
    assert await stored_count(system, posted) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lat", 90.0001),
        ("lat", -90.5),
        ("lon", 180.01),
        ("lon", -181),
        ("accuracy_m", -0.1),
        ("device_time", "2026-11-25T09:00:00"),  # no UTC offset
        ("device_time", "yesterday"),
        ("idempotency_key", ""),
    ],
)
async def test_malformed_sign_ins_are_422_naming_the_field(system, posted, field, value):
    body = f.sign_in_body(posted, f.local(2026, 11, 25, 9)) | {field: value}
    r = await system.client.post(
        "/assessment/v1/sign-ins", json=body, headers=system.headers(Role.cadre, cadre_id=posted)
    )
    assert r.status_code == 422
    assert r.json()["field"] == field
    assert await stored_count(system, posted) == 0


async def test_a_cadre_signs_in_only_for_themself(system, posted):
    other = await f.cadre(system)
    body = f.sign_in_body(posted, f.local(2026, 11, 25, 9))
    for headers in (
        system.headers(Role.cadre, cadre_id=other),
        system.headers(Role.org_admin),
    ):
        r = await system.client.post("/assessment/v1/sign-ins", json=body, headers=headers)
        assert r.status_code == 403
    assert (await system.client.post("/assessment/v1/sign-ins", json=body)).status_code == 401
    assert await stored_count(system, posted) == 0


async def test_an_identical_replay_answers_200_with_the_first_answer(system, posted):
    first = await f.sign_in(system, posted, f.local(2026, 11, 25, 9), key="same")
    again = await f.sign_in(system, posted, f.local(2026, 11, 25, 9), key="same")
    # The same instant written with another offset is the same sign-in.
    utc = await f.sign_in(system, posted, f.local(2026, 11, 25, 9).astimezone(UTC), key="same")
    assert first.status_code == 201
    assert again.status_code == utc.status_code == 200
    assert again.content == first.content == utc.content
    assert await stored_count(system, posted) == 1
    assert len(await f.events(system, "assessment.signin.recorded")) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"device_time": "2026-11-25T09:00:01+08:00"},
        {"lat": f.VILLAGE_LAT + 0.0001},
        {"lon": f.VILLAGE_LON + 0.0001},
        {"accuracy_m": 11.0},
        {"device_id": "another-phone"},
        {"mock_location": True},
    ],
)
async def test_a_key_reused_with_another_body_is_409(system, posted, change):
    body = f.sign_in_body(posted, f.local(2026, 11, 25, 9), key="same")
    headers = system.headers(Role.cadre, cadre_id=posted)
    first = await system.client.post("/assessment/v1/sign-ins", json=body, headers=headers)
    other = await system.client.post("/assessment/v1/sign-ins", json=body | change, headers=headers)
    assert first.status_code == 201
    assert other.status_code == 409
    assert (other.json()["code"], other.json()["field"]) == (
        "idempotency_key_reused",
        "idempotency_key",
    )
    again = await system.client.post("/assessment/v1/sign-ins", json=body, headers=headers)
    assert (again.status_code, again.content) == (200, first.content)
    assert await stored_count(system, posted) == 1
    assert len(await f.events(system, "assessment.signin.recorded")) == 1


async def test_keys_are_per_cadre(system, posted):
    other = await f.posted_cadre(system, (await f.tree(system)).village)
    a = await f.sign_in(system, posted, f.local(2026, 11, 25, 9), key="shared")
    b = await f.sign_in(system, other, f.local(2026, 11, 25, 9), key="shared")
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


async def test_concurrent_duplicates_store_one_row(system, posted):
    body = f.sign_in_body(posted, f.local(2026, 11, 25, 9), key="twin")
    headers = system.headers(Role.cadre, cadre_id=posted)
    answers = await asyncio.gather(
        *[
            system.client.post("/assessment/v1/sign-ins", json=body, headers=headers)
            for _ in range(8)
        ]
    )
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]
    assert len({a.content for a in answers}) == 1
    assert await stored_count(system, posted) == 1
    assert len(await f.events(system, "assessment.signin.recorded")) == 1


async def test_concurrent_duplicates_with_two_bodies_store_one_row(system, posted):
    body = f.sign_in_body(posted, f.local(2026, 11, 25, 9), key="twin")
    headers = system.headers(Role.cadre, cadre_id=posted)
    bodies = [body, body | {"mock_location": True}] * 4
    answers = await asyncio.gather(
        *[system.client.post("/assessment/v1/sign-ins", json=b, headers=headers) for b in bodies]
    )
    [winner] = [a for a in answers if a.status_code == 201]
    same = [a for b, a in zip(bodies, answers, strict=True) if b == bodies[answers.index(winner)]]
    assert sorted(a.status_code for a in same) == [200] * 3 + [201]
    assert {a.content for a in same} == {winner.content}
    assert sorted(a.status_code for a in answers if a not in same) == [409] * 4
    assert await stored_count(system, posted) == 1
    assert len(await f.events(system, "assessment.signin.recorded")) == 1


# --- the offline batch ------------------------------------------------------------------


async def batch(system, cadre_id, items):
    return await system.client.post(
        "/assessment/v1/sign-ins/batch",
        json={"items": items},
        headers=system.headers(Role.cadre, cadre_id=cadre_id),
    )


async def test_batch_answers_each_item_in_input_order(system, posted):
    other = await f.cadre(system)
    stored = await f.sign_in(system, posted, f.local(2026, 11, 20, 9), key="stored")
    items = [
        f.sign_in_body(posted, f.local(2026, 11, 23, 9), key="a"),
        f.sign_in_body(posted, f.local(2026, 11, 22, 9), key="b") | {"lat": 100},
        f.sign_in_body(posted, f.local(2026, 11, 21, 9), key="c", mock_location=True),
        f.sign_in_body(other, f.local(2026, 11, 21, 9), key="d"),
        f.sign_in_body(posted, NOW + timedelta(minutes=6), key="e"),
        f.sign_in_body(posted, f.local(2026, 11, 24, 9), key="a"),  # key reused in the batch
        f.sign_in_body(posted, f.local(2026, 11, 19, 9), key="stored"),  # key reused
        "not a sign-in",
        {k: v for k, v in f.sign_in_body(posted, NOW).items() if k != "lat"},
        f.sign_in_body(posted, f.local(2026, 11, 23, 9), key="a"),  # a repeat in the batch
        f.sign_in_body(posted, f.local(2026, 11, 20, 9), key="stored"),  # a replay
    ]
    r = await batch(system, posted, items)
    assert r.status_code == 200
    results = r.json()["results"]
    assert len(results) == len(items)
    assert (results[0]["idempotency_key"], results[0]["status"]) == ("a", "accepted")
    assert {k: results[1][k] for k in ("status", "code", "field")} == {
        "status": "rejected",
        "code": "invalid_input",
        "field": "lat",
    }
    assert (results[2]["status"], results[2]["reasons"]) == ("flagged", ["mock_location"])
    assert (results[3]["code"], results[3]["field"]) == ("not_own_record", "cadre_id")
    assert (results[4]["code"], results[4]["field"]) == ("device_time_in_future", "device_time")
    for n in (5, 6):
        assert (results[n]["status"], results[n]["code"], results[n]["field"]) == (
            "rejected",
            "idempotency_key_reused",
            "idempotency_key",
        )
    assert results[9] == results[0]
    assert results[10] == stored.json()
    assert results[7]["status"] == "rejected"
    assert (results[8]["status"], results[8]["field"]) == ("rejected", "lat")
    assert await stored_count(system, posted) == 3  # stored, a, c
    assert len(await f.events(system, "assessment.signin.recorded")) == 3


async def test_batch_rows_go_in_one_statement(system, posted, backend):
    """SQLite: one INSERT through SQLAlchemy. PostgreSQL: the prepared path (SQLAlchemy
    inserts no sign-in), and the 500 rows share one transaction and one command id."""
    statements = []

    def seen(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("INSERT INTO SIGN_INS"):
            statements.append(statement)

    engine = system.runtime("assessment").engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        items = [
            f.sign_in_body(posted, f.local(2026, 11, 24, 9) + timedelta(minutes=i))
            for i in range(500)
        ]
        r = await batch(system, posted, items)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert all(x["status"] == "accepted" for x in r.json()["results"])
    assert await stored_count(system, posted) == 500
    if backend == "sqlite":
        assert len(statements) == 1
        return
    assert statements == []
    async with system.transaction("assessment") as s:
        commands = await s.scalar(
            text(
                "SELECT count(DISTINCT (xmin::text, cmin::text)) FROM sign_ins WHERE cadre_id = :c"
            ),
            {"c": posted},
        )
    assert commands == 1


async def test_batch_of_more_than_500_items_is_422(system, posted):
    items = [f.sign_in_body(posted, NOW) for _ in range(501)]
    r = await batch(system, posted, items)
    assert (r.status_code, r.json()["field"]) == (422, "items")
    assert await stored_count(system, posted) == 0
    items = [f.sign_in_body(posted, NOW - timedelta(minutes=i)) for i in range(500)]
    assert (await batch(system, posted, items)).status_code == 200


async def test_batch_is_for_cadres(system, posted):
    r = await system.client.post(
        "/assessment/v1/sign-ins/batch",
        json={"items": [f.sign_in_body(posted, NOW)]},
        headers=system.headers(Role.org_admin),
    )
    assert r.status_code == 403


async def test_batch_checks_travel_between_its_own_items(system):
    county = await f.unit(system, f.UnitKind.county, [])
    wide = await f.unit(system, f.UnitKind.village, [county], fence=(25.0, 105.5, 100_000))
    c = await f.posted_cadre(system, wide)
    start = f.local(2026, 11, 24, 8)
    items = [
        f.sign_in_body(c, start + timedelta(minutes=10), lat=north(50_000)),  # 300 km/h
        f.sign_in_body(c, start),
    ]
    results = (await batch(system, c, items)).json()["results"]
    assert results[0]["reasons"] == ["implausible_travel"]
    assert results[1]["reasons"] == []


# --- the audit row, on either path ------------------------------------------------------


async def test_sign_ins_and_replays_leave_an_unbroken_audit_chain(system, posted):
    """Created and replayed sign-ins leave a row naming the cadre's request and event; a
    refused one leaves none (on PostgreSQL these go through the one-statement path)."""
    body = f.sign_in_body(posted, f.local(2026, 11, 25, 9), key="audited")
    headers = system.headers(Role.cadre, cadre_id=posted) | {"X-Request-ID": "req-1"}
    url = "/assessment/v1/sign-ins"
    answers = await asyncio.gather(
        *[system.client.post(url, json=body, headers=headers) for _ in range(4)]
    )
    answers.append(await system.client.post(url, json=body | {"lat": 25.2}, headers=headers))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201, 409]
    await f.attend(system, posted, [f.local(2026, 11, 24, 21)])
    async with system.transaction("assessment") as s:
        rows = (await s.execute(select(AUDIT).order_by(AUDIT.c.seq))).all()
    mine = [r for r in rows if r.action == "POST /assessment/v1/sign-ins"]
    assert len(mine) == 5, [r.action for r in rows if r.kind == "request"]
    first = [r for r in mine if "events" in r.summary]
    assert len(first) == 2
    assert {r.request_id for r in mine[:4]} == {"req-1"}
    assert all(r.roles == "cadre" and str(posted) in r.targets for r in first)
    assert '"assessment.signin.recorded"' in first[0].summary
    report = await audit.verify(system.runtime("assessment").engine)
    assert report.ok, report.problems


async def test_single_sign_ins_take_the_prepared_path_on_postgres_only(system, backend):
    pool = system.runtime("assessment").signin_pool
    assert (pool is not None) == (backend == "postgres")
