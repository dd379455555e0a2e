"""Stored eligibility per cadre and month: recomputed when an event arrives, announced when
it changes, and carried into the month's draft batch (or, once that month is locked, into
an adjustment line of the next open batch)."""

import json
from datetime import date, datetime
from uuid import UUID

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.incentives.models import eligibility, postings
from services.incentives.rules import Result, compute, fmt
from services.incentives.service import lines as line_service
from services.incentives.service.facts import load_book, load_facts, subtree
from shared.clock import Clock, format_month, month_end, parse_month
from shared.contracts.incentives import EligibilityChanged
from shared.db import upsert
from shared.errors import Forbidden
from shared.outbox import add_events

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


def _wire(cadre_id, month: str, items: dict, gross, deductions, net) -> dict:
    return {
        "cadre_id": str(cadre_id),
        "month": month,
        **items,
        "gross": fmt(gross),
        "total_deductions": fmt(deductions),
        "net": fmt(net),
    }


def wire(r: Result) -> dict:
    """The §7.1 answer for a computed result."""
    return _wire(r.cadre_id, r.month, r.items_wire(), r.gross, r.total_deductions, r.net)


def stored_wire(row) -> dict:
    """The same answer from a stored row (items kept as their canonical JSON)."""
    items = json.loads(row.items)
    return _wire(row.cadre_id, row.month, items, row.gross, row.total_deductions, row.net)


async def read(session: AsyncSession, *, cadre_id: UUID, first: date) -> dict:
    """The stored eligibility, or (for a month nothing has touched yet) computed now."""
    row = (
        await session.execute(
            select(eligibility).where(
                eligibility.c.cadre_id == cadre_id, eligibility.c.month == format_month(first)
            )
        )
    ).one_or_none()
    if row is not None:
        return stored_wire(row)
    facts = (await load_facts(session, [cadre_id]))[cadre_id]
    return wire(compute(facts, first, await load_book(session)))


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


async def store(session: AsyncSession, results: list[Result], *, now: datetime) -> list[Result]:
    """Write the results that differ from what is stored; announce each change."""
    if not results:
        return []
    ids = {r.cadre_id for r in results}
    months = {r.month for r in results}
    existing = {
        (row.cadre_id, row.month): row
        for row in (
            await session.execute(
                select(eligibility).where(
                    eligibility.c.cadre_id.in_(ids), eligibility.c.month.in_(months)
                )
            )
        ).all()
    }
    changed, rows = [], []
    for r in results:
        items = canonical(r.items_wire())
        old = existing.get((r.cadre_id, r.month))
        if old is None and r.empty:
            continue
        if old is not None and old.items == items and old.net == r.net and old.gross == r.gross:
            continue
        changed.append(r)
        rows.append(
            {
                "cadre_id": r.cadre_id,
                "month": r.month,
                "gross": r.gross,
                "total_deductions": r.total_deductions,
                "net": r.net,
                "items": items,
                "policy_versions": ",".join(r.policy_versions),
                "computed_at": now,
            }
        )
    if rows:
        cols = ["gross", "total_deductions", "net", "items", "policy_versions", "computed_at"]
        await session.execute(upsert(session, eligibility, ["cadre_id", "month"], cols), rows)
        await add_events(
            session,
            [
                (
                    EligibilityChanged(
                        cadre_id=r.cadre_id,
                        month=r.month,
                        gross=r.gross,
                        total_deductions=r.total_deductions,
                        net=r.net,
                    ),
                    r.cadre_id,
                )
                for r in changed
            ],
            producer=PRODUCER,
            occurred_at=now,
        )
    return changed


async def refresh_cadre(
    session: AsyncSession, cadre_id: UUID, *, since: date, until: date | None = None
) -> None:
    """Recompute a cadre's months from `since` to `until` (open: this month), never past
    this month unless `since` is later, plus every later month already stored or batched,
    so a changed fact reaches all the months it can touch.
    """
    await line_service.share_guard(session)
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
    results = [compute(facts, first, book) for first in sorted(firsts)]
    await store(session, results, now=now)
    await line_service.sync(session, results, {cadre_id: facts})
