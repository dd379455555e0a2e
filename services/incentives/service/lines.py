"""Stipend lines: the guard that keeps handlers out of a batch being built or locked, the
regular line of a draft month, and the adjustment line a late change to a locked month
becomes in the next open batch."""

from collections.abc import Iterable
from decimal import Decimal
from uuid import UUID, uuid4

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.incentives.models import batch_guard, batches, lines
from services.incentives.rules import ZERO, CadreFacts, Result
from services.incentives.service.facts import cadre_names, home_unit, townships_of
from shared.clock import month_end, parse_month
from shared.contracts.enums import BatchStatus
from shared.db import is_postgres

CLOSED = (BatchStatus.locked, BatchStatus.paid)
NOTHING = (ZERO, ZERO, ZERO)


async def share_guard(session: AsyncSession) -> None:
    """Handlers share the guard row; builds and locks take it exclusively (PostgreSQL).

    On SQLite one writer at a time already serialises them.
    """
    if is_postgres(session):
        await session.execute(
            select(batch_guard.c.id).where(batch_guard.c.id == 1).with_for_update(read=True)
        )


async def exclusive_guard(session: AsyncSession) -> None:
    """A write as the first statement: waits for handlers in flight, blocks new ones."""
    await session.execute(
        update(batch_guard)
        .where(batch_guard.c.id == 1)
        .values(generation=batch_guard.c.generation + 1)
    )


def fen_sum(column):
    """SUM in whole fen: exact on PostgreSQL numeric and on SQLite's floating NUMERIC."""
    return func.coalesce(func.sum(func.round(column * 100)), 0)


def from_fen(value) -> Decimal:
    return (Decimal(int(value)) / 100).quantize(Decimal("0.01"))


async def batch_months(session: AsyncSession) -> list[str]:
    return list((await session.execute(select(batches.c.month))).scalars())


async def batch_states(session: AsyncSession) -> dict[str, tuple[UUID, str]]:
    rows = await session.execute(select(batches.c.month, batches.c.id, batches.c.status))
    return {r.month: (r.id, r.status) for r in rows}


def adjustment_target(states: dict[str, tuple[UUID, str]], month: str) -> UUID | None:
    """Late changes to a locked month go to the earliest draft batch after it."""
    drafts = sorted(m for m, (_, s) in states.items() if s == BatchStatus.draft and m > month)
    return states[drafts[0]][0] if drafts else None


async def settled(
    session: AsyncSession, pairs: Iterable[tuple[UUID, str]]
) -> dict[tuple[UUID, str], tuple[Decimal, Decimal, Decimal]]:
    """What locked and paid batches already hold for (cadre, month): gross, deductions, net."""
    pairs = list(pairs)
    if not pairs:
        return {}
    ids = {c for c, _ in pairs}
    months = {m for _, m in pairs}
    rows = await session.execute(
        select(
            lines.c.cadre_id,
            lines.c.for_month,
            fen_sum(lines.c.gross),
            fen_sum(lines.c.deductions_total),
            fen_sum(lines.c.net),
        )
        .join(batches, and_(batches.c.id == lines.c.batch_id, batches.c.status.in_(CLOSED)))
        .where(lines.c.cadre_id.in_(ids), lines.c.for_month.in_(months))
        .group_by(lines.c.cadre_id, lines.c.for_month)
    )
    return {(r[0], r[1]): (from_fen(r[2]), from_fen(r[3]), from_fen(r[4])) for r in rows}


def line_row(
    *,
    batch_id: UUID,
    kind: str,
    cadre_id: UUID,
    month: str,
    amounts: tuple[Decimal, Decimal, Decimal],
    versions: str,
    name: str,
    unit_id: UUID | None,
    township_id: UUID | None,
) -> dict | None:
    """A regular line (what the month is due) or an adjustment (due less what was paid).

    None when there is nothing to carry: a regular line needs gross pay, an adjustment a
    difference in any amount.
    """
    gross, deductions, net = amounts
    if kind == "regular" and gross <= 0:
        return None
    if kind == "adjustment" and not (gross or deductions or net):
        return None
    return {
        "id": uuid4(),
        "batch_id": batch_id,
        "cadre_id": cadre_id,
        "cadre_name": name,
        "unit_id": unit_id,
        "township_id": township_id,
        "kind": kind,
        "for_month": month,
        "gross": gross,
        "deductions_total": deductions,
        "net": net,
        "policy_version": versions,
    }


def less(due: tuple[Decimal, Decimal, Decimal], paid: tuple[Decimal, Decimal, Decimal]):
    return tuple(d - p for d, p in zip(due, paid, strict=True))


def amounts_of(result: Result) -> tuple[Decimal, Decimal, Decimal]:
    return result.gross, result.total_deductions, result.net


async def sync(session: AsyncSession, results: list[Result], facts: dict[UUID, CadreFacts]) -> None:
    """Carry recomputed results into batches: draft month → regular line; locked or paid
    month → adjustment line in the next open batch (none open yet: the build picks it up)."""
    states = await batch_states(session)
    targets: list[tuple[Result, UUID, str]] = []
    for r in results:
        batch = states.get(r.month)
        if batch is None:
            continue
        if batch[1] == BatchStatus.draft:
            targets.append((r, batch[0], "regular"))
        elif (target := adjustment_target(states, r.month)) is not None:
            targets.append((r, target, "adjustment"))
    if not targets:
        return
    names = await cadre_names(session, {r.cadre_id for r, _, _ in targets})
    homes = {}
    for r, _, _ in targets:
        first = parse_month(r.month)
        homes[(r.cadre_id, r.month)] = home_unit(facts[r.cadre_id], first, month_end(first))
    towns = await townships_of(session, homes.values())
    paid = await settled(
        session, [(r.cadre_id, r.month) for r, _, k in targets if k == "adjustment"]
    )
    rows = []
    for r, batch_id, kind in targets:
        await session.execute(
            lines.delete().where(
                lines.c.batch_id == batch_id,
                lines.c.cadre_id == r.cadre_id,
                lines.c.for_month == r.month,
                lines.c.kind == kind,
            )
        )
        unit = homes[(r.cadre_id, r.month)]
        row = line_row(
            batch_id=batch_id,
            kind=kind,
            cadre_id=r.cadre_id,
            month=r.month,
            amounts=less(amounts_of(r), paid.get((r.cadre_id, r.month), NOTHING)),
            versions=",".join(r.policy_versions),
            name=names.get(r.cadre_id, ""),
            unit_id=unit,
            township_id=towns.get(unit),
        )
        if row:
            rows.append(row)
    if rows:
        await session.execute(lines.insert(), rows)
