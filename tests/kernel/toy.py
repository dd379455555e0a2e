"""A toy service that exercises the kernel alone: a note is a change plus its event;
the handler tallies notes per key and remembers whether they came in order.
"""

import asyncio
import sqlite3
import uuid
from pathlib import Path

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import Column, ForeignKey, Uuid, text
from sqlmodel import Field

from shared.auth import CurrentPrincipal, require_roles
from shared.contracts.enums import Role
from shared.db import is_postgres, service_base, upsert
from shared.errors import Conflict
from shared.events import EventPayload, event_type
from shared.inbox import Handlers
from shared.outbox import add_event, kernel_tables
from shared.runtime import ClockDep, ServiceRuntime, ServiceSpec, SessionDep
from shared.settings import ServiceSettings

Base = service_base("toy")
outbox, inbox = kernel_tables(Base.metadata)


class Note(Base, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    key: str
    seq: int


class Tally(Base, table=True):
    key: str = Field(primary_key=True)
    count: int = 0
    last_seq: int = 0
    in_order: bool = True


class Parent(Base, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)


class Child(Base, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # Checked at COMMIT, not at INSERT: the only way a write can fail after the handler.
    parent_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid, ForeignKey("parent.id", deferrable=True, initially="DEFERRED"), nullable=False
        )
    )


@event_type("toy.note.added")
class NoteAdded(EventPayload):
    key: str
    seq: int
    poison: bool = False


class NoteIn(BaseModel):
    key: str
    seq: int
    poison: bool = False
    fail_after_write: bool = False


router = APIRouter(prefix="/v1")


@router.post("/notes", status_code=201)
async def add_note(body: NoteIn, clock: ClockDep, session: SessionDep("toy")):
    """Write a note and its event; optionally fail afterwards (the transaction rolls back)."""
    session.add(Note(key=body.key, seq=body.seq))
    await session.flush()
    await add_event(
        session,
        NoteAdded(key=body.key, seq=body.seq, poison=body.poison),
        key=body.key,
        producer="toy",
        occurred_at=clock.now(),
    )
    if body.fail_after_write:
        raise Conflict("failing on purpose after the write", code="toy_failure")
    return {"key": body.key, "seq": body.seq}


@router.post("/signed-notes", status_code=201)
async def add_signed_note(
    body: NoteIn, principal: CurrentPrincipal, clock: ClockDep, session: SessionDep("toy")
):
    """A note by a known user: its audit row and its event name them."""
    session.add(Note(key=body.key, seq=body.seq))
    await add_event(
        session,
        NoteAdded(key=body.key, seq=body.seq),
        key=body.key,
        producer="toy",
        occurred_at=clock.now(),
    )
    return {"key": body.key, "by": principal.username}


@router.post("/notes/{key}/seal", status_code=201)
async def seal(
    key: str, session: SessionDep("toy"), principal=Depends(require_roles(Role.org_admin))
):
    """Only org_admin seals: another principal's attempt is refused (403)."""
    session.add(Note(key=key, seq=0))
    return {"sealed": key}


@router.post("/orphans", status_code=201)
async def add_orphan(clock: ClockDep, session: SessionDep("toy")):
    """A child of no parent: the INSERT passes, the COMMIT fails."""
    session.add(Child(parent_id=uuid.uuid4()))
    await session.flush()
    await add_event(
        session,
        NoteAdded(key="orphan", seq=1),
        key="orphan",
        producer="toy",
        occurred_at=clock.now(),
    )
    return {"created": True}


@router.get("/admin-only")
async def admin_only(principal=Depends(require_roles(Role.org_admin))):
    """Only org_admin gets through."""
    return {"user": principal.username}


@router.get("/cadres/{cadre_id}")
async def own_record(cadre_id: uuid.UUID, principal: CurrentPrincipal):
    """A cadre reads only their own record; auditors read anyone's."""
    principal.ensure_self_or(cadre_id, Role.auditor)
    return {"cadre_id": str(cadre_id)}


handlers = Handlers()
POISON_IS_FATAL = True  # a test flips it to play "the fix is deployed"
OUTAGE = False  # while True, the handler meets a real transient database failure


async def _database_failure(session) -> None:
    """A real one, not a raised lookalike: PostgreSQL ends this very connection; SQLite
    reports "database is locked" to a second writer while this transaction holds the lock."""
    if is_postgres(session):
        await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
    else:
        path = session.bind.url.database

        def write_elsewhere() -> None:
            other = sqlite3.connect(path, timeout=0)
            try:
                other.execute("UPDATE tally SET count = count WHERE key = ''")
            finally:
                other.close()

        await asyncio.to_thread(write_elsewhere)


@handlers.on(NoteAdded)
async def on_note(session, payload: NoteAdded, envelope) -> None:
    if payload.poison and POISON_IS_FATAL:
        raise ValueError("poison note")
    if OUTAGE:
        await _database_failure(session)
    table = Tally.__table__
    current = (await session.execute(table.select().where(table.c.key == payload.key))).first()
    count, last, ok = (
        (current.count, current.last_seq, current.in_order) if current else (0, 0, True)
    )
    row = {"key": payload.key, "count": count + 1, "last_seq": payload.seq}
    row["in_order"] = ok and payload.seq == last + 1
    await session.execute(upsert(session, table, ["key"], ["count", "last_seq", "in_order"]), row)


async def create_tables(rt: ServiceRuntime) -> None:
    # The toy has no migrations of its own: it exists only inside these tests.
    async with rt.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


spec = ServiceSpec(
    name="toy",
    router=router,
    metadata=Base.metadata,
    settings_cls=ServiceSettings,
    migrations=Path("unused"),
    handlers=handlers,
    on_start=create_tables,
)
