"""The single sign-in on SQLite (`make run`): one short write transaction that never
waits on the event loop.

Measured first (bench/README.md, py-spy on `frontline run` under wrk): the general path
sent about eight statements per sign-in through aiosqlite, each a hop to its thread and
back. Under load every hop waits for the GIL behind the event loop, and the write lock,
taken at the sign-in's INSERT, stayed held across the hops to the outbox and audit
INSERTs and the COMMIT, so the other requests' transactions queued behind it in
SQLite's busy handler (p99 of seconds).

Here a sign-in is one transaction on a connection of its own, run start to end in one
synchronous call on the event loop: `BEGIN IMMEDIATE`, the same reads as the PostgreSQL
path (the row stored under the key, the cadre's sign-in just before, the posting on the
local date with its fence), the flags from `signins.judge`, then the sign-in, its outbox
row and its audit row (the kernel's chained INSERT), `COMMIT`. That is well under a
millisecond: WAL with synchronous=NORMAL does not sync on commit, and this connection
leaves checkpoints to the pool's (`wal_autocheckpoint=0`; every 200 commits it asks a
pool connection, in its thread, for one), so no fsync happens on the loop. The lock is
never waited for on the loop: the connection's busy timeout is 0, and when another
connection holds the write lock the attempt is rolled back and retried after a short
asynchronous sleep, in arrival order. No await happens inside the transaction, so two sign-ins of
one key are serialised here, and against the general path (the batch, an ended week) the
(cadre, key) unique constraint decides as it does there. Statements are prepared once
(sqlite3's statement cache); values are bound with the column types' own SQLAlchemy
processors, so rows read back exactly as the general path's do.
"""

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from fastapi import Request
from sqlalchemy import Column
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from services.assessment.schemas import SignInCreate
from services.assessment.service.common import POSTINGS, SIGN_INS, as_utc
from services.assessment.service.signins import (
    Outcome,
    answer,
    body_of,
    count_stored,
    judged,
)
from services.assessment.settings import AssessmentSettings
from shared import audit
from shared.audit import note_events
from shared.audit_http import request_entry
from shared.clock import local_datetime
from shared.db import prepare_sqlite
from shared.outbox import OUTBOX, outbox_row

COLUMNS = (
    "id cadre_id idempotency_key device_time received_at lat lon accuracy_m device_id "
    "mock_location status reasons counted posting_id unit_id local_date day_date night_date "
    "request_hash"
).split()
STORED_COLUMNS = "id idempotency_key device_time received_at status reasons request_hash".split()
OUTBOX_COLUMNS = ("event_id", "topic", "key", "type", "body", "created_at")

STORED = (
    f"SELECT {', '.join(STORED_COLUMNS)} FROM sign_ins WHERE cadre_id = ? AND idempotency_key = ?"
)
# The cadre's sign-in just before this one: `_track` and bisect in the general path.
PREVIOUS = (
    "SELECT device_time, lat, lon FROM sign_ins WHERE cadre_id = ? AND device_time <= ?"
    " ORDER BY device_time DESC, lat DESC, lon DESC LIMIT 1"
)
# The posting on the local date (`posting_on`) and its fence, the nearest fenced ancestor
# (`fences_of`).
POSTING = """
SELECT p.posting_id, p.unit_id, f.fence_lat, f.fence_lon, f.fence_radius_m
  FROM postings p
  LEFT JOIN units f ON f.unit_id = (
       SELECT up.ancestor_id FROM unit_paths up JOIN units u ON u.unit_id = up.ancestor_id
        WHERE up.unit_id = p.unit_id AND u.fence_lat IS NOT NULL
        ORDER BY up.depth LIMIT 1)
 WHERE p.cadre_id = ? AND p.start_date <= ? AND (p.end_date IS NULL OR p.end_date >= ?)
 ORDER BY p.start_date DESC LIMIT 1
"""
INSERT = (
    f"INSERT INTO sign_ins ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    " ON CONFLICT (cadre_id, idempotency_key) DO NOTHING"
)
INSERT_OUTBOX = (
    f"INSERT INTO outbox ({', '.join(OUTBOX_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(OUTBOX_COLUMNS))})"
)

Convert = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


class Types:
    """The SQLAlchemy dialect's own bind and result processors of the columns used here."""

    def __init__(self, dialect: Dialect):
        def bind(col: Column) -> Convert:
            return col.type.dialect_impl(dialect).bind_processor(dialect) or _same

        def result(col: Column) -> Convert:
            return col.type.dialect_impl(dialect).result_processor(dialect, None) or _same

        self.sign_in = [bind(SIGN_INS.c[c]) for c in COLUMNS]
        self.outbox = [bind(OUTBOX.c[c]) for c in OUTBOX_COLUMNS]
        self.stored = [result(SIGN_INS.c[c]) for c in STORED_COLUMNS]
        self.cadre = bind(SIGN_INS.c.cadre_id)
        self.moment = bind(SIGN_INS.c.device_time)
        self.moment_out = result(SIGN_INS.c.device_time)
        self.day = bind(POSTINGS.c.start_date)
        self.posting_out = result(POSTINGS.c.posting_id)
        self.unit_out = result(POSTINGS.c.unit_id)


class Busy(Exception):
    """Another connection holds the write lock: roll back and try again shortly."""


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


class LiteWriter:
    """The hot path's own connection to the service's SQLite file."""

    # Commits between two checkpoints this writer asks the pool for (about 4 MB of WAL).
    CHECKPOINT_EVERY = 200

    def __init__(self, path: str, engine: AsyncEngine, *, timeout: float = 30.0):
        self.conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, cached_statements=64
        )
        prepare_sqlite(self.conn)  # WAL, synchronous=NORMAL, sha256_hex, ...
        self.conn.execute("PRAGMA busy_timeout=0")  # never wait for the lock on the loop
        self.conn.execute("PRAGMA wal_autocheckpoint=0")  # nor for a checkpoint's fsync
        self.engine = engine
        self.types = Types(engine.dialect)
        self.timeout = timeout
        self.commits = 0
        self.checkpointing: asyncio.Task | None = None
        self.turn = asyncio.Lock()

    async def close(self) -> None:
        if self.checkpointing is not None:
            await asyncio.wait([self.checkpointing], timeout=10)
        self.conn.close()

    async def _checkpoint(self) -> None:
        # On a pool connection (its own thread): the WAL's fsync never stalls the loop.
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _committed(self) -> None:
        """The pool's connections checkpoint as they commit; a run of writes from here
        alone (replays leave only an audit row) must not grow the WAL without end."""
        self.commits += 1
        if self.commits % self.CHECKPOINT_EVERY == 0 and (
            self.checkpointing is None or self.checkpointing.done()
        ):
            self.checkpointing = asyncio.get_running_loop().create_task(self._checkpoint())

    def _once(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise Busy from exc
            raise
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                raise Busy from exc
            raise
        return result

    async def transact(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """`work(conn)` inside BEGIN IMMEDIATE ... COMMIT, in one synchronous call; retried
        (after an asynchronous back-off) while another connection holds the write lock."""
        # In arrival order: while one sign-in waits for the lock, the next wait behind it
        # (an uncontended asyncio.Lock is taken without yielding to the loop).
        async with self.turn:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout
            delay = 0.001
            while True:
                try:
                    result = self._once(work)
                    self._committed()
                    return result
                except Busy as busy:
                    if loop.time() > deadline:
                        raise sqlite3.OperationalError("database is locked") from busy.__cause__
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.02)


def _audit_args(request: Request, now: datetime, envelope: Any) -> dict[str, Any]:
    """The audit row's values, built as `SessionDep` builds them for any other write."""
    info: dict[str, Any] = {"audit_request": request}
    if envelope is not None:
        note_events(SimpleNamespace(info=info), [envelope])  # type: ignore[arg-type]
    return audit.sqlite_args(request_entry(SimpleNamespace(info=info), request, now))


async def record_one(
    writer: LiteWriter,
    request: Request,
    item: SignInCreate,
    *,
    now: datetime,
    policy: AssessmentSettings,
) -> Outcome | None:
    """One sign-in, or None when it needs the general path (an ended week)."""
    t = writer.types
    cadre_id = item.cadre_id
    moment = as_utc(item.device_time)
    day = local_datetime(moment).date()
    cadre, key = t.cadre(cadre_id), item.idempotency_key
    future = moment - now > timedelta(seconds=policy.future_tolerance_seconds)

    def replay(conn: sqlite3.Connection, stored: tuple) -> Outcome:
        got = {c: f(v) for c, f, v in zip(STORED_COLUMNS, t.stored, stored, strict=True)}
        outcome = answer(got | {"cadre_id": cadre_id}, item)
        # A replay is a request like any other and leaves an audit row; a refusal none.
        if outcome.kind == "replayed":
            conn.execute(audit.SQLITE_INSERT_SQL, _audit_args(request, now, None))
        return outcome

    def work(conn: sqlite3.Connection) -> Outcome | None:
        stored = conn.execute(STORED, (cadre, key)).fetchone()
        if stored is not None:
            return replay(conn, stored)
        if future:
            return Outcome(
                "rejected",
                code="device_time_in_future",
                field="device_time",
                detail="device time is more than the tolerance ahead of the server",
            )
        before = conn.execute(PREVIOUS, (cadre, t.moment(moment))).fetchone()
        previous = (t.moment_out(before[0]), before[1], before[2]) if before else None
        posting = fence = None
        found = conn.execute(POSTING, (cadre, t.day(day), t.day(day))).fetchone()
        if found is not None:
            posting = SimpleNamespace(
                posting_id=t.posting_out(found[0]), unit_id=t.unit_out(found[1])
            )
            if found[2] is not None:
                fence = SimpleNamespace(
                    fence_lat=found[2], fence_lon=found[3], fence_radius_m=found[4]
                )
        new = judged(request, cadre_id, item, moment, posting, fence, previous, now, policy)
        if new is None:
            return None
        row, envelope = new
        written = conn.execute(
            INSERT, [f(row[c]) for c, f in zip(COLUMNS, t.sign_in, strict=True)]
        ).rowcount
        if not written:  # the general path stored this key meanwhile: its answer is ours
            return replay(conn, conn.execute(STORED, (cadre, key)).fetchone())
        event = outbox_row(envelope)
        conn.execute(
            INSERT_OUTBOX, [f(event[c]) for c, f in zip(OUTBOX_COLUMNS, t.outbox, strict=True)]
        )
        conn.execute(audit.SQLITE_INSERT_SQL, _audit_args(request, now, envelope))
        return Outcome("created", body_of(row))

    outcome = await writer.transact(work)  # in this coroutine: its trace, its actor
    if outcome is not None and outcome.kind == "created":
        count_stored([outcome.body])
    return outcome


def open_writer(url: str, engine: AsyncEngine) -> LiteWriter | None:
    """The hot path's connection for a SQLite file (None for PostgreSQL or in-memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.query:
        return None
    if not parsed.database or parsed.database == ":memory:":
        return None
    return LiteWriter(parsed.database, engine)
