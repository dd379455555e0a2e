"""The offline batch on PostgreSQL: prepared asyncpg statements, the rows passed as arrays.

The general path (`signins.record`, through SQLAlchemy) spent most of a 500-item batch on
building, compiling and binding the multi-row INSERTs and on 500 pydantic envelopes.
This path gives the same answers with the hot path's own pool (`runtime.signin_pool`):

1. one read: the rows already stored under the batch's keys, the cadre's sign-ins from
   the one before the batch's first device time up to its last (the track that travel is
   judged against), and every posting of the cadre with its fence;
2. one write: the new sign-ins, their outbox rows and the request's audit row in one
   statement (`INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING RETURNING`, the
   outbox rows joined to the sign-ins actually inserted, the server-side audit function
   called when every row went in), so the audit chain's lock is never held across a
   client round trip. When a concurrent request stored some of the keys first, that
   statement fails having written nothing, and a transaction writes the rest and an
   audit row naming only their events.

Flags, the idempotency answers (replays, reused keys, repeats within the batch) and the
order of the answers come from the same functions as the general path (`triage`,
`evaluate`, `settle`, `repeats`). A batch with a counted sign-in in a week that is already
closed goes through the general path (it re-judges that week), as does SQLite; that is
decided inside the transaction, before anything is written. The events' bodies are built
with orjson, field for field what `envelope_for` + `encode` give (tested).
"""

import os
import uuid
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import asyncpg
import orjson
from fastapi import Request

from services.assessment.schemas import SignInCreate
from services.assessment.service.common import PRODUCER, as_utc
from services.assessment.service.signin_fast import (
    AUDIT_CALL,
    AUDIT_FUNCTION,
    FENCE_OF_POSTING,
    FairPool,
)
from services.assessment.service.signins import (
    Outcome,
    ended_weeks,
    evaluate,
    repeats,
    settle,
    triage,
)
from services.assessment.settings import AssessmentSettings
from shared import audit, tracing
from shared.audit import MAX_EVENTS_NOTED, Actor, current_actor, note_events
from shared.audit_http import request_entry
from shared.contracts.assessment import SignInRecorded
from shared.events import topic_for

STORED_COLUMNS = "id idempotency_key device_time received_at status reasons request_hash"
NULLS = "NULL::uuid, NULL::uuid, NULL::date, NULL::date, NULL::float8, NULL::float8, NULL::float8"
NAMED = (
    "NULL::uuid AS posting_id, NULL::uuid AS unit_id, NULL::date AS start_date, "
    "NULL::date AS end_date, NULL::float8 AS fence_lat, NULL::float8 AS fence_lon, "
    "NULL::float8 AS fence_radius_m"
)
READ = f"""
SELECT 0 AS part, s.id, s.idempotency_key, s.device_time, s.received_at, s.lat, s.lon,
       s.status, s.reasons, s.request_hash, {NAMED}
  FROM sign_ins s WHERE s.cadre_id = $1 AND s.idempotency_key = ANY($2::text[])
UNION ALL
(SELECT 1, NULL, NULL, s.device_time, NULL, s.lat, s.lon, NULL, NULL, NULL, {NULLS}
   FROM sign_ins s WHERE s.cadre_id = $1 AND s.device_time < $3
  ORDER BY s.device_time DESC, s.lat DESC, s.lon DESC LIMIT 1)
UNION ALL
SELECT 1, NULL, NULL, s.device_time, NULL, s.lat, s.lon, NULL, NULL, NULL, {NULLS}
  FROM sign_ins s WHERE s.cadre_id = $1 AND s.device_time BETWEEN $3 AND $4
UNION ALL
SELECT 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       p.posting_id, p.unit_id, p.start_date, p.end_date,
       f.fence_lat, f.fence_lon, f.fence_radius_m
  FROM postings p
  {FENCE_OF_POSTING}
 WHERE p.cadre_id = $1
"""

# Per row: (column, array type); cadre_id and received_at are the same for every row.
ARRAYS = [
    ("id", "uuid"),
    ("idempotency_key", "text"),
    ("device_time", "timestamptz"),
    ("lat", "float8"),
    ("lon", "float8"),
    ("accuracy_m", "float8"),
    ("device_id", "text"),
    ("mock_location", "bool"),
    ("status", "text"),
    ("reasons", "text"),
    ("counted", "bool"),
    ("posting_id", "uuid"),
    ("unit_id", "uuid"),
    ("local_date", "date"),
    ("day_date", "date"),
    ("night_date", "date"),
    ("request_hash", "text"),
]
_N = len(ARRAYS)
_ROW = ", ".join(f"r.{c}" for c, _ in ARRAYS)
# $1..$N the sign-in columns, then cadre, received_at; then the outbox rows: sign-in id,
# event id and body as arrays, topic, key, type and created_at as scalars.
WRITE = f"""
WITH ins AS (
  INSERT INTO sign_ins ({", ".join(c for c, _ in ARRAYS)}, cadre_id, received_at)
  SELECT {_ROW}, ${_N + 1}::uuid, ${_N + 2}::timestamptz
    FROM unnest({", ".join(f"${n + 1}::{t}[]" for n, (_, t) in enumerate(ARRAYS))})
         AS r({", ".join(c for c, _ in ARRAYS)})
  ON CONFLICT (cadre_id, idempotency_key) DO NOTHING RETURNING id),
out AS (
  INSERT INTO outbox (event_id, topic, key, type, body, created_at)
  SELECT o.event_id, ${_N + 6}::text, ${_N + 7}::text, ${_N + 8}::text, o.body,
         ${_N + 9}::timestamptz
    FROM unnest(${_N + 3}::uuid[], ${_N + 4}::text[], ${_N + 5}::text[])
         WITH ORDINALITY AS o(sign_in_id, event_id, body, n)
    JOIN ins ON ins.id = o.sign_in_id
   ORDER BY o.n)
SELECT id FROM ins
"""
# The same and the request's audit row in one statement (one implicit transaction, so the
# audit chain's lock is held inside the server only, never across a client round trip),
# when every row went in; else it fails (division by zero) having written nothing, and
# the transaction below answers the keys a concurrent request stored first.
_A = _N + 10
WRITE_AUDITED = WRITE.replace(
    "SELECT id FROM ins\n",
    f"""n AS (SELECT count(*) AS c FROM ins)
SELECT CASE WHEN n.c = ${_A + 12}::bigint
            THEN {AUDIT_FUNCTION}({", ".join(f"${_A + i}" for i in range(12))})
            ELSE (1 / (n.c - n.c))::integer END
  FROM n
""",
).replace("   ORDER BY o.n)\n", "   ORDER BY o.n),\n")
CLOSED = "SELECT monday FROM weeks WHERE monday = ANY($1::date[]) LIMIT 1"
STORED = """
SELECT id, idempotency_key, device_time, received_at, status, reasons, request_hash
  FROM sign_ins WHERE cadre_id = $1 AND idempotency_key = ANY($2::text[])
"""
EVENT_TYPE = SignInRecorded.TYPE
AUDIT = f"SELECT {AUDIT_CALL}"  # the request's audit row, last before the commit


def _stored(r: Any, cadre_id: uuid.UUID) -> dict[str, Any]:
    return {c: r[c] for c in STORED_COLUMNS.split()} | {"cadre_id": cadre_id}


def _read(
    records: list[Any], cadre_id: uuid.UUID
) -> tuple[dict[str, dict[str, Any]], list[tuple[datetime, float, float]], list, dict]:
    """The read's rows as the general path holds them: stored rows by key, the track
    (sorted), the postings newest first, and each posted unit's fence."""
    stored: dict[str, dict[str, Any]] = {}
    track: list[tuple[datetime, float, float]] = []
    postings: list[SimpleNamespace] = []
    fences: dict[uuid.UUID, Any] = {}
    for r in records:
        part = r["part"]
        if part == 0:
            stored[r["idempotency_key"]] = _stored(r, cadre_id)
        elif part == 1:
            track.append((r["device_time"], r["lat"], r["lon"]))
        else:
            postings.append(
                SimpleNamespace(
                    posting_id=r["posting_id"],
                    unit_id=r["unit_id"],
                    start_date=r["start_date"],
                    end_date=r["end_date"],
                )
            )
            if r["fence_lat"] is not None:
                fences[r["unit_id"]] = SimpleNamespace(
                    fence_lat=r["fence_lat"],
                    fence_lon=r["fence_lon"],
                    fence_radius_m=r["fence_radius_m"],
                )
    track.sort()
    postings.sort(key=lambda p: p.start_date, reverse=True)
    return stored, track, postings, fences


def _payload(row: dict[str, Any], key: str) -> dict[str, Any]:
    return {
        "sign_in_id": str(row["id"]),
        "cadre_id": key,
        "device_time": row["device_time"],
        "received_at": row["received_at"],
        "status": row["status"],
        "reasons": [r for r in row["reasons"].split(",") if r],
        "counted": row["counted"],
    }


def payload_json(row: dict[str, Any], cadre_id: uuid.UUID) -> dict[str, Any]:
    """A row's event payload as `model_dump(mode="json")` has it (what the audit row notes)."""
    return orjson.loads(orjson.dumps(_payload(row, str(cadre_id)), option=orjson.OPT_UTC_Z))


def event_bodies(
    rows: list[dict[str, Any]], cadre_id: uuid.UUID, now: datetime, actor: Actor
) -> tuple[list[str], list[str]]:
    """The event ids and outbox bodies of the rows' `assessment.signin.recorded` events:
    the document `encode(envelope_for(_event(row), ...))` writes, built without pydantic
    (orjson writes datetimes as pydantic does, `Z` for UTC)."""
    key, traceparent = str(cadre_id), tracing.current()
    actor_id = str(actor.user_id) if actor.user_id is not None else None
    randomness = os.urandom(16 * len(rows))  # one read for all the uuid4s
    ids = [
        str(uuid.UUID(bytes=randomness[i : i + 16], version=4))
        for i in range(0, len(randomness), 16)
    ]
    bodies = [
        orjson.dumps(
            {
                "event_id": event_id,
                "type": EVENT_TYPE,
                "version": SignInRecorded.VERSION,
                "occurred_at": now,
                "producer": PRODUCER,
                "key": key,
                "payload": _payload(row, key),
                "request_id": actor.request_id,
                "actor_id": actor_id,
                "actor_name": actor.username,
                "traceparent": traceparent,
            },
            option=orjson.OPT_UTC_Z,
        ).decode()
        for row, event_id in zip(rows, ids, strict=True)
    ]
    return ids, bodies


def _audit_args(request: Request, now: datetime, noted: list[Any], count: int) -> list[Any]:
    """The request's audit row, as `SessionDep` writes it after the general path: the
    events it wrote are noted (`count` of them, `noted` the first few; none when nothing
    was created)."""
    info: dict[str, Any] = {"audit_request": request}
    if count:
        note_events(SimpleNamespace(info=info), noted, count)  # type: ignore[arg-type]
    return audit.asyncpg_args(request_entry(SimpleNamespace(info=info), request, now))


def write_args(
    rows: list[dict[str, Any]],
    cadre_id: uuid.UUID,
    now: datetime,
    event_ids: list[str],
    bodies: list[str],
) -> list[Any]:
    """WRITE's arguments: the rows' columns as arrays, then their outbox rows."""
    return [
        *([r[c] for r in rows] for c, _ in ARRAYS),
        cadre_id,
        now,
        [r["id"] for r in rows],
        event_ids,
        bodies,
        topic_for(EVENT_TYPE),
        str(cadre_id),
        EVENT_TYPE,
        now,
    ]


def _noted(created: list[dict[str, Any]], cadre_id: uuid.UUID) -> list[Any]:
    """The events the audit row names (the first few; `_audit_args` counts them all)."""
    return [
        SimpleNamespace(type=EVENT_TYPE, key=str(cadre_id), payload=payload_json(r, cadre_id))
        for r in created[:MAX_EVENTS_NOTED]
    ]


def _ended(rows: list[dict[str, Any]], now: datetime) -> set:
    """`ended_weeks` of every row, worked out once per distinct set of dates."""
    out: set = set()
    seen: set = set()
    for r in rows:
        dates = (r["counted"], r["local_date"], r["day_date"], r["night_date"])
        if dates not in seen:
            seen.add(dates)
            out.update(ended_weeks(r, now))
    return out


async def record_batch(
    pool: FairPool,
    request: Request,
    cadre_id: uuid.UUID,
    items: list[SignInCreate],
    *,
    now: datetime,
    policy: AssessmentSettings,
) -> list[Outcome] | None:
    """A cadre's batch, one outcome per item in input order; None when it must go through
    the general path (a counted sign-in in a closed week), with nothing written."""
    times = [as_utc(i.device_time) for i in items] or [now]
    async with pool.acquire() as conn:
        records = await conn.fetch(
            READ, cadre_id, list({i.idempotency_key for i in items}), min(times), max(times)
        )
        stored, track, postings, fences = _read(records, cadre_id)
        outcomes, fresh = triage(items, stored, now, policy)
        new = [items[n] for n in fresh.values()]
        rows = evaluate(cadre_id, new, postings, fences, track, now, policy)
        ended = sorted(_ended(rows, now))
        actor = current_actor(SimpleNamespace(info={"audit_request": request}))  # type: ignore[arg-type]
        event_ids, bodies = event_bodies(rows, cadre_id, now, actor)
        written = write_args(rows, cadre_id, now, event_ids, bodies)
        if not ended:  # the usual case: one statement
            audited = _audit_args(request, now, _noted(rows, cadre_id), len(rows))
            try:
                if rows:
                    await conn.fetchval(WRITE_AUDITED, *written, *audited, len(rows))
                else:
                    await conn.fetchval(AUDIT, *audited)
            except asyncpg.DivisionByZeroError:
                pass  # some keys were stored meanwhile: nothing written, see below
            else:
                settle(items, outcomes, fresh, rows, {})
                return repeats(items, outcomes, fresh)
        async with conn.transaction():
            if ended and await conn.fetchval(CLOSED, ended) is not None:
                return None
            inserted: set[uuid.UUID] = set()
            if rows:
                inserted = {w["id"] for w in await conn.fetch(WRITE, *written)}
            created = [r for r in rows if r["id"] in inserted]
            lost = [r["idempotency_key"] for r in rows if r["id"] not in inserted]
            # A concurrent request stored these keys first: its answer is the answer.
            winners = (
                {
                    w["idempotency_key"]: _stored(w, cadre_id)
                    for w in await conn.fetch(STORED, cadre_id, lost)
                }
                if lost
                else {}
            )
            await conn.fetchval(
                AUDIT, *_audit_args(request, now, _noted(created, cadre_id), len(created))
            )
    settle(items, outcomes, fresh, created, winners)
    return repeats(items, outcomes, fresh)


async def sign_in_batch(
    runtime: Any,
    request: Request,
    cadre_id: uuid.UUID,
    items: list[SignInCreate],
    *,
    now: datetime,
    policy: AssessmentSettings,
) -> list[Outcome] | None:
    """The batch on this path (PostgreSQL), or None for the general path."""
    pool = getattr(runtime, "signin_pool", None)
    if pool is None:
        return None
    try:
        outcomes = await record_batch(pool, request, cadre_id, items, now=now, policy=policy)
    except (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError):
        # A connection the server dropped (restart, failover); the keys make a retry safe.
        outcomes = await record_batch(pool, request, cadre_id, items, now=now, policy=policy)
    if outcomes is not None and any(o.kind == "created" for o in outcomes):
        runtime.relay.wake()
    return outcomes
