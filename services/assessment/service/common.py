"""What the assessment rules share: table handles, time and place helpers, projection reads."""

import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Select, and_, exists, literal, or_, select, true, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment import models as m
from shared.authz import Access
from shared.errors import InvalidInput, NotFound
from shared.events import EventPayload
from shared.outbox import add_events

PRODUCER = "assessment"

UNITS, PATHS, CADRES = m.Unit.__table__, m.UnitPath.__table__, m.Cadre.__table__
POSTINGS, SIGN_INS = m.Posting.__table__, m.SignIn.__table__
WEEKS, VERDICTS = m.Week.__table__, m.PresenceWeek.__table__
ENTRIES, ACTIONS = m.NegativeEntry.__table__, m.AccountabilityAction.__table__
FINDINGS, LEAVES = m.Finding.__table__, m.LeaveRequest.__table__
ROSTERS, DUTIES = m.DutyRoster.__table__, m.Duty.__table__
WORK_LOGS, TASKS = m.WorkLog.__table__, m.Task.__table__
SCORES, REPORTS = m.MonthlyScore.__table__, m.Report.__table__

# Rows per multi-row statement: keeps every statement under the bind-parameter limits.
CHUNK = 1000


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def after_key(after: list, *parsers) -> tuple:
    """A decoded keyset cursor, each part parsed back to its column's type."""
    try:
        return tuple(
            p.fromisoformat(v) if hasattr(p, "fromisoformat") else p(v)
            for p, v in zip(parsers, after, strict=True)
        )
    except (ValueError, TypeError) as exc:
        raise InvalidInput("cursor", "not a cursor this service issued") from exc


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes; PostgreSQL aware ones: one form for both."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def week_of(day: date) -> date:
    """The Monday of the ISO week holding `day`."""
    return day - timedelta(days=day.weekday())


def days_table(days: Iterable[date]):
    """A derived table of dates (column `d`) that both SQLite and PostgreSQL accept."""
    selects = [select(literal(d, Date).label("d")) for d in days]
    return union_all(*selects).subquery("days")


def covers(posting, day) -> Any:
    """SQL: the posting (or leave) row holds on `day` (end date inclusive, open end)."""
    return and_(
        posting.c.start_date <= day, or_(posting.c.end_date.is_(None), posting.c.end_date >= day)
    )


def overlaps(posting, first: date, last: date) -> Any:
    return and_(
        posting.c.start_date <= last,
        or_(posting.c.end_date.is_(None), posting.c.end_date >= first),
    )


Restrict = Callable[[Any], Any]
"""Narrows a statement to some cadres: `everyone`, or `only([...])`, given the cadre column."""


def everyone(_: Any) -> Any:
    return true()


def only(cadre_ids: list[uuid.UUID]) -> Restrict:
    return lambda col: col.in_(cadre_ids)


def subtree(unit_id: uuid.UUID) -> Select:
    """The ids of a unit and every unit below it."""
    return select(PATHS.c.unit_id).where(PATHS.c.ancestor_id == unit_id)


def filed_under(cadre_col, root: uuid.UUID, first, last) -> Any:
    """SQL: the cadre was filed in `root`'s subtree at some time in [first, last]: posted
    there, or (not posted anywhere then) belonging there (a village cadre's village)."""
    posted_any = exists().where(POSTINGS.c.cadre_id == cadre_col, overlaps(POSTINGS, first, last))
    posted_here = exists().where(
        POSTINGS.c.cadre_id == cadre_col,
        overlaps(POSTINGS, first, last),
        POSTINGS.c.unit_id.in_(subtree(root)),
    )
    home_here = exists().where(CADRES.c.cadre_id == cadre_col, CADRES.c.unit_id.in_(subtree(root)))
    return or_(posted_here, and_(~posted_any, home_here))


async def emit(session: AsyncSession, items: list[tuple[EventPayload, Any]], now: datetime) -> None:
    if items:
        await add_events(session, items, producer=PRODUCER, occurred_at=now)


async def ensure_cadre(session: AsyncSession, cadre_id: uuid.UUID) -> None:
    if await session.scalar(select(CADRES.c.cadre_id).where(CADRES.c.cadre_id == cadre_id)) is None:
        raise NotFound(f"cadre {cadre_id} is not known", code="cadre_not_found")


async def ensure_unit(session: AsyncSession, unit_id: uuid.UUID) -> None:
    if await session.scalar(select(UNITS.c.unit_id).where(UNITS.c.unit_id == unit_id)) is None:
        raise NotFound(f"unit {unit_id} is not known", code="unit_not_found")


async def postings_of(
    session: AsyncSession, cadre_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list]:
    """Every posting of the given cadres, newest first."""
    ids = list(set(cadre_ids))
    found: dict[uuid.UUID, list] = {c: [] for c in ids}
    for part in chunks(ids):
        rows = await session.execute(
            select(POSTINGS)
            .where(POSTINGS.c.cadre_id.in_(part))
            .order_by(POSTINGS.c.start_date.desc())
        )
        for r in rows:
            found[r.cadre_id].append(r)
    return found


def posting_on(postings: list, day: date):
    """The posting holding on `day` (the newest when a correction left two)."""
    for p in postings:
        if p.start_date <= day and (p.end_date is None or p.end_date >= day):
            return p
    return None


async def units_on(
    session: AsyncSession, wanted: list[tuple[uuid.UUID, date]]
) -> list[uuid.UUID | None]:
    """Where each (cadre, date) files: the posting's unit on that date, else the cadre's own
    unit (a village cadre who is never posted belongs to their village)."""
    cadre_ids = list({c for c, _ in wanted})
    postings = await postings_of(session, cadre_ids)
    home: dict[uuid.UUID, uuid.UUID | None] = {}
    for part in chunks(cadre_ids):
        rows = await session.execute(
            select(CADRES.c.cadre_id, CADRES.c.unit_id).where(CADRES.c.cadre_id.in_(part))
        )
        home.update(rows.all())
    units = []
    for cadre_id, day in wanted:
        posting = posting_on(postings[cadre_id], day)
        units.append(posting.unit_id if posting else home.get(cadre_id))
    return units


async def ensure_reach(
    session: AsyncSession, who: Access, cadre_id: uuid.UUID, first: date, last: date | None = None
) -> None:
    """403 unless `who` reaches this cadre's record of [first, last]: their own, or (a
    scoped user) the cadre was filed in their subtree on the first or the last day."""
    if who.own_only or who.scope_unit is None:
        who.ensure_cadre(cadre_id)
        return
    days = [(cadre_id, first)] + ([(cadre_id, last)] if last and last != first else [])
    await who.ensure_record(session, cadre_id=cadre_id, unit_ids=await units_on(session, days))


async def fences_of(session: AsyncSession, unit_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """Each unit's geofence: its own, or the nearest ancestor's (a group uses its village's)."""
    ids = list(set(unit_ids))
    if not ids:
        return {}
    fence = UNITS.alias("fence")
    rows = await session.execute(
        select(PATHS.c.unit_id, fence.c.fence_lat, fence.c.fence_lon, fence.c.fence_radius_m)
        .join(fence, fence.c.unit_id == PATHS.c.ancestor_id)
        .where(PATHS.c.unit_id.in_(ids), fence.c.fence_lat.is_not(None))
        .order_by(PATHS.c.unit_id, PATHS.c.depth)
    )
    found: dict[uuid.UUID, Any] = {}
    for r in rows:
        found.setdefault(r.unit_id, r)
    return found


def township_column(unit_col) -> Any:
    """SQL: the township a unit belongs to (itself, or the ancestor of kind township)."""
    town = UNITS.alias("town")
    return (
        select(PATHS.c.ancestor_id)
        .join(town, town.c.unit_id == PATHS.c.ancestor_id)
        .where(PATHS.c.unit_id == unit_col, town.c.kind == "township")
        .limit(1)
        .scalar_subquery()
    )
