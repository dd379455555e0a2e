"""Stored eligibility per cadre and month: recomputed when an event arrives, announced when
it changes, and carried into the month's draft batch (or, once that month is locked, into
an adjustment line of the next open batch)."""

import json
import zlib
from datetime import date, datetime
from uuid import UUID

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.incentives.models import cadres, eligibility, postings
from services.incentives.policies import PolicyBook
from services.incentives.rules import CARRIED_FORWARD, CadreFacts, Carry, Result, compute, fmt
from services.incentives.service import lines as line_service
from services.incentives.service.facts import cadre_names, load_book, load_facts, subtree
from shared.bulk import fetch, insert_rows, upsert_rows
from shared.clock import Clock, format_month, month_end, parse_month
from shared.contracts.incentives import EligibilityChanged
from shared.db import is_postgres
from shared.errors import Forbidden
from shared.outbox import add_event_dicts

PRODUCER = "incentives"


def clock_of(session: AsyncSession) -> Clock:
    """The service's clock, attached to every session it opens (app.on_start)."""
    return session.info.get("clock") or Clock()


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def months_between(since: date, until: date) -> list[date]:
    first = since.replace(day=1)
    out = []
    while first <= until:
        out.append(first)
        first = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return out


def next_month(first: date) -> date:
    return date(first.year + (first.month == 12), first.month % 12 + 1, 1)


def _wire(cadre_id, month: str, items: dict, amounts) -> dict:
    gross, deductions, applied, carried, net = amounts
    return {
        "cadre_id": str(cadre_id),
        "month": month,
        **items,
        "gross": fmt(gross),
        "total_deductions": fmt(deductions),
        "deductions_applied": fmt(applied),
        "carried_forward": fmt(carried),
        "net": fmt(net),
    }


def wire(r: Result) -> dict:
    """The §7.1 answer for a computed result."""
    return _wire(r.cadre_id, r.month, r.items_wire(), r.amounts)


def stored_amounts(row) -> tuple:
    return (row.gross, row.total_deductions, row.deductions_applied, row.carried_forward, row.net)


def stored_wire(row) -> dict:
    """The same answer from a stored row (items kept as their canonical JSON)."""
    return _wire(row.cadre_id, row.month, json.loads(row.items), stored_amounts(row))


def stored_carry(row) -> Carry | None:
    """What a stored month carries forward to the next."""
    if row is None or row.carried_forward <= 0:
        return None
    deductions = json.loads(row.items)["deductions"]
    versions = {v for d in deductions for v in d["policy_version"].split(",") if v}
    return Carry(row.carried_forward + 0, row.month, ",".join(sorted(versions)))


def chain(
    facts: CadreFacts, first: date, last: date, book: PolicyBook, carry: Carry | None
) -> list[Result]:
    """Months first..last in order, each taking what the one before carried forward."""
    out = []
    while first <= last:
        r = compute(facts, first, book, carry)
        out.append(r)
        carry = r.carry_out()
        first = next_month(first)
    return out


async def carry_into(
    session: AsyncSession,
    cadre_id: UUID,
    first: date,
    book: PolicyBook,
    facts: CadreFacts | None = None,
) -> Carry | None:
    """What reaches the month starting on `first` from the months before it.

    Every month with a deduction is stored (events about deductions store their month), so
    the chain starts at the latest stored month before; months between it and `first`
    that nothing stored are computed on the way (`facts`: all of the cadre's, or loaded).
    """
    prev = (
        await session.execute(
            select(eligibility)
            .where(eligibility.c.cadre_id == cadre_id, eligibility.c.month < format_month(first))
            .order_by(eligibility.c.month.desc())
            .limit(1)
        )
    ).one_or_none()
    if gap_after(prev, first) and facts is None:
        facts = (await load_facts(session, [cadre_id]))[cadre_id]
    return carry_from(prev, first, book, facts)


def gap_after(prev, first: date) -> bool:
    """Whether months lie between a stored month carrying something and `first`."""
    return stored_carry(prev) is not None and next_month(parse_month(prev.month)) < first


def carry_from(prev, first: date, book: PolicyBook, facts: CadreFacts | None) -> Carry | None:
    """What reaches `first` from `prev`, the cadre's latest stored month before it (the
    months between computed from `facts`, needed when gap_after)."""
    carry = stored_carry(prev)
    if carry is None:
        return None
    gap = next_month(parse_month(prev.month))
    if gap >= first:
        return carry
    return chain(facts, gap, date.fromordinal(first.toordinal() - 1), book, carry)[-1].carry_out()


async def read(session: AsyncSession, *, cadre_id: UUID, first: date) -> dict:
    """The stored eligibility, or (for a month nothing has touched yet) computed now; with
    the cadre's name from the projection."""
    row = (
        await session.execute(
            select(eligibility).where(
                eligibility.c.cadre_id == cadre_id, eligibility.c.month == format_month(first)
            )
        )
    ).one_or_none()
    if row is not None:
        body = stored_wire(row)
    else:
        facts = (await load_facts(session, [cadre_id]))[cadre_id]
        book = await load_book(session)
        carry = await carry_into(session, cadre_id, first, book, facts)
        body = wire(compute(facts, first, book, carry))
    name = (await cadre_names(session, [cadre_id])).get(cadre_id)
    return {"cadre_id": body.pop("cadre_id"), "cadre_name": name} | body


async def ensure_in_scope(
    session: AsyncSession, *, cadre_id: UUID, first: date, scope: UUID
) -> None:
    """A user scoped to a unit reads cadres posted in its subtree during the month (§8)."""
    posted = await session.execute(
        select(postings.c.posting_id)
        .where(
            postings.c.cadre_id == cadre_id,
            postings.c.unit_id.in_(subtree(scope)),
            postings.c.start_date <= month_end(first),
            or_(postings.c.end_date.is_(None), postings.c.end_date >= first),
        )
        .limit(1)
    )
    if posted.first() is None:
        raise Forbidden("the cadre is outside your unit", code="out_of_scope")


Stored = dict[tuple[UUID, str], tuple[str, tuple]]  # (cadre, month) -> (items, amounts)
STORED_COLUMNS = ("items", "gross", "total_deductions", "deductions_applied",
                  "carried_forward", "net")  # fmt: skip


def _stored(rows) -> Stored:
    return {(r[0], r[1]): (r[2], tuple(r[3:])) for r in rows}


async def stored_span(session: AsyncSession, ids: list[UUID], month: str) -> Stored:
    """What is stored for the month of the cadres in the sorted `ids` (a batch chunk),
    read by their id range."""
    e = eligibility.c
    q = select(e.cadre_id, e.month, *(e[c] for c in STORED_COLUMNS)).where(
        e.month == month, e.cadre_id.between(ids[0], ids[-1])
    )
    return _stored(await fetch(session, q))


async def store(
    session: AsyncSession, results: list[Result], *, now: datetime, existing: Stored | None = None
) -> list[Result]:
    """Write the results that differ from what is stored (`existing`: read here when not
    given); announce each change."""
    if not results:
        return []
    if existing is None:
        e = eligibility.c
        q = select(e.cadre_id, e.month, *(e[c] for c in STORED_COLUMNS)).where(
            e.cadre_id.in_({r.cadre_id for r in results}), e.month.in_({r.month for r in results})
        )
        existing = _stored((await session.execute(q)).all())
    changed, rows, events = changes(results, existing, now)
    await write_changes(session, rows, events, now=now)
    return changed


def changes(results: list[Result], existing: Stored, now: datetime) -> tuple[list, list, list]:
    """(results, eligibility rows, EligibilityChanged payloads) of the results that differ
    from what is stored: store's part without the database, for a build to prepare while
    its previous writes are in flight."""
    changed, rows, events = [], [], []
    for r in results:
        old = existing.get((r.cadre_id, r.month))
        if old is None and r.empty:
            continue
        items, amounts = r.items_json, r.amounts
        if old is not None and old[0] == items and old[1] == amounts:
            continue
        changed.append(r)
        rows.append(eligibility_row(r.cadre_id, r.month, amounts, items, r.policy_versions, now))
        events.append(changed_event(r.cadre_id, r.month, amounts))
    return changed, rows, events


def eligibility_row(
    cadre_id: UUID, month: str, amounts: tuple, items: str, versions: list[str], now: datetime
) -> dict:
    gross, deductions, applied, carried, net = amounts
    return {
        "cadre_id": cadre_id,
        "month": month,
        "gross": gross,
        "total_deductions": deductions,
        "deductions_applied": applied,
        "carried_forward": carried,
        "net": net,
        "items": items,
        "policy_versions": ",".join(versions),
        "computed_at": now,
    }


def changed_event(cadre_id: UUID, month: str, amounts: tuple) -> tuple[dict, UUID]:
    """EligibilityChanged as its model_dump(mode="json") reads (add_event_dicts checks),
    and its key."""
    gross, deductions, applied, carried, net = amounts
    payload = {
        "cadre_id": str(cadre_id),
        "month": month,
        "gross": str(gross),
        "total_deductions": str(deductions),
        "net": str(net),
        "deductions_applied": str(applied),
        "carried_forward": str(carried),
    }
    return payload, cadre_id


STORED_UPDATE = ["gross", "total_deductions", "deductions_applied", "carried_forward", "net",
                 "items", "policy_versions", "computed_at"]  # fmt: skip


async def write_changes(
    session: AsyncSession, rows: list, events: list, *, now: datetime, new: list = ()
) -> None:
    """Upsert the rows `changes` gave and write their events. `new`: rows of a cadre and
    month nothing was stored for when read under the exclusive batch guard (a build), so
    no one can have stored one since: inserted (COPY), which their upsert would do."""
    if new:
        await insert_rows(session, eligibility, list(new))
    if rows:
        await upsert_rows(session, eligibility, rows, ["cadre_id", "month"], STORED_UPDATE)
    if events:
        await add_event_dicts(
            session, EligibilityChanged, events, producer=PRODUCER, occurred_at=now
        )


CADRE_LOCK = 0x454C  # "EL": the class of the advisory lock below


async def lock_cadre(session: AsyncSession, cadre_id: UUID) -> None:
    """One recompute of a cadre at a time (PostgreSQL), until commit: transactions applying
    events of one cadre side by side (replicas, or a consumer's partitions in parallel)
    would otherwise each compute without the other's uncommitted fact, and the last to
    commit would store a result missing one. Whoever waits reads the other's facts once it
    has the lock (READ COMMITTED: each statement sees what was committed before it).

    The lock is the cadre's projection row (row locks take no room in PostgreSQL's lock
    table, so a rename recomputing thousands of cadres is fine); a cadre not projected yet
    gets an advisory lock instead."""
    if not is_postgres(session):
        return
    row = select(cadres.c.cadre_id).where(cadres.c.cadre_id == cadre_id).with_for_update()
    if await session.scalar(row) is None:
        key = zlib.crc32(str(cadre_id).encode()) - 2**31  # int4
        await session.execute(select(func.pg_advisory_xact_lock(CADRE_LOCK, key)))


async def refresh_cadre(
    session: AsyncSession, cadre_id: UUID, *, since: date, until: date | None = None
) -> None:
    """Recompute a cadre's months from `since` to `until` (open: this month), never past
    this month unless `since` is later, plus every later month already stored or batched,
    so a changed fact reaches all the months it can touch.

    The months between are computed too, in order, so that what one month carries forward
    reaches the next; of those, a month is stored when it was due anyway or takes a carry.
    """
    await line_service.share_guard(session)
    await lock_cadre(session, cadre_id)
    book = await load_book(session)
    # Nothing is due before the first policy version: an honor of 1999 starts there.
    since = max(since, book.earliest or since)
    clock = clock_of(session)
    now, today = clock.now(), clock.today()
    until = today if until is None else min(until, today)
    since_month = format_month(since)
    later = await session.execute(
        select(eligibility.c.month).where(
            eligibility.c.cadre_id == cadre_id, eligibility.c.month >= since_month
        )
    )
    firsts = set(months_between(since, max(until, since)))
    firsts |= {parse_month(m) for m in later.scalars()}
    firsts |= {parse_month(m) for m in await line_service.batch_months(session) if m >= since_month}
    facts = (await load_facts(session, [cadre_id]))[cadre_id]
    start, end = min(firsts), max(firsts)
    carry = await carry_into(session, cadre_id, start, book, facts)
    results = [
        r
        for r in chain(facts, start, end, book, carry)
        if parse_month(r.month) in firsts or any(d.kind == CARRIED_FORWARD for d in r.deductions)
    ]
    await store(session, results, now=now)
    await line_service.sync(session, results, {cadre_id: facts})
