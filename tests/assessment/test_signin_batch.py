"""The offline batch's prepared path (PostgreSQL) answers exactly as the general path does.

Each scenario runs once through the batch endpoint as it is and once with the hot-path
pool taken away (the general path, SQLAlchemy), for two cadres set up alike; on SQLite both
runs take the general path.
"""

import asyncio
import json
import uuid
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import asyncpg
import orjson
import pytest
from sqlalchemy import event, select

from services.assessment.models import SignIn
from services.assessment.schemas import SignInBatchResult, SignInCreate
from services.assessment.service.signin_batch import (
    WRITE_AUDITED,
    event_bodies,
    payload_json,
    write_args,
)
from services.assessment.service.signins import _event, judge
from services.assessment.settings import AssessmentSettings
from shared import audit
from shared.audit import AUDIT, Actor
from shared.contracts.enums import Role
from shared.events import encode, envelope_for
from tests.assessment import factories as f

NOW = f.local(2026, 11, 25, 10)  # the frozen clock: Wednesday of 2026-W48
URL = "/assessment/v1/sign-ins/batch"


@pytest.fixture
async def village(system):
    return (await f.tree(system)).village


@contextmanager
def sign_in_inserts(system):
    """The INSERTs into sign_ins that went through SQLAlchemy (the general path)."""
    seen: list[str] = []

    def listen(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("INSERT INTO SIGN_INS"):
            seen.append(statement)

    engine = system.runtime("assessment").engine.sync_engine
    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


@contextmanager
def general_path(system):
    runtime = system.runtime("assessment")
    pool, runtime.signin_pool = runtime.signin_pool, None
    try:
        yield
    finally:
        runtime.signin_pool = pool


async def post_batch(system, cadre_id, items):
    r = await system.client.post(
        URL, json={"items": items}, headers=system.headers(Role.cadre, cadre_id=cadre_id)
    )
    assert r.status_code == 200, r.text
    # The bytes FastAPI would write through the response model (the route renders them
    # itself with orjson).
    contract = SignInBatchResult.model_validate(r.json()).model_dump(mode="json")
    assert r.content == json.dumps(contract, ensure_ascii=False, separators=(",", ":")).encode()
    return r.json()["results"]


def mixed_items(c, other):
    far = f.VILLAGE_LAT + 0.5  # about 55 km north: outside the fence, and too fast to reach
    body = f.sign_in_body
    return [
        body(c, f.local(2026, 11, 24, 10), key="n1"),  # new, after a stored one
        body(c, f.local(2026, 11, 24, 9), key="stored"),  # a replay
        body(c, f.local(2026, 11, 24, 12), key="stored2", mock_location=True),  # reused key
        body(c, f.local(2026, 11, 24, 10, 10), key="n2", lat=far),  # outside, implausible
        body(c, f.local(2026, 11, 24, 10), key="n1"),  # a repeat within the batch
        body(c, f.local(2026, 11, 24, 11), key="n1"),  # the key reused within the batch
        body(c, NOW + timedelta(minutes=6), key="future"),
        body(c, f.local(2026, 11, 19, 23), key="w47"),  # counted in an ended (open) week
        body(c, f.local(2026, 11, 23, 21), key="m", mock_location=True),
        body(c, f.local(2025, 12, 30, 10), key="old"),  # before the posting: late as well
        body(other, f.local(2026, 11, 24, 10), key="theirs"),
        {"idempotency_key": "bad", "cadre_id": str(c)},
        body(c, f.local(2026, 11, 24, 9, 30), key="n3"),  # between stored and n1
    ]


async def outcome_of(system, c, results):
    """What a run leaves, with the cadre's own ids taken out so two cadres compare."""
    ids = {r["id"] for r in results if "id" in r}
    answers = [{k: v for k, v in r.items() if k not in ("id", "cadre_id")} for r in results]
    async with system.transaction("assessment") as s:
        rows = (
            await s.execute(select(SignIn).where(SignIn.cadre_id == c).order_by(SignIn.device_time))
        ).scalars()
        stored = [
            (
                r.idempotency_key,
                r.device_time.replace(tzinfo=None),
                r.status,
                r.reasons,
                r.counted,
                r.local_date,
                r.day_date,
                r.night_date,
                r.unit_id,
                r.posting_id is not None,
                str(r.id) in ids,
            )
            for r in rows
        ]
        audit = [
            (orjson.loads(r.summary), orjson.loads(r.targets), r.roles)
            for r in (await s.execute(select(AUDIT).where(AUDIT.c.action == f"POST {URL}"))).all()
            if str(c) in r.summary
        ]
    events = [
        {k: v for k, v in e.payload.items() if k not in ("sign_in_id", "cadre_id")}
        for e in await f.events(system, "assessment.signin.recorded")
        if e.key == str(c)
    ]
    trail = [
        (a.get("events_count"), [e["type"] for e in a.get("events", [])], len(targets), roles)
        for a, targets, roles in audit
    ]
    return answers, stored, events, trail


async def test_a_mixed_batch_answers_as_the_general_path_does(system, village, backend):
    outcomes, statements = [], []
    for prepared in (True, False):
        c = await f.posted_cadre(system, village)
        other = await f.cadre(system)
        first = await f.sign_in(system, c, f.local(2026, 11, 24, 9), key="stored")
        await f.sign_in(system, c, f.local(2026, 11, 24, 12), key="stored2")
        items = mixed_items(c, other)
        with sign_in_inserts(system) as seen:
            if prepared:
                results = await post_batch(system, c, items)
            else:
                with general_path(system):
                    results = await post_batch(system, c, items)
        statements.append(len(seen))
        assert results[1] == first.json()
        assert results[4] == results[0]
        outcomes.append(await outcome_of(system, c, results))
    # The prepared path is taken on PostgreSQL only; the general path always.
    assert statements == [0 if backend == "postgres" else 1, 1]
    fast, general = outcomes
    assert fast[0] == general[0]  # every answer, in input order
    assert fast[1] == general[1]  # the rows stored, with their flags and dates
    assert fast[2] == general[2]  # the events, in order
    assert fast[3] == general[3]  # one audit row for the request, naming its events
    answers, stored, events, trail = fast
    assert [a["status"] for a in answers] == [
        "accepted",
        "accepted",
        "rejected",
        "flagged",
        "accepted",
        "rejected",
        "rejected",
        "accepted",
        "flagged",
        "flagged",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert answers[3]["reasons"] == ["outside_geofence", "implausible_travel"]
    assert answers[9]["reasons"] == ["not_posted", "late_sync"]
    assert [answers[n]["code"] for n in (2, 5, 6, 10, 11)] == [
        "idempotency_key_reused",
        "idempotency_key_reused",
        "device_time_in_future",
        "not_own_record",
        "invalid_input",
    ]
    assert len(stored) == len(events) == 2 + 6  # two signed in before, six new
    assert trail == [(6, ["assessment.signin.recorded"] * 6, 7, "cadre")]  # cadre + 6 rows


async def test_a_batch_of_replays_only_writes_its_audit_row(system, village):
    c = await f.posted_cadre(system, village)
    items = [f.sign_in_body(c, f.local(2026, 11, 24, 9 + i)) for i in range(3)]
    created = await post_batch(system, c, items)
    with sign_in_inserts(system) as seen:
        again = await post_batch(system, c, items)
    assert again == created
    assert seen == []
    async with system.transaction("assessment") as s:
        summaries = [
            orjson.loads(r.summary)
            for r in (await s.execute(select(AUDIT).where(AUDIT.c.action == f"POST {URL}"))).all()
        ]
    assert [x.get("events_count") for x in summaries] == [3, None]
    assert len(await f.events(system, "assessment.signin.recorded")) == 3


async def test_a_counted_sign_in_in_a_closed_week_takes_the_general_path(system, village, backend):
    c = await f.posted_cadre(system, village)
    await f.attend(system, c, f.full_week(date(2026, 11, 16), nights=3))
    await f.close(system, "2026-W47")
    assert (await f.presence(system, c, "2026-W47"))["compliant"] is False
    items = [
        f.sign_in_body(c, f.local(2026, 11, 24, 10)),
        f.sign_in_body(c, f.local(2026, 11, 19, 23)),  # Thursday's night, synced late
    ]
    with sign_in_inserts(system) as seen:
        results = await post_batch(system, c, items)
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    assert len(seen) == 1  # re-judging the week is the general path's, on either backend
    p = await f.presence(system, c, "2026-W47")
    assert (p["nights"], p["compliant"]) == (4, True)
    # A week that has ended but is not closed needs no re-judging: the prepared path.
    later = [f.sign_in_body(c, f.local(2026, 11, 20, 23))]
    with sign_in_inserts(system) as seen:
        await post_batch(system, c, [*later, f.sign_in_body(c, f.local(2026, 11, 12, 23))])
    assert len(seen) == 1  # 2026-W46 is not closed, but W47 is
    with sign_in_inserts(system) as seen:
        [r] = await post_batch(system, c, [f.sign_in_body(c, f.local(2026, 11, 13, 23))])
    assert r["status"] == "accepted"
    assert len(seen) == (0 if backend == "postgres" else 1)


async def test_concurrent_batches_of_the_same_keys_store_each_once(system, village):
    c = await f.posted_cadre(system, village)
    items = [f.sign_in_body(c, f.local(2026, 11, 24, 8) + timedelta(minutes=i)) for i in range(20)]
    answers = await asyncio.gather(*[post_batch(system, c, items) for _ in range(4)])
    for n in range(20):
        assert len({a[n]["id"] for a in answers}) == 1
        assert {a[n]["status"] for a in answers} == {"accepted"}
    async with system.transaction("assessment") as s:
        stored = (await s.execute(select(SignIn.id).where(SignIn.cadre_id == c))).all()
    assert len(stored) == 20
    assert len(await f.events(system, "assessment.signin.recorded")) == 20


def test_event_bodies_are_what_envelope_for_writes():
    policy = AssessmentSettings()
    cadre_id = uuid.uuid4()
    now = datetime(2026, 11, 25, 2, 0, 0, 123456, tzinfo=UTC)
    actor = Actor(request_id="req-9", user_id=uuid.uuid4(), username="cadre-9")
    rows = [
        judge(
            cadre_id,
            SignInCreate.model_validate(
                f.sign_in_body(cadre_id, at, mock_location=mock) | {"lat": lat}
            ),
            at.astimezone(UTC),
            posting,
            None,
            None,
            now,
            policy,
        )
        for at, mock, lat, posting in [
            (f.local(2026, 11, 24, 9), False, 25.0, object()),
            (datetime(2026, 11, 24, 1, 2, 3, 5, tzinfo=UTC), True, 25.3, None),
        ]
        for posting in [None if posting is None else _posting()]
    ]
    for who in (actor, Actor()):
        event_ids, bodies = event_bodies(rows, cadre_id, now, who)
        assert len(set(event_ids)) == len(rows)
        for row, event_id, body in zip(rows, event_ids, bodies, strict=True):
            env = envelope_for(
                _event(row),
                key=cadre_id,
                producer="assessment",
                occurred_at=now,
                request_id=who.request_id,
                actor_id=who.user_id,
                actor_name=who.username,
            )
            assert uuid.UUID(event_id).version == 4
            expected = orjson.loads(encode(env)) | {"event_id": event_id}
            assert orjson.loads(body) == expected
            assert payload_json(row, cadre_id) == env.payload


def _posting():
    class Posting:
        posting_id, unit_id = uuid.uuid4(), uuid.uuid4()

    return Posting


async def test_the_one_statement_write_writes_nothing_when_a_key_was_taken(
    system, village, backend
):
    """The guard behind the one-statement write: a key stored meanwhile by another request
    makes it fail having written nothing (the batch then answers that key as a replay in a
    transaction of its own). SQLite has no such statement."""
    pool = system.runtime("assessment").signin_pool
    assert (pool is not None) == (backend == "postgres")
    if pool is None:
        return
    c = await f.posted_cadre(system, village)
    [taken] = await post_batch(system, c, [f.sign_in_body(c, f.local(2026, 11, 24, 9), key="k1")])
    policy, now = AssessmentSettings(), NOW.astimezone(UTC)
    rows = [
        judge(
            c,
            SignInCreate.model_validate(f.sign_in_body(c, at, key=k)),
            at.astimezone(UTC),
            None,
            None,
            None,
            now,
            policy,
        )
        for k, at in (("k1", f.local(2026, 11, 24, 9)), ("k2", f.local(2026, 11, 24, 10)))
    ]
    event_ids, bodies = event_bodies(rows, c, now, Actor())
    entry = audit.Entry(at=now, kind="request", action=f"POST {URL}")

    async def counts():
        async with pool.acquire() as conn:
            return await conn.fetchrow(
                "SELECT (SELECT count(*) FROM sign_ins) s, (SELECT count(*) FROM outbox) o,"
                " (SELECT count(*) FROM audit_log) a"
            )

    before = await counts()
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await conn.fetchval(
                WRITE_AUDITED,
                *write_args(rows, c, now, event_ids, bodies),
                *audit.asyncpg_args(entry),
                len(rows),
            )
        # Without the taken key the same statement writes the row, its event and the audit row.
        event_ids, bodies = event_bodies(rows[1:], c, now, Actor())
        await conn.fetchval(
            WRITE_AUDITED,
            *write_args(rows[1:], c, now, event_ids, bodies),
            *audit.asyncpg_args(entry),
            1,
        )
    after = await counts()
    assert tuple(after) == (before["s"] + 1, before["o"] + 1, before["a"] + 1)
    assert taken["idempotency_key"] == "k1"
