"""Stipend lines: the guard that keeps handlers out of a batch being built or locked, the
regular line of a draft month, the adjustment line a late change to a locked month
becomes in the next open batch, and the line queries."""

import json
import os
from collections.abc import Iterable
from decimal import Decimal
from typing import NamedTuple
from uuid import UUID

from sqlalchemy import and_, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.incentives.models import batch_guard, batches, lines
from services.incentives.rules import ZERO, CadreFacts, Result, fmt
from services.incentives.service.facts import (
    cadre_names,
    cadre_units,
    cursor_uuid,
    home_unit,
    places_of,
    subtree,
)
from shared.clock import month_end, parse_month
from shared.contracts.enums import BatchStatus
from shared.db import is_postgres
from shared.errors import InvalidInput
from shared.pagination import PageParams, make_page

CLOSED = (BatchStatus.locked, BatchStatus.paid)
# A line's money: gross - deductions_applied = net; deductions_total (incurred, a
# carried-in deduction included) - deductions_applied = carried_forward.
MONEY = ("gross", "deductions_total", "deductions_applied", "carried_forward", "net")
Amounts = tuple[Decimal, Decimal, Decimal, Decimal, Decimal]
NOTHING: Amounts = (ZERO, ZERO, ZERO, ZERO, ZERO)
PARTS = ("components", "deductions")
NO_ITEMS = {"components": [], "deductions": []}


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


def _key(part: str, item: dict) -> tuple:
    src = item["source"]
    return (part, item["kind"], src["type"], src["id"], item["policy_version"])


def add_items(into: dict, items: dict | None, sign: int = 1) -> None:
    """Sum items by (part, kind, source, policy version) into `into`."""
    for part in PARTS:
        for item in (items or NO_ITEMS)[part]:
            key = _key(part, item)
            amount, first = into.get(key, (ZERO, item))
            into[key] = (amount + sign * Decimal(item["amount"]), first)


def item_delta(due: dict, held: dict) -> dict:
    """The items that differ between what is due now and what locked lines hold, as signed
    amounts (an item no longer due: its held amount, negated)."""
    sums: dict = {}
    add_items(sums, due)
    for key, (amount, item) in held.items():
        now, current = sums.get(key, (ZERO, item))
        sums[key] = (now - amount, current)
    out = {part: [] for part in PARTS}
    for (part, *_), (amount, item) in sums.items():
        if amount != 0:
            out[part].append(item | {"amount": fmt(amount)})
    return out


class Settled(NamedTuple):
    amounts: Amounts
    items: dict  # _key -> (amount, item)


NOTHING_SETTLED = Settled(NOTHING, {})


async def settled(
    session: AsyncSession, pairs: Iterable[tuple[UUID, str]]
) -> dict[tuple[UUID, str], Settled]:
    """What locked and paid batches already hold for (cadre, month): amounts and items."""
    pairs = set(pairs)
    if not pairs:
        return {}
    ids = {c for c, _ in pairs}
    months = {m for _, m in pairs}
    rows = await session.execute(
        select(lines)
        .join(batches, and_(batches.c.id == lines.c.batch_id, batches.c.status.in_(CLOSED)))
        .where(lines.c.cadre_id.in_(ids), lines.c.for_month.in_(months))
        .order_by(lines.c.for_month, batches.c.month)
    )
    out: dict[tuple[UUID, str], Settled] = {}
    for r in rows:
        key = (r.cadre_id, r.for_month)
        if key not in pairs:
            continue
        held = out.get(key) or Settled(NOTHING, {})
        amounts = tuple(a + getattr(r, m) for a, m in zip(held.amounts, MONEY, strict=True))
        add_items(held.items, json.loads(r.items) if r.items else None)
        out[key] = Settled(tuple(a.quantize(ZERO) for a in amounts), held.items)
    return out


class LineSpec(NamedTuple):
    """What one line carries, before its cadre's name and unit are looked up."""

    batch_id: UUID
    kind: str  # regular: what the month is due; adjustment: due less what was paid
    cadre_id: UUID
    month: str
    amounts: Amounts  # gross, deductions_total, deductions_applied, carried_forward, net
    versions: str
    # components and deductions (an adjustment: their signed changes); None when
    # items_text, their canonical JSON, is given instead (a regular line)
    items: dict | None
    items_text: str | None = None

    def carries_something(self) -> bool:
        """A regular line needs gross pay, an adjustment a difference in any amount."""
        if self.kind == "regular":
            return self.amounts[0] > 0
        return any(self.amounts)


async def line_rows(
    session: AsyncSession, specs: list[LineSpec], facts: dict[UUID, CadreFacts]
) -> list[dict]:
    """Rows for the specs that carry something, each filed under the unit of the cadre's
    posting in its month (names and townships read in bulk)."""
    specs = [s for s in specs if s.carries_something()]
    names = await cadre_names(session, {s.cadre_id for s in specs})
    belongs = await cadre_units(session, {s.cadre_id for s in specs})
    homes = _homes(specs, facts, belongs)
    places = await places_of(session, homes.values())
    return built_rows(specs, homes, names, places)


def _homes(specs: list[LineSpec], facts: dict[UUID, CadreFacts], belongs: dict) -> dict:
    homes, spans = {}, {}
    for s in specs:
        span = spans.get(s.month)
        if span is None:
            first = parse_month(s.month)
            span = spans[s.month] = (first, month_end(first))
        posted = home_unit(facts[s.cadre_id], *span)
        homes[(s.cadre_id, s.month)] = posted or belongs.get(s.cadre_id)
    return homes


def known_rows(
    specs: list[LineSpec],
    facts: dict[UUID, CadreFacts],
    names: dict[UUID, str],
    places: dict[UUID, dict],
) -> list[dict]:
    """line_rows with the names and places already read (a batch build reads them once):
    a cadre's own unit is its facts' home unit."""
    specs = [s for s in specs if s.carries_something()]
    belongs = {s.cadre_id: facts[s.cadre_id].home_unit for s in specs}
    return built_rows(specs, _homes(specs, facts, belongs), names, places)


def new_ids(n: int) -> list[UUID]:
    """n values of uuid4() from one read of the system's random source, not n reads."""
    raw = os.urandom(16 * n)
    return [UUID(bytes=raw[at : at + 16], version=4) for at in range(0, 16 * n, 16)]


def built_rows(specs: list[LineSpec], homes: dict, names: dict, places: dict) -> list[dict]:
    return [
        line_row(
            line_id,
            s,
            names.get(s.cadre_id, ""),
            (unit := homes[(s.cadre_id, s.month)]),
            places.get(unit, EMPTY_PLACE),
            s.items_text or canonical_json(s.items),
        )
        for s, line_id in zip(specs, new_ids(len(specs)), strict=True)
    ]


def line_row(line_id: UUID, s: LineSpec, name: str, unit, place: dict, items: str) -> dict:
    gross, total, applied, carried, net = s.amounts  # MONEY's order
    return {
        "id": line_id,
        "batch_id": s.batch_id,
        "cadre_id": s.cadre_id,
        "cadre_name": name,
        "unit_id": unit,
        **place,
        "kind": s.kind,
        "for_month": s.month,
        "gross": gross,
        "deductions_total": total,
        "deductions_applied": applied,
        "carried_forward": carried,
        "net": net,
        "policy_version": s.versions,
        "items": items,
    }


EMPTY_PLACE = {"township_id": None, "township_name": None, "village_id": None, "village_name": None}


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def less(due: Amounts, paid: Amounts) -> Amounts:
    return tuple(d - p for d, p in zip(due, paid, strict=True))


def spec_for(
    result: Result, batch_id: UUID, kind: str, paid: Settled = NOTHING_SETTLED
) -> LineSpec:
    """A regular line is the month as due; an adjustment, due less what locked lines hold."""
    versions = ",".join(result.policy_versions)
    amounts = result.amounts if paid is NOTHING_SETTLED else less(result.amounts, paid.amounts)
    if kind == "regular":
        items, text = None, result.items_json
    else:
        items, text = item_delta(result.items_wire(), paid.items), None
    return LineSpec(batch_id, kind, result.cadre_id, result.month, amounts, versions, items, text)


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
    paid = await settled(
        session, [(r.cadre_id, r.month) for r, _, k in targets if k == "adjustment"]
    )
    for r, batch_id, kind in targets:
        await session.execute(
            lines.delete().where(
                lines.c.batch_id == batch_id,
                lines.c.cadre_id == r.cadre_id,
                lines.c.for_month == r.month,
                lines.c.kind == kind,
            )
        )
    specs = [
        spec_for(r, batch_id, kind, paid.get((r.cadre_id, r.month), NOTHING_SETTLED))
        for r, batch_id, kind in targets
    ]
    if rows := await line_rows(session, specs, facts):
        await session.execute(lines.insert(), rows)


def _id(value) -> str | None:
    return str(value) if value else None


def line_wire(row) -> dict:
    """A line as /lines answers it (and as the content hash covers it)."""
    items = json.loads(row.items) if row.items else NO_ITEMS
    return {
        "cadre_id": str(row.cadre_id),
        "cadre_name": row.cadre_name,
        "village_id": _id(row.village_id),
        "village_name": row.village_name,
        "township_id": _id(row.township_id),
        "township_name": row.township_name,
        "kind": row.kind,
        "for_month": row.for_month,
        **{m: fmt(getattr(row, m)) for m in MONEY},
        "policy_version": row.policy_version,
        "components": items["components"],
        "deductions": items["deductions"],
    }


LINE_ORDER = (lines.c.cadre_id, lines.c.for_month, lines.c.kind)


def _filters(
    batch_id: UUID,
    *,
    unit_id: UUID | None,
    scope_unit: UUID | None,
    cadre_id: UUID | None,
    with_deductions: bool | None,
    kind: str | None,
):
    where = [lines.c.batch_id == batch_id]
    for unit in (unit_id, scope_unit):
        if unit is not None:
            where.append(lines.c.unit_id.in_(subtree(unit)))
    if cadre_id is not None:
        where.append(lines.c.cadre_id == cadre_id)
    if with_deductions is True:
        where.append(lines.c.deductions_total != 0)
    elif with_deductions is False:
        where.append(lines.c.deductions_total == 0)
    if kind is not None:
        where.append(lines.c.kind == kind)
    return where


async def list_lines(session: AsyncSession, *, batch_id: UUID, page: PageParams, **filters) -> dict:
    """A batch's lines (unit subtree, cadre, with deductions, kind) in (cadre, month, kind)
    order; the caller has checked that the batch exists."""
    q = select(lines).where(*_filters(batch_id, **filters)).order_by(*LINE_ORDER)
    after = page.after()
    if after:
        if len(after) != 3:
            raise InvalidInput("cursor", "not a cursor this service issued")
        key = (cursor_uuid(after), str(after[1]), str(after[2]))
        q = q.where(tuple_(*LINE_ORDER) > tuple_(*key))
    rows = (await session.execute(q.limit(page.limit + 1))).all()
    result = make_page(rows, page, lambda r: [str(r.cadre_id), r.for_month, r.kind])
    result["items"] = [line_wire(r) for r in result["items"]]
    return result


async def cadre_lines(
    session: AsyncSession,
    *,
    cadre_id: UUID,
    month: str | None,
    page: PageParams,
    scope: UUID | None = None,
) -> dict:
    """A cadre's lines across batches (`month`: the month they are for), in (for_month,
    batch month, kind) order, each with its batch's id, month and status; a reader scoped
    to a unit sees the lines filed in its subtree."""
    order = (lines.c.for_month, batches.c.month, lines.c.kind)
    q = (
        select(lines, batches.c.month.label("batch_month"), batches.c.status.label("batch_status"))
        .join(batches, batches.c.id == lines.c.batch_id)
        .where(lines.c.cadre_id == cadre_id)
        .order_by(*order)
    )
    if month is not None:
        q = q.where(lines.c.for_month == month)
    if scope is not None:
        q = q.where(lines.c.unit_id.in_(subtree(scope)))
    after = page.after()
    if after:
        if len(after) != 3:
            raise InvalidInput("cursor", "not a cursor this service issued")
        q = q.where(tuple_(*order) > tuple_(*(str(a) for a in after)))
    rows = (await session.execute(q.limit(page.limit + 1))).all()
    result = make_page(rows, page, lambda r: [r.for_month, r.batch_month, r.kind])
    result["items"] = [
        {"batch_id": str(r.batch_id), "batch_month": r.batch_month, "batch_status": r.batch_status}
        | line_wire(r)
        for r in result["items"]
    ]
    return result


async def all_lines(session: AsyncSession, batch_id: UUID, scope: UUID | None = None) -> list:
    """Every line (in `scope`'s subtree when given), for exports: by township, then name."""
    q = select(lines).where(lines.c.batch_id == batch_id)
    if scope is not None:
        q = q.where(lines.c.unit_id.in_(subtree(scope)))
    return (
        await session.execute(q.order_by(lines.c.township_id, lines.c.cadre_name, *LINE_ORDER))
    ).all()


async def refile_draft_lines(session: AsyncSession, *, unit_id: UUID) -> None:
    """A unit created, renamed or moved: draft lines under it get their township again."""
    await share_guard(session)
    drafts = select(batches.c.id).where(batches.c.status == BatchStatus.draft)
    touched = list(
        (
            await session.execute(
                select(lines.c.unit_id)
                .where(lines.c.batch_id.in_(drafts), lines.c.unit_id.in_(subtree(unit_id)))
                .distinct()
            )
        ).scalars()
    )
    places = await places_of(session, touched)
    for unit in touched:
        await session.execute(
            lines.update()
            .where(lines.c.batch_id.in_(drafts), lines.c.unit_id == unit)
            .values(**places.get(unit, EMPTY_PLACE))
        )
