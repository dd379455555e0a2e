"""Audit trail: a hash-chained, per-service log of every state-changing request and every
applied event, appended in the same transaction as the change it records.

Each row holds `hash = sha256(prev_hash ":" seq ":" canonical content)`, `prev_hash` being
the previous row's hash (64 zeros before the first). The database computes the hash in the
same INSERT ... SELECT that reads the previous row, so an append is one statement; on
PostgreSQL a transaction-scoped advisory lock taken just before it (at the end of the
transaction, held only until commit) puts concurrent transactions and replicas in one
order. SQLite serialises writers already.

`verify()` walks the chain and names each row that was edited, deleted or inserted behind
the service's back. What no chain without a secret can show is a cut of the newest rows or
a rewrite of everything from some row on: `frontline audit verify` prints the head
(`seq:hash`) so that it can be written down elsewhere and checked later with `--anchor`.
"""

import hashlib
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.events import Envelope

GENESIS = "0" * 64
LOCK_KEY = zlib.crc32(b"frontline:audit_log")  # one chain per database
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_TARGETS = 20
MAX_EVENTS_NOTED = 20
BigId = BigInteger().with_variant(Integer, "sqlite")


def audit_table(metadata: MetaData) -> Table:
    """The audit log every service database has, on that service's metadata."""
    return Table(
        "audit_log",
        metadata,
        Column("seq", BigId, primary_key=True, autoincrement=False),
        Column("at", DateTime(timezone=True), nullable=False, index=True),
        Column("kind", String(16), nullable=False),  # request | event
        Column("action", Text, nullable=False),  # "POST /registry/v1/users" or an event type
        Column("actor_id", Uuid, nullable=True, index=True),
        Column("actor_name", Text, nullable=True),
        Column("roles", Text, nullable=False),  # comma-separated
        Column("request_id", String(64), nullable=True, index=True),
        Column("target_id", String(64), nullable=True, index=True),  # the first of targets
        Column("targets", Text, nullable=False),  # JSON list of ids
        Column("unit_id", Uuid, nullable=True, index=True),  # the target's unit, for scope
        Column("summary", Text, nullable=False),  # canonical JSON
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
    )


AUDIT = audit_table(MetaData())  # detached copy: works on whichever database is bound


@dataclass(frozen=True)
class Actor:
    """Who caused a change, and through which request: carried on into the events it wrote."""

    request_id: str | None = None
    user_id: uuid.UUID | None = None
    username: str | None = None
    roles: tuple[str, ...] = ()

    @classmethod
    def of_envelope(cls, env: Envelope) -> "Actor":
        return cls(request_id=env.request_id, user_id=env.actor_id, username=env.actor_name)


def current_actor(session: AsyncSession) -> Actor:
    """The actor of the request or event that this session's transaction serves."""
    actor = session.info.get("audit_actor")
    if actor is not None:
        return actor
    request = session.info.get("audit_request")
    if request is None:
        return Actor()
    state = request.state
    principal = getattr(state, "principal", None)
    if principal is None:
        return Actor(request_id=getattr(state, "request_id", None))
    return Actor(
        request_id=getattr(state, "request_id", None),
        user_id=principal.user_id,
        username=principal.username,
        roles=tuple(str(r) for r in principal.roles),
    )


def note(
    session: AsyncSession,
    *,
    targets: Iterable[Any] = (),
    unit_id: uuid.UUID | None = None,
    **summary: Any,
) -> None:
    """Let a route say more than the kernel sees: extra targets, the target's unit, facts."""
    info = session.info.setdefault("audit_note", {"targets": [], "unit_id": None, "summary": {}})
    info["targets"].extend(str(t) for t in targets)
    if unit_id is not None:
        info["unit_id"] = unit_id
    info["summary"].update(summary)


def note_events(session: AsyncSession, envelopes: list[Envelope], count: int | None = None) -> None:
    """Called by add_events: the events a transaction wrote summarise its change. `count`:
    how many were written when `envelopes` is a sample of them (add_events_from)."""
    noted = session.info.setdefault("audit_events", {"count": 0, "items": []})
    noted["count"] += len(envelopes) if count is None else count
    room = MAX_EVENTS_NOTED - len(noted["items"])
    if room > 0:
        noted["items"].extend((e.type, e.key, e.payload) for e in envelopes[:room])


@dataclass
class Entry:
    """One audit row before it is chained."""

    at: datetime
    kind: str
    action: str
    actor_id: uuid.UUID | None = None
    actor_name: str | None = None
    roles: str = ""
    request_id: str | None = None
    targets: list[str] = field(default_factory=list)
    unit_id: uuid.UUID | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    def values(self) -> dict[str, Any]:
        """Column values plus `content`, the canonical text the hash covers."""
        targets = _dedup(_clean(t)[:64] for t in self.targets)[:MAX_TARGETS]
        row = {
            "at": self.at.astimezone(UTC),
            "kind": self.kind,
            "action": _clean(self.action),
            "actor_id": self.actor_id,
            "actor_name": _clean(self.actor_name) if self.actor_name is not None else None,
            "roles": _clean(self.roles),
            "request_id": self.request_id,
            "target_id": targets[0] if targets else None,
            "targets": _json(targets),
            "unit_id": self.unit_id,
            "summary": _json(self.summary),
        }
        row["content"] = canonical(row)
        return row


def canonical(row: Any) -> str:
    """The text a row's hash covers, rebuilt from its stored columns (a mapping or a Row)."""
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    at = get("at")
    if at.tzinfo is None:  # SQLite hands back naive UTC
        at = at.replace(tzinfo=UTC)
    actor_id, unit_id = get("actor_id"), get("unit_id")
    doc = {
        "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "kind": get("kind"),
        "action": get("action"),
        "actor_id": str(actor_id) if actor_id else None,
        "actor_name": get("actor_name"),
        "roles": get("roles"),
        "request_id": get("request_id"),
        "target_id": get("target_id"),
        "targets": get("targets"),
        "unit_id": str(unit_id) if unit_id else None,
        "summary": get("summary"),
    }
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def chain_hash(prev_hash: str, seq: int, content: str) -> str:
    return hashlib.sha256(f"{prev_hash}:{seq}:{content}".encode()).hexdigest()


_COLUMNS = (
    "at kind action actor_id actor_name roles request_id target_id targets unit_id summary"
).split()
_PG_TYPES = {"at": "TIMESTAMPTZ", "actor_id": "UUID", "unit_id": "UUID"}


def _insert_sql(param: Callable[[str], str], postgres: bool) -> str:
    """INSERT ... SELECT reading the chain's last row and hashing in the same statement."""
    values = ", ".join(param(c) for c in _COLUMNS)
    chained = f"last.hash || ':' || CAST(last.seq + 1 AS TEXT) || ':' || {param('content')}"
    digest = (
        f"encode(sha256(convert_to({chained}, 'UTF8')), 'hex')"
        if postgres
        else f"sha256_hex({chained})"
    )
    return (
        f"INSERT INTO audit_log (seq, {', '.join(_COLUMNS)}, prev_hash, hash) "
        f"SELECT last.seq + 1, {values}, last.hash, {digest} FROM ("
        "SELECT COALESCE((SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1), 0) AS seq, "
        f"COALESCE((SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1), '{GENESIS}') AS hash"
        ") AS last"
    )


def _pg_cast(name: str, placeholder: str) -> str:
    return f"CAST({placeholder} AS {_PG_TYPES.get(name, 'TEXT')})"


#: For raw sqlite3 callers (the sign-in hot path on SQLite): SQLITE_INSERT_SQL with the
#: named values of sqlite_args(); SQLite serialises writers, so no lock comes first.
SQLITE_INSERT_SQL = _insert_sql(lambda c: f":{c}", postgres=False)
_SQLITE_INSERT = text(SQLITE_INSERT_SQL)
_ORDER = ["content", *_COLUMNS]
#: For raw asyncpg callers: run LOCK_SQL (arg LOCK_KEY), then INSERT_SQL (args asyncpg_args()).
LOCK_SQL = "SELECT pg_advisory_xact_lock($1)"
INSERT_SQL = _insert_sql(lambda c: _pg_cast(c, f"${_ORDER.index(c) + 1}"), postgres=True)


def pg_function_sql(name: str) -> str:
    """`CREATE FUNCTION name(...)`: LOCK_SQL then INSERT_SQL in one call (args as for
    INSERT_SQL). Each statement in a PL/pgSQL function takes a fresh snapshot, so the call
    may sit inside a larger statement (the sign-in hot path's single write) and still read
    the chain's head after the lock; the lock is then held only inside the server."""
    types = ", ".join(["text", *(_PG_TYPES.get(c, "text").lower() for c in _COLUMNS)])
    return (
        f"CREATE OR REPLACE FUNCTION {name}({types}) RETURNS integer LANGUAGE plpgsql AS $fn$\n"
        f"BEGIN\n  PERFORM pg_advisory_xact_lock({LOCK_KEY});\n  {INSERT_SQL};\n"
        "  RETURN 1;\nEND $fn$"
    )


# Named by a hash of its body: replicas of different versions never replace each other's.
PG_FUNCTION = f"frontline_audit_append_{zlib.crc32(pg_function_sql('f').encode()):08x}"
_PG_SIGNATURE = (
    f"{PG_FUNCTION}({', '.join(['text', *(_PG_TYPES.get(c, 'text') for c in _COLUMNS)])})"
)
_PG_CALL = text(f"SELECT {PG_FUNCTION}({', '.join(_pg_cast(c, f':{c}') for c in _ORDER)})")


async def ensure_pg_function(engine: AsyncEngine) -> None:
    """Create PG_FUNCTION unless it exists (at start; its body is the INSERT above, so it
    lives with the code, not in a migration). Replicas starting together may race."""
    exists = text("SELECT to_regprocedure(:s) IS NOT NULL")
    async with engine.connect() as conn:
        if await conn.scalar(exists, {"s": _PG_SIGNATURE}):
            return
        try:
            await conn.exec_driver_sql(pg_function_sql(PG_FUNCTION))
            await conn.commit()
        except DBAPIError:
            await conn.rollback()
            if not await conn.scalar(exists, {"s": _PG_SIGNATURE}):
                raise


def asyncpg_args(entry: Entry) -> list[Any]:
    values = entry.values()
    return [values[c] for c in _ORDER]


async def append(session: AsyncSession, entry: Entry) -> None:
    """Chain one row onto the log, in the caller's transaction; call it last, just before
    the commit. On PostgreSQL the lock and the append are one call of PG_FUNCTION (made by
    the runtime at start), so the lock is held for that call and the commit only.
    """
    values = entry.values()
    if session.bind.dialect.name == "postgresql":
        await session.execute(_PG_CALL, values)
    else:
        await session.execute(_SQLITE_INSERT, _sqlite_values(values))


async def append_asyncpg(conn: Any, entry: Entry) -> None:
    """The same append from a raw asyncpg connection inside its transaction."""
    await conn.execute(LOCK_SQL, LOCK_KEY)
    await conn.execute(INSERT_SQL, *asyncpg_args(entry))


def sqlite_args(entry: Entry) -> dict[str, Any]:
    return _sqlite_values(entry.values())


def _sqlite_values(values: dict[str, Any]) -> dict[str, Any]:
    # Stored the way SQLAlchemy's DateTime and Uuid types store them on SQLite, so that
    # ORM/Core reads and the verifier see exactly what was hashed.
    out = dict(values)
    out["at"] = values["at"].strftime("%Y-%m-%d %H:%M:%S.%f")
    for k in ("actor_id", "unit_id"):
        out[k] = values[k].hex if values[k] is not None else None
    return out


async def record_event(session: AsyncSession, env: Envelope, at: datetime) -> None:
    """The row for an applied event (inbox transaction), after its handler ran."""
    targets = [env.key, *_ids(env.payload)]
    extra = session.info.get("audit_note") or {}
    summary: dict[str, Any] = {
        "event_id": str(env.event_id),
        "producer": env.producer,
        "version": env.version,
        "occurred_at": env.occurred_at.isoformat(),
    }
    summary.update(extra.get("summary", {}))
    noted = session.info.get("audit_events")
    if noted:
        summary["events"] = [{"type": t, "key": k} for t, k, _ in noted["items"]]
        summary["events_count"] = noted["count"]
    await append(
        session,
        Entry(
            at=at,
            kind="event",
            action=env.type,
            actor_id=env.actor_id,
            actor_name=env.actor_name,
            request_id=env.request_id,
            targets=[*targets, *extra.get("targets", [])],
            unit_id=extra.get("unit_id") or _unit(env.payload),
            summary=summary,
        ),
    )


def event_targets_and_unit(session: AsyncSession) -> tuple[list[str], uuid.UUID | None]:
    """Targets and unit read off the events a transaction wrote (for request rows)."""
    noted = session.info.get("audit_events")
    targets: list[str] = []
    unit = None
    for _, key, payload in noted["items"] if noted else []:
        targets.extend([key, *_ids(payload)])
        unit = unit or _unit(payload)
    return targets, unit


@dataclass
class Problem:
    seq: int
    what: str

    def __str__(self) -> str:
        return f"row {self.seq}: {self.what}"


@dataclass
class Report:
    rows: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(
    engine: AsyncEngine, *, anchor: tuple[int, str] | None = None, chunk: int = 5000
) -> Report:
    """Walk the chain in order; every break is reported with the row it concerns."""
    report = Report()
    prev_seq, prev_hash = 0, GENESIS
    cols = [AUDIT.c[c] for c in ("seq", *_COLUMNS, "prev_hash", "hash")]
    anchored = anchor is None
    async with engine.connect() as conn:
        while True:
            rows = (
                await conn.execute(
                    select(*cols).where(AUDIT.c.seq > prev_seq).order_by(AUDIT.c.seq).limit(chunk)
                )
            ).all()
            for row in rows:
                report.rows += 1
                if row.seq != prev_seq + 1:
                    first, last = prev_seq + 1, row.seq - 1
                    upto = f" up to row {last}" if last > first else ""
                    report.problems.append(Problem(first, f"missing{upto} (deleted)"))
                if row.prev_hash != prev_hash:
                    report.problems.append(
                        Problem(
                            row.seq,
                            f"prev_hash does not match the hash of row {prev_seq} "
                            "(a row before it was inserted, deleted or rewritten)",
                        )
                    )
                if chain_hash(row.prev_hash, row.seq, canonical(row)) != row.hash:
                    report.problems.append(
                        Problem(row.seq, "content does not match its hash (edited or forged)")
                    )
                if anchor and row.seq == anchor[0]:
                    anchored = row.hash == anchor[1]
                prev_seq, prev_hash = row.seq, row.hash
            if len(rows) < chunk:
                break
    report.head_seq, report.head_hash = prev_seq, prev_hash
    if anchor and not anchored:
        report.problems.append(
            Problem(
                anchor[0], "differs from or is missing against the anchor (log cut or rewritten)"
            )
        )
    return report


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


def _clean(value: str) -> str:
    # PostgreSQL text cannot hold NUL; the audit row must never be why a change fails.
    return value.replace("\x00", "")


def _dedup(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _ids(payload: dict[str, Any]) -> list[str]:
    """The ids a payload names: `id` first, then every `*_id` field holding a value."""
    out = [payload["id"]] if isinstance(payload.get("id"), str) else []
    out += [v for k, v in payload.items() if k.endswith("_id") and isinstance(v, str) and v]
    return out


def _unit(payload: dict[str, Any]) -> uuid.UUID | None:
    for key in ("unit_id", "township_id"):
        value = payload.get(key)
        if isinstance(value, str):
            try:
                return uuid.UUID(value)
            except ValueError:
                return None
    return None
