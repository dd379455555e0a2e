"""Transactional outbox: events are rows written in the caller's transaction; a relay
publishes unsent rows in order and marks them only after the transport acknowledged them.
"""

import asyncio
import contextlib
import logging
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    case,
    cast,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import ColumnElement, FromClause

from shared import tracing
from shared.audit import MAX_EVENTS_NOTED, audit_table, current_actor, note_events
from shared.bulk import insert_rows
from shared.clock import Clock
from shared.db import is_postgres
from shared.events import Envelope, EventPayload, decode, encode, topic_for
from shared.failures import describe, is_transient
from shared.transport import Record, Transport

log = logging.getLogger(__name__)
BigId = BigInteger().with_variant(Integer, "sqlite")


def kernel_tables(metadata: MetaData) -> tuple[Table, Table]:
    """The outbox and inbox every service database has, on that service's metadata (and
    the other kernel tables: the audit log).
    """
    audit_table(metadata)
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("topic", String(100), nullable=False),
        Column("key", String(100), nullable=False),
        Column("type", String(100), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Index(
            "ix_outbox_unpublished",
            "id",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("type", String(100), nullable=False),
        Column("topic", String(100), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
    return outbox, inbox


# Detached copies: add_event writes to whichever service's outbox the session is bound to.
_outbox_md = MetaData()
OUTBOX, INBOX = kernel_tables(_outbox_md)


async def add_event(
    session: AsyncSession,
    payload: EventPayload,
    *,
    key: Any,
    producer: str,
    occurred_at: datetime,
) -> None:
    """Write an event in the caller's transaction; it leaves only if that commits."""
    await add_events(session, [(payload, key)], producer=producer, occurred_at=occurred_at)


class _Noted(NamedTuple):
    """What note_events reads of an envelope."""

    type: str
    key: str
    payload: dict[str, Any]


def _head(
    session: AsyncSession, kind: type[EventPayload], *, producer: str, occurred_at: datetime
) -> Envelope:
    """The envelope every event of `kind` written in this transaction shares: its key,
    payload (left empty here) and event id are each event's own; the actor and trace
    context are those of the request or event the transaction serves."""
    actor = current_actor(session)
    return Envelope(
        type=kind.TYPE,
        version=kind.VERSION,
        occurred_at=occurred_at,
        producer=producer,
        key="",
        payload={},
        request_id=actor.request_id,
        actor_id=actor.user_id,
        actor_name=actor.username,
        traceparent=tracing.current(),
    )


async def add_events(
    session: AsyncSession,
    items: list[tuple[EventPayload, Any]],
    *,
    producer: str,
    occurred_at: datetime,
) -> None:
    """Several events in one multi-row INSERT (batch sign-ins, week closing).

    The rows are those of `outbox_row(envelope_for(...))`, byte for byte, built with one
    envelope model per payload type rather than one per event (a week close files
    thousands of entries and actions)."""
    heads: dict[type[EventPayload], tuple[str, datetime, dict[str, Any]]] = {}
    rows, noted = [], []
    for payload, key in items:
        kind = type(payload)
        if kind not in heads:
            head = _head(session, kind, producer=producer, occurred_at=occurred_at)
            heads[kind] = (head.topic, head.occurred_at, head.model_dump(mode="json"))
        topic, at, template = heads[kind]
        event_id, key, body = str(uuid.uuid4()), str(key), payload.model_dump(mode="json")
        rows.append(
            {
                "event_id": event_id,
                "topic": topic,
                "key": key,
                "type": kind.TYPE,
                "body": orjson.dumps(
                    template | {"event_id": event_id, "key": key, "payload": body}
                ).decode(),
                "created_at": at,
            }
        )
        noted.append(_Noted(kind.TYPE, key, body))
    if rows:
        await session.execute(OUTBOX.insert(), rows)
        note_events(session, noted)  # type: ignore[arg-type]  # reads type, key and payload
        # Read by the transaction owner after commit, to wake the relay at once.
        session.info["outbox_written"] = session.info.get("outbox_written", 0) + len(rows)


async def add_event_dicts(
    session: AsyncSession,
    payload_type: type[EventPayload],
    items: list[tuple[dict[str, Any], Any]],
    *,
    producer: str,
    occurred_at: datetime,
) -> None:
    """Many events of one type, each payload given as the dict `model_dump(mode="json")`
    of its model would be (same keys in the same order): the very rows add_events writes,
    without two pydantic models per event, and by COPY on PostgreSQL (a month's batch
    announces up to 100,000 changes). The first payload is checked against the model, so
    a contract that gains a field fails loudly here instead of publishing old shapes."""
    if not items:
        return
    first = items[0][0]
    model = payload_type.model_validate(first)
    if list(model.model_dump(mode="json").items()) != list(first.items()):
        raise ValueError(f"payload is not the JSON form of {payload_type.__name__}: {first}")
    head = _head(session, payload_type, producer=producer, occurred_at=occurred_at)
    topic, template = head.topic, head.model_dump(mode="json")
    rows, noted = [], []
    for payload, key in items:
        event_id, key = str(uuid.uuid4()), str(key)
        body = template | {"event_id": event_id, "key": key, "payload": payload}
        rows.append(
            {
                "event_id": event_id,
                "topic": topic,
                "key": key,
                "type": head.type,
                "body": orjson.dumps(body).decode(),
                "created_at": head.occurred_at,
            }
        )
        noted.append(_Noted(head.type, key, payload))
    await insert_rows(session, OUTBOX, rows)
    note_events(session, noted)  # type: ignore[arg-type]  # reads type, key and payload only
    session.info["outbox_written"] = session.info.get("outbox_written", 0) + len(rows)


async def add_events_from(
    session: AsyncSession,
    payload_type: type[EventPayload],
    rows: FromClause,
    *,
    key: ColumnElement,
    payload: dict[str, ColumnElement],
    producer: str,
    occurred_at: datetime,
) -> int:
    """PostgreSQL: one event per row of `rows`, written by the database in one
    INSERT ... SELECT (no Python object per event): for set-based writers of many events
    (a week close). `rows` may be a data-modifying CTE (`INSERT ... RETURNING`), so the
    change and its events are one statement. Each row's envelope is what `add_events`
    writes (a fresh event id, the actor and trace context of the session); `payload` maps
    every field of `payload_type` to an SQL expression over `rows` that gives the JSON
    value pydantic's `mode="json"` would (uuid, date, int, bool, text columns do as they
    are; a Decimal or datetime needs its own text form). Returns the number of events.
    """
    written = events_insert_from(
        session,
        payload_type,
        rows,
        key=key,
        payload=payload,
        producer=producer,
        occurred_at=occurred_at,
    ).cte("written")
    got = (
        await session.execute(select(func.count().over(), written.c.id).limit(MAX_EVENTS_NOTED))
    ).all()
    count = got[0][0] if got else 0
    await note_events_written(session, [r[1] for r in got], count)
    return count


def events_insert_from(
    session: AsyncSession,
    payload_type: type[EventPayload],
    rows: FromClause,
    *,
    key: ColumnElement,
    payload: dict[str, ColumnElement],
    producer: str,
    occurred_at: datetime,
) -> Any:
    """The outbox `INSERT ... SELECT ... RETURNING outbox.id` of `add_events_from`, for a
    caller that composes it into a larger statement (as a CTE) and reads other rows of that
    statement too; it then hands up to MAX_EVENTS_NOTED of the ids and the count of events
    written to `note_events_written`, as `add_events_from` does."""
    if not is_postgres(session):
        raise RuntimeError("add_events_from is PostgreSQL only; use add_events")
    if set(payload) != set(payload_type.model_fields):
        raise ValueError(f"payload of {payload_type.TYPE} must give exactly its fields")
    head = _head(session, payload_type, producer=producer, occurred_at=occurred_at)
    proto = head.model_dump(mode="json")
    for name in payload:
        if not name.isidentifier():
            raise ValueError(f"not a field name: {name!r}")
    # A subquery, not a CTE: the event id is drawn once per row and used twice, and the
    # rows stream into the INSERT without being materialised.
    events = (
        select(
            func.gen_random_uuid().label("event_id"),
            cast(key, Text).label("key"),
            _json_concat(_object({f: _json_text(v) for f, v in payload.items()})).label("payload"),
        )
        .select_from(rows)
        .subquery("events")
    )
    own = {
        "event_id": literal('"') + cast(events.c.event_id, Text) + literal('"'),
        "key": _json_text(events.c.key),
        "payload": events.c.payload,
    }
    body = _json_concat(
        _object({f: own.get(f, orjson.dumps(v).decode()) for f, v in proto.items()})
    )
    return (
        OUTBOX.insert()
        .from_select(
            ["event_id", "topic", "key", "type", "body", "created_at"],
            select(
                cast(events.c.event_id, Text),
                literal(topic_for(payload_type.TYPE)),
                events.c.key,
                literal(payload_type.TYPE),
                body,
                literal(occurred_at, DateTime(timezone=True)),
            ),
        )
        .returning(OUTBOX.c.id)
    )


def _json_text(value: ColumnElement) -> ColumnElement:
    """The JSON text orjson writes for the `mode="json"` form of a column's value: a uuid,
    date, integer or boolean by its own text (quoted where JSON wants it), anything else
    by `to_json` (strings escaped as JSON wants them); NULL is null. The cheap ways matter:
    a week close writes 100k bodies, and `to_json` or `json_build_object` look each
    value's type up again for every row."""
    kind = value.type
    if isinstance(kind, Boolean):
        return case((value.is_(True), "true"), (value.is_(False), "false"), else_="null")
    if isinstance(kind, Integer):
        as_text = cast(value, Text)
    elif isinstance(kind, Uuid):
        as_text = literal('"') + cast(value, Text) + literal('"')
    elif isinstance(kind, Date) and not isinstance(kind, DateTime):
        as_text = literal('"') + func.to_char(value, "YYYY-MM-DD") + literal('"')
    else:
        as_text = cast(func.to_json(value), Text)
    return func.coalesce(as_text, "null")


def _object(items: dict[str, Any]) -> list[Any]:
    """The pieces of a compact JSON object (as orjson writes it): each value a JSON text,
    either SQL (`_json_text`) or a Python str; adjacent Python pieces are joined."""
    pieces: list[Any] = []
    for i, (name, value) in enumerate(items.items()):
        pieces += [("{" if i == 0 else ",") + orjson.dumps(name).decode() + ":", value]
    pieces.append("}" if items else "{}")
    merged: list[Any] = []
    for piece in pieces:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    return merged


def _json_concat(pieces: list[Any]) -> ColumnElement:
    """concat() of the pieces (at most 100 arguments a call, so nested beyond 90)."""
    args = [literal(p, Text) if isinstance(p, str) else p for p in pieces]
    while len(args) > 90:
        args = [func.concat(*args[i : i + 90]) for i in range(0, len(args), 90)]
    return cast(func.concat(*args), Text)


async def note_events_written(session: AsyncSession, ids: list[int], count: int) -> None:
    """Events written by the database (`events_insert_from`): a sample of them (outbox ids)
    summarises the change in the audit row, and the relay is woken after commit."""
    if not count:
        return
    noted = session.info.get("audit_events")
    if noted is not None and len(noted["items"]) >= MAX_EVENTS_NOTED:
        note_events(session, [], count=count)  # no room left for the sample: the count only
    else:
        sample = await session.execute(
            select(OUTBOX.c.body).where(OUTBOX.c.id.in_(ids)).order_by(OUTBOX.c.id)
        )
        note_events(session, [decode(body) for body in sample.scalars()], count=count)
    session.info["outbox_written"] = session.info.get("outbox_written", 0) + count


def outbox_row(env: Envelope) -> dict[str, Any]:
    """The outbox row of one envelope (columns by name); the sign-in hot path writes it
    with its own asyncpg statement."""
    return {
        "event_id": str(env.event_id),
        "topic": env.topic,
        "key": env.key,
        "type": env.type,
        "body": encode(env).decode(),
        "created_at": env.occurred_at,
    }


RECORD_HEADERS = ("event_id", "type", "request_id", "traceparent")


def _record(row) -> Record:
    """An outbox row as a broker record. Its id, type, request id and trace context also go
    as headers, so a consumer can log and trace a record before (or without) decoding it."""
    return _record_of(row.topic, row.key, row.body)


def _record_of(topic: str, key: str, text: str) -> Record:
    body = orjson.loads(text)
    headers = {h: str(body[h]) for h in RECORD_HEADERS if body.get(h)}
    return Record(topic, key, text.encode(), headers)


# The PostgreSQL relay's one statement, on the session's own asyncpg connection: the
# advisory lock is taken once (an uncorrelated subquery; no rows when another replica holds
# it), and the rows are marked sent as they are claimed, in the transaction that publishes
# them: a failed publish rolls the marks back. (A select FOR UPDATE, then an UPDATE of an
# IN list compiled by SQLAlchemy, wrote every row twice.)
CLAIM = """
UPDATE outbox o SET published_at = $3
  FROM (SELECT id FROM outbox
         WHERE published_at IS NULL AND (SELECT pg_try_advisory_xact_lock($1::bigint))
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) c
 WHERE o.id = c.id
RETURNING o.id, o.topic, o.key, o.body
"""


class Relay:
    """Publishes one service's outbox. Several replicas may run it against one PostgreSQL
    database: a transaction-scoped advisory lock lets one publish at a time (keeping order
    per key), and `FOR UPDATE SKIP LOCKED` keeps the others from touching its rows.
    """

    def __init__(
        self,
        name: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        transport: Transport,
        clock: Clock,
        *,
        batch_size: int = 200,
        idle_seconds: float = 0.5,
        linger_seconds: float = 0.02,
    ):
        self.name = name
        self.sessionmaker = sessionmaker
        self.transport = transport
        self.clock = clock
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.linger_seconds = linger_seconds
        self._wake = asyncio.Event()
        self._lock_key = zlib.crc32(f"outbox:{name}".encode())

    def wake(self) -> None:
        self._wake.set()

    def _unsent(self):
        return (
            select(OUTBOX.c.id, OUTBOX.c.topic, OUTBOX.c.key, OUTBOX.c.body)
            .where(OUTBOX.c.published_at.is_(None))
            .order_by(OUTBOX.c.id)
            .limit(self.batch_size)
        )

    async def _publish(self, rows) -> None:
        await self.transport.publish([_record(r) for r in rows])

    async def run_once(self) -> int:
        async with self.sessionmaker() as session:
            if is_postgres(session):
                return await self._run_once_pg(session)
            return await self._run_once_sqlite(session)

    async def _run_once_pg(self, session: AsyncSession) -> int:
        # SQLAlchemy's asyncpg adapter would begin only at its own first statement: the
        # transaction is asyncpg's, ended before the session hands the connection back.
        raw = await (await session.connection()).get_raw_connection()
        conn = raw.driver_connection
        async with conn.transaction():
            rows = await conn.fetch(CLAIM, self._lock_key, self.batch_size, self.clock.now())
            if not rows:
                return 0
            rows.sort(key=lambda r: r[0])  # RETURNING keeps no order: published by id
            await self.transport.publish([_record_of(r[1], r[2], r[3]) for r in rows])
        return len(rows)

    async def _run_once_sqlite(self, session: AsyncSession) -> int:
        # One process owns a SQLite file, so one relay: read, publish, then mark in a
        # short write transaction (a long one would block sign-ins).
        async with session.begin():
            rows = (await session.execute(self._unsent())).all()
        if not rows:
            return 0
        await self._publish(rows)
        async with session.begin():
            await session.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_([r.id for r in rows]))
                .values(published_at=self.clock.now())
            )
        return len(rows)

    async def drain(self) -> int:
        total = 0
        while n := await self.run_once():
            total += n
        return total

    async def run(self) -> None:
        backoff = self.idle_seconds
        while True:
            try:
                sent = await self.run_once()
                backoff = self.idle_seconds
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Broker or database unavailable: rows stay unsent and are retried.
                # A batch that failed part-way left, per key, only a prefix on the broker
                # (KafkaTransport.publish), so the retry cannot reorder a key.
                if is_transient(exc):
                    log.warning(
                        "relay %s: publish failed (%s), will retry", self.name, describe(exc)
                    )
                else:
                    log.warning("relay %s: publish failed, will retry", self.name, exc_info=True)
                sent = 0
                backoff = min(backoff * 2, 10.0)
            if sent < self.batch_size:
                if sent == 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(backoff):  # not wait_for: see LocalConsumer
                            await self._wake.wait()
                # Linger a moment so that a burst of commits goes out as one batch.
                await asyncio.sleep(self.linger_seconds)
                self._wake.clear()


async def backlog(session: AsyncSession, now: datetime) -> dict[str, Any]:
    """Unsent rows and the age of the oldest, for health reports."""
    row = (
        await session.execute(
            select(func.count(), func.min(OUTBOX.c.created_at)).where(
                OUTBOX.c.published_at.is_(None)
            )
        )
    ).one()
    oldest = row[1]
    if oldest is not None and oldest.tzinfo is None:  # SQLite hands back naive UTC
        oldest = oldest.replace(tzinfo=UTC)
    return {
        "unsent": row[0],
        "oldest_age_seconds": (now - oldest).total_seconds() if oldest else 0.0,
    }
