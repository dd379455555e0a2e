"""The single sign-in on PostgreSQL in two round trips of prepared asyncpg statements.

Measured first (bench/README.md): under 64 connections the SQLAlchemy path spent most of
its time building and compiling six statements per sign-in, checking out a pre-pinged
connection and opening a transaction; the database did little. This path asks the same
questions with two statements that asyncpg prepares once per connection:

1. one read: the row already stored under the key (if any), the cadre's sign-in just
   before this one by device time, and the posting that holds on the local date with its
   fence (the nearest fenced ancestor, as `fences_of` finds it);
2. one write: the sign-in and its outbox row in a single statement (a data-modifying CTE,
   atomic without BEGIN/COMMIT). `ON CONFLICT DO NOTHING` on (cadre, key) is the
   idempotency guard, and the outbox row is written only if the sign-in was.

Postings and fences are read in statement 1, not from a cache: they cost a few index
lookups on the round trip that is made anyway, and a verdict is never judged against a
stale posting, whichever replica answers. Whatever this path does not cover (a counted
sign-in for a week that has ended, which may need the week re-judged) goes through the
general path in `signins.record`; on SQLite, signin_lite.py does the same in one short
transaction. The flags come from the same `signins.judge`.
"""

import asyncio
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import asyncpg
from fastapi import Request
from sqlalchemy.engine import make_url

from services.assessment.schemas import SignInCreate
from services.assessment.service import signin_lite
from services.assessment.service.common import as_utc
from services.assessment.service.signins import (
    Outcome,
    answer,
    body_of,
    count_stored,
    judged,
    record,
)
from services.assessment.settings import AssessmentSettings
from shared import audit
from shared.audit import note_events
from shared.audit_http import record_request, request_entry
from shared.clock import local_datetime
from shared.events import Envelope
from shared.outbox import outbox_row

# A posting `p`'s fence, `f`: its unit's nearest fenced ancestor (as `fences_of` finds it).
FENCE_OF_POSTING = """LEFT JOIN LATERAL (
        SELECT u.fence_lat, u.fence_lon, u.fence_radius_m
          FROM unit_paths up JOIN units u ON u.unit_id = up.ancestor_id
         WHERE up.unit_id = p.unit_id AND u.fence_lat IS NOT NULL
         ORDER BY up.depth LIMIT 1) f ON true"""

READ = f"""
SELECT 0 AS part, s.id, s.idempotency_key, s.device_time, s.received_at, s.lat, s.lon,
       s.status, s.reasons, s.request_hash, NULL::uuid AS posting_id, NULL::uuid AS unit_id,
       NULL::float8 AS fence_lat, NULL::float8 AS fence_lon, NULL::float8 AS fence_radius_m
  FROM sign_ins s WHERE s.cadre_id = $1 AND s.idempotency_key = $2
UNION ALL
(SELECT 1, NULL, NULL, s.device_time, NULL, s.lat, s.lon, NULL, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL
   FROM sign_ins s WHERE s.cadre_id = $1 AND s.device_time <= $3
  ORDER BY s.device_time DESC, s.lat DESC, s.lon DESC LIMIT 1)
UNION ALL
(SELECT 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, p.posting_id, p.unit_id,
        f.fence_lat, f.fence_lon, f.fence_radius_m
   FROM postings p
   {FENCE_OF_POSTING}
  WHERE p.cadre_id = $1 AND p.start_date <= $4 AND (p.end_date IS NULL OR p.end_date >= $4)
  ORDER BY p.start_date DESC LIMIT 1)
"""

COLUMNS = (
    "id cadre_id idempotency_key device_time received_at lat lon accuracy_m device_id "
    "mock_location status reasons counted posting_id unit_id local_date day_date night_date "
    "request_hash"
).split()
OUTBOX_COLUMNS = ("event_id", "topic", "key", "type", "body", "created_at")
STORED = """
SELECT id, idempotency_key, cadre_id, device_time, received_at, status, reasons, request_hash
  FROM sign_ins WHERE cadre_id = $1 AND idempotency_key = $2
"""


AUDIT_FUNCTION = f"frontline_audit_append_{zlib.crc32(audit.pg_function_sql('f').encode()):08x}"
AUDIT_CALL = f"{AUDIT_FUNCTION}({', '.join(f'${n}' for n in range(1, 13))})"
OFFSET = len(COLUMNS) + len(OUTBOX_COLUMNS)
# The sign-in, its outbox row and its audit row: one statement, one implicit transaction.
WRITE = f"""
WITH ins AS (
  INSERT INTO sign_ins ({", ".join(COLUMNS)})
  VALUES ({", ".join(f"${n}" for n in range(1, len(COLUMNS) + 1))})
  ON CONFLICT (cadre_id, idempotency_key) DO NOTHING RETURNING id),
out AS (
  INSERT INTO outbox ({", ".join(OUTBOX_COLUMNS)})
  SELECT {", ".join(f"${n}" for n in range(len(COLUMNS) + 1, OFFSET + 1))} FROM ins)
SELECT {AUDIT_FUNCTION}({", ".join(f"${n}" for n in range(OFFSET + 1, OFFSET + 13))}) FROM ins
"""
REPLAY_AUDIT = f"SELECT {AUDIT_CALL}"


POOL_SIZE = 10


class FairPool:
    """The hot path's pool, its connections taken in the order they were asked for.

    Under 64 sign-ins in flight on asyncpg's pool of 10 connections, most took 30 ms
    while a few waited 0.3-0.6 s for a connection (timed per stage, bench/README.md): a
    released connection goes to whichever coroutine asks next, and a woken waiter that
    finds it taken waits again. asyncio's Semaphore serves its waiters first come, first
    served and lets no newcomer pass them; one of the pool's size in front leaves the
    pool no waiters. The sign-in p99 fell from 0.7-0.85 s to 0.34-0.36 s (same load).
    """

    def __init__(self, pool: asyncpg.Pool, size: int):
        self.pool = pool
        self._turns = asyncio.Semaphore(size)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._turns, self.pool.acquire() as conn:
            yield conn

    async def close(self) -> None:
        await self.pool.close()


async def open_pool(url: str) -> FairPool | None:
    """The hot path's own small pool (PostgreSQL only), and the audit function it calls;
    None on SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    pool = FairPool(
        await asyncpg.create_pool(dsn, min_size=2, max_size=POOL_SIZE, reset=_keep), POOL_SIZE
    )
    async with pool.acquire() as conn:
        # Named by a hash of its body, so replicas of different versions never replace
        # each other's; made here, not in a migration, because its body is the kernel's
        # audit INSERT (shared/audit.py) and must follow it.
        signature = f"{AUDIT_FUNCTION}({audit.pg_function_sql('f').split('(', 2)[1].split(')')[0]})"
        if await conn.fetchval("SELECT to_regprocedure($1)", signature) is None:
            try:
                await conn.execute(audit.pg_function_sql(AUDIT_FUNCTION))
            except asyncpg.PostgresError:  # another replica made it at the same moment
                if await conn.fetchval("SELECT to_regprocedure($1)", signature) is None:
                    raise
    return pool


async def _keep(conn: asyncpg.Connection) -> None:
    """No reset query on release (a round trip per sign-in): this pool runs only the
    statements above, each its own implicit transaction; no session state to undo."""


def _stored(record: Any, cadre_id: uuid.UUID) -> dict[str, Any]:
    return {
        "id": record["id"],
        "idempotency_key": record["idempotency_key"],
        "cadre_id": cadre_id,
        "device_time": record["device_time"],
        "received_at": record["received_at"],
        "status": record["status"],
        "reasons": record["reasons"],
        "request_hash": record["request_hash"],
    }


def _audited(request: Request, now: datetime, envelope: Envelope | None) -> list[Any]:
    """The audit row's arguments, built as `SessionDep` builds it for any other write."""
    info: dict[str, Any] = {"audit_request": request}
    if envelope is not None:
        note_events(SimpleNamespace(info=info), [envelope])  # type: ignore[arg-type]
    entry = request_entry(SimpleNamespace(info=info), request, now)
    return audit.asyncpg_args(entry)


async def _replay(conn: Any, request: Request, outcome: Outcome, now: datetime) -> Outcome:
    # A replay is a request like any other and leaves an audit row; a refusal leaves none.
    if outcome.kind == "replayed":
        await conn.fetchval(REPLAY_AUDIT, *_audited(request, now, None))
    return outcome


async def record_one(
    pool: FairPool,
    request: Request,
    item: SignInCreate,
    *,
    now: datetime,
    policy: AssessmentSettings,
) -> Outcome | None:
    """One sign-in, or None when it needs the general path (an ended week)."""
    moment = as_utc(item.device_time)
    if moment - now > timedelta(seconds=policy.future_tolerance_seconds):
        return Outcome(
            "rejected",
            code="device_time_in_future",
            field="device_time",
            detail="device time is more than the tolerance ahead of the server",
        )
    cadre_id = item.cadre_id
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            READ, cadre_id, item.idempotency_key, moment, local_datetime(moment).date()
        )
        previous = posting = fence = None
        for r in rows:
            if r["part"] == 0:
                return await _replay(conn, request, answer(_stored(r, cadre_id), item), now)
            if r["part"] == 1:
                previous = (r["device_time"], r["lat"], r["lon"])
            else:
                posting = SimpleNamespace(posting_id=r["posting_id"], unit_id=r["unit_id"])
                if r["fence_lat"] is not None:
                    fence = SimpleNamespace(
                        fence_lat=r["fence_lat"],
                        fence_lon=r["fence_lon"],
                        fence_radius_m=r["fence_radius_m"],
                    )
        new = judged(request, cadre_id, item, moment, posting, fence, previous, now, policy)
        if new is None:
            return None
        row, envelope = new
        event = outbox_row(envelope)
        written = await conn.fetchval(
            WRITE,
            *(row[c] for c in COLUMNS),
            *(event[c] for c in OUTBOX_COLUMNS),
            *_audited(request, now, envelope),
        )
        if written is not None:
            outcome = Outcome("created", body_of(row))
            count_stored([outcome.body])
            return outcome
        # A concurrent request stored this key first: its answer is the answer.
        winner = await conn.fetchrow(STORED, cadre_id, item.idempotency_key)
        return await _replay(conn, request, answer(_stored(winner, cadre_id), item), now)


async def sign_in(
    runtime: Any,
    request: Request,
    item: SignInCreate,
    *,
    now: datetime,
    policy: AssessmentSettings,
) -> Outcome:
    """One sign-in: this path on PostgreSQL, signin_lite's on a SQLite file, the general
    one otherwise or when needed."""
    pool = getattr(runtime, "signin_pool", None)
    if pool is not None:
        try:
            outcome = await record_one(pool, request, item, now=now, policy=policy)
        except (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError):
            # A connection the server dropped (restart, failover); the key makes a retry safe.
            outcome = await record_one(pool, request, item, now=now, policy=policy)
        if outcome is not None:
            if outcome.kind == "created":
                runtime.relay.wake()
            return outcome
    lite = getattr(runtime, "signin_lite", None)
    if lite is not None:  # SQLite: its own short transaction (signin_lite.py)
        outcome = await signin_lite.record_one(lite, request, item, now=now, policy=policy)
        if outcome is not None:
            if outcome.kind == "created":
                runtime.relay.wake()
            return outcome
    async with runtime.transaction() as session:
        session.info["audit_request"] = request
        [outcome] = await record(session, item.cadre_id, [item], now=now, policy=policy)
        if outcome.kind in ("rejected", "conflict"):
            return outcome  # nothing was written: the transaction commits nothing
        await record_request(session, request, now)
    return outcome


async def open_for(runtime: Any) -> None:
    """Give the runtime its hot-path pool (closed when the runtime stops)."""
    runtime.signin_pool = pool = await open_pool(runtime.url)
    if pool is not None:
        runtime.closers.append(pool.close)
    runtime.signin_lite = lite = signin_lite.open_writer(runtime.url, runtime.engine)
    if lite is not None:
        runtime.closers.append(lite.close)
