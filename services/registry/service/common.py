"""What every registry service module uses: events, 404s, date windows and keyset pages."""

import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import and_, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clock import Clock
from shared.errors import Conflict, InvalidInput, NotFound
from shared.events import EventPayload
from shared.outbox import add_events
from shared.pagination import PageParams, make_page
from shared.versions import bump

PRODUCER = "registry"
M = TypeVar("M")
FOREVER = date(9999, 12, 31)


async def emit(session: AsyncSession, clock: Clock, *events: tuple[EventPayload, Any]) -> None:
    """Outbox rows for (payload, key) pairs, in the caller's transaction."""
    await add_events(session, list(events), producer=PRODUCER, occurred_at=clock.now())


async def next_version(session: AsyncSession, row: Any) -> None:
    """Announce a change of `row`: flush it (the UPDATE takes the row's lock), bump its
    version under that lock, and reload it as the database has it now, so the event built
    from it carries the state the commit leaves, whatever a concurrent request changed.
    """
    await session.flush()
    table = type(row).__table__
    await bump(session, table, table.c.id == row.id)
    await session.refresh(row)


async def get_or_404(session: AsyncSession, model: type[M], id_: uuid.UUID, what: str) -> M:
    row = await session.get(model, id_)
    if row is None:
        raise NotFound(f"no {what} {id_}", code=f"{what.replace(' ', '_')}_not_found")
    return row


async def flush_unique(session: AsyncSession, conflict: Conflict) -> None:
    """Flush, turning a unique-constraint race into the 409 the pre-check would have given."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise conflict from exc


def active_on(start_col, end_col, day: date):
    """Rows whose [start, end] (end inclusive, open when null) covers `day`."""
    return and_(start_col <= day, or_(end_col.is_(None), end_col >= day))


def overlapping(start_col, end_col, start: date, end: date | None):
    """Rows whose [start, end] window meets the window [start, end]."""
    return and_(start_col <= (end or FOREVER), or_(end_col.is_(None), end_col >= start))


def check_window(start: date, end: date | None, field: str = "end_date") -> None:
    if end is not None and end < start:
        raise InvalidInput(field, "must not be before the start date", code="end_before_start")


# Keyset pages: each list orders by a unique key; the cursor holds the last row's key.
Key = Sequence[tuple[Any, str, Callable[[Any], Any]]]  # (column, attribute, parse)


def parse_uuid(v: Any) -> uuid.UUID:
    return uuid.UUID(str(v))


def parse_ts(v: Any) -> datetime:
    return datetime.fromisoformat(str(v))


def parse_date(v: Any) -> date:
    return date.fromisoformat(str(v))


def by_created(model) -> Key:
    return [(model.created_at, "created_at", parse_ts), (model.id, "id", parse_uuid)]


def by_start(model) -> Key:
    return [(model.start_date, "start_date", parse_date), (model.id, "id", parse_uuid)]


def by_code(model) -> Key:
    return [(model.code, "code", str)]


def _after(key: Key, values: list[Any]):
    try:
        parsed = [parse(v) for (_, _, parse), v in zip(key, values, strict=True)]
    except (ValueError, TypeError) as exc:
        raise InvalidInput("cursor", "not a cursor this list issued") from exc
    cols = [col for col, _, _ in key]
    terms = []
    for i, col in enumerate(cols):
        terms.append(
            and_(*[c == v for c, v in zip(cols[:i], parsed[:i], strict=True)], col > parsed[i])
        )
    return or_(*terms)


async def fetch_page(session: AsyncSession, stmt, page: PageParams, key: Key) -> dict[str, Any]:
    """One SELECT for the page (`limit + 1` rows tell whether there is another)."""
    after = page.after()
    if after is not None:
        stmt = stmt.where(_after(key, after))
    stmt = stmt.order_by(*[col for col, _, _ in key]).limit(page.limit + 1)
    rows = (await session.execute(stmt)).all()
    out = make_page(rows, page, lambda r: [_dump(getattr(r[0], a)) for _, a, _ in key])
    if rows and len(rows[0]) == 1:
        out["items"] = [r[0] for r in out["items"]]
    return out


def _dump(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    return str(v)
