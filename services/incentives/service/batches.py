"""Stipend batches for the finance office: built set-based as a draft, kept current by
events, locked with a content hash (then never changed), marked paid."""

import asyncio
import gc
import hashlib
import json
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID, uuid4

from sqlalchemy import and_, func, or_, select, text, union
from sqlalchemy.ext.asyncio import AsyncSession

from services.incentives.models import batches, cadre_states, eligibility, lines, postings, units
from services.incentives.rules import (
    ZERO,
    MonthRules,
    canonical_json,
    compute,
    fmt,
    line_amounts,
    plain_subsidy,
    split_versions,
)
from services.incentives.service import eligibility as eligibility_service
from services.incentives.service.eligibility import (
    canonical,
    carry_from,
    changed_event,
    eligibility_row,
    gap_after,
    stored_amounts,
)
from services.incentives.service.facts import Places, load_book, load_facts, load_span, subtree
from services.incentives.service.lines import (
    CLOSED,
    EMPTY_PLACE,
    LINE_ORDER,
    MONEY,
    NOTHING_SETTLED,
    LineSpec,
    adjustment_target,
    batch_states,
    exclusive_guard,
    fen_sum,
    from_fen,
    item_delta,
    known_rows,
    less,
    line_row,
    line_rows,
    line_wire,
    new_ids,
    settled,
    spec_for,
)
from shared.bulk import fetch, insert_rows
from shared.clock import format_month, month_end
from shared.contracts.enums import BatchStatus
from shared.contracts.incentives import BatchDrafted, BatchLocked, BatchPaid
from shared.db import is_postgres
from shared.errors import Conflict, NotFound
from shared.metrics import BATCH_BUILD
from shared.outbox import add_event
from shared.pagination import PageParams, make_page

PRODUCER = "incentives"
CHUNK = 5000  # cadres per set of bulk reads when building a batch


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


async def get_row(session: AsyncSession, batch_id: UUID, *, for_update: bool = False):
    q = select(batches).where(batches.c.id == batch_id)
    if for_update:
        q = q.with_for_update()
    row = (await session.execute(q)).one_or_none()
    if row is None:
        raise NotFound(f"no stipend batch {batch_id}")
    return row


async def totals(session: AsyncSession, batch_id: UUID, scope: UUID | None = None) -> dict:
    """Totals of the batch and per township, summed in fen: a total is its lines' sum
    (with `scope`, of the lines in that unit's subtree only)."""
    where = [lines.c.batch_id == batch_id]
    if scope is not None:
        where.append(lines.c.unit_id.in_(subtree(scope)))
    rows = (
        await session.execute(
            select(
                lines.c.township_id,
                units.c.name,
                func.count(),
                *(fen_sum(lines.c[m]) for m in MONEY),
            )
            .select_from(lines.outerjoin(units, units.c.unit_id == lines.c.township_id))
            .where(*where)
            .group_by(lines.c.township_id, units.c.name)
        )
    ).all()
    rows = sorted(rows, key=lambda r: (r[0] is None, str(r[0])))
    by_town = [
        {
            "township_id": str(r[0]) if r[0] else None,
            "township_name": r[1],
            "lines": r[2],
            **{m: from_fen(v) for m, v in zip(MONEY, r[3:], strict=True)},
        }
        for r in rows
    ]
    zero = Decimal("0.00")
    out = {
        "lines": sum(t["lines"] for t in by_town),
        **{m: fmt(sum((t[m] for t in by_town), zero)) for m in MONEY},
    }
    for t in by_town:
        for k in MONEY:
            t[k] = fmt(t[k])
    return out | {"by_township": by_town}


async def versions_used(session: AsyncSession, batch_id: UUID) -> list[str]:
    rows = await session.execute(
        select(lines.c.policy_version).where(lines.c.batch_id == batch_id).distinct()
    )
    return sorted({v for joined in rows.scalars() for v in joined.split(",") if v})


async def render(session: AsyncSession, row) -> dict:
    """The batch resource; a locked or paid batch answers what was frozen at lock."""
    if row.frozen:
        return json.loads(row.frozen)
    return await _render_live(session, row, status=row.status)


async def _render_live(session: AsyncSession, row, **override) -> dict:
    values = dict(row._mapping) | override
    return {
        "id": str(values["id"]),
        "month": values["month"],
        "status": values["status"],
        "totals": await totals(session, values["id"]),
        "content_hash": values["content_hash"],
        "policy_versions": await versions_used(session, values["id"]),
        "created_at": _iso(values["created_at"]),
        "locked_at": _iso(values["locked_at"]),
        "paid_at": _iso(values["paid_at"]),
    }


async def rendered(
    session: AsyncSession, batch_id: UUID, *, scope: UUID | None = None
) -> tuple[dict, str | None]:
    """(resource, frozen bytes or None): GET of a locked batch returns the frozen text; a
    scoped reader gets the totals of its subtree instead (never the frozen county text)."""
    row = await get_row(session, batch_id)
    if scope is not None:
        return await scoped(session, await render(session, row), scope), None
    return await render(session, row), row.frozen


async def scoped(session: AsyncSession, body: dict, scope: UUID) -> dict:
    """A batch resource as a reader scoped to a unit sees it: its subtree's totals."""
    return body | {"totals": await totals(session, UUID(body["id"]), scope)}


@contextmanager
def _no_cycle_collection():
    """A build allocates a few objects per cadre and keeps a chunk of them alive, so the
    cycle collector's full passes cost a quarter of the build (measured); it makes no
    cycles to collect. Reference counting still frees everything as usual."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _candidates(first: date, last: date):
    """Who can be due anything in the month: posted in it, or a village cadre by then."""
    posted = select(postings.c.cadre_id.label("cadre_id")).where(
        postings.c.start_date <= last,
        or_(postings.c.end_date.is_(None), postings.c.end_date >= first),
    )
    village = select(cadre_states.c.cadre_id.label("cadre_id")).where(
        cadre_states.c.category == "village_cadre", cadre_states.c.effective_date <= last
    )
    return union(posted, village).subquery()


def _chunks(ids: list[UUID]) -> list[list[UUID]]:
    """The sorted ids in runs of CHUNK, the first and the last a fifth of that: the build
    has nothing to overlap before the first chunk is computed and after the last one is
    written, so those two are kept short."""
    edge = CHUNK // 5
    if len(ids) <= 2 * edge:
        return [ids] if ids else []
    head, body, tail = ids[:edge], ids[edge:-edge], ids[-edge:]
    return [head, *(body[at : at + CHUNK] for at in range(0, len(body), CHUNK)), tail]


SLICE = 250  # cadres computed between two turns of the event loop (writes in flight go on)


async def _build_regular(session: AsyncSession, batch_id: UUID, first: date, now: datetime) -> None:
    """Every candidate's regular line, chunk by chunk of ids. On PostgreSQL the database
    works while Python computes: while chunk k is computed, one task writes chunk k-1 and
    then reads chunk k+1 (the session's one connection, in that order, so the rows and the
    outbox order are those of writing each chunk as soon as it is computed). Chunks touch
    disjoint id ranges and the reads see no month the writes touch, so the order of reads
    and writes between chunks changes nothing they read."""
    last = month_end(first)
    month = format_month(first)
    postgres = is_postgres(session)
    if postgres:
        # Each chunk's reads repeat with new bounds: a generic plan, chosen after five,
        # cannot see how few rows a chunk's id range selects.
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    book = await load_book(session)
    units = await Places.load(session)
    cand = _candidates(first, last)
    ids = [r[0] for r in await fetch(session, select(cand.c.cadre_id).order_by(cand.c.cadre_id))]
    chunks = _chunks(ids)

    async def read(chunk: list[UUID]) -> tuple:
        facts, names = await load_span(session, chunk, first=first, last=last, units=units)
        carries = await _carries(session, chunk, first, book)
        stored = await eligibility_service.stored_span(session, chunk, month)
        return facts, names, carries, stored

    async def write(prepared: tuple) -> None:
        new, rows, events, line_rows = prepared
        await eligibility_service.write_changes(session, rows, events, now=now, new=new)
        await insert_rows(session, lines, line_rows)

    async def io(prepared: tuple | None, chunk: list[UUID] | None) -> tuple | None:
        if prepared is not None:
            await write(prepared)
        return await read(chunk) if chunk is not None else None

    rules = MonthRules.of(book, first)
    versions: dict[str, list[str]] = {}  # a plain item's policy version -> the line's

    def general(cadres: list[UUID], facts, names, carries, stored, out: tuple) -> None:
        results = [compute(facts[c], first, book, carries.get(c)) for c in cadres]
        _, rows, events = eligibility_service.changes(results, stored, now)
        specs = [spec_for(r, batch_id, "regular") for r in results]
        for row in rows:
            out[0 if (row["cadre_id"], month) not in stored else 1].append(row)
        out[2].extend(events)
        out[3].extend(known_rows(specs, facts, names, units.places))

    async def prepare(chunk: list[UUID], got: tuple) -> tuple:
        """The chunk's eligibility rows, events and line rows, in the chunk's order. A plain
        month new to eligibility (rules.plain_subsidy) is written straight from its one
        item: what compute, changes, spec_for and known_rows give for it, without them."""
        facts, names, carries, stored = got
        # eligibility rows new to the month, rows that change a stored one, events, lines
        out: tuple[list, list, list, list] = ([], [], [], [])
        new, _, events, line_rows = out
        for at in range(0, len(chunk), SLICE):
            waiting: list[UUID] = []  # cadres for the general path, in order
            fresh = iter(new_ids(SLICE))
            for c in chunk[at : at + SLICE]:
                f = facts[c]
                item = None if (c, month) in stored else plain_subsidy(f, rules, carries.get(c))
                if item is None:
                    waiting.append(c)
                    continue
                if waiting:
                    general(waiting, facts, names, carries, stored, out)
                    waiting = []
                amounts = line_amounts(ZERO + item.amount, ZERO)
                items = canonical_json({"components": [item.wire()], "deductions": []})
                used = versions.get(item.policy_version)
                if used is None:
                    used = versions[item.policy_version] = sorted(split_versions([item]))
                new.append(eligibility_row(c, month, amounts, items, used, now))
                events.append(changed_event(c, month, amounts))
                if amounts[0] > 0:
                    spec = LineSpec(batch_id, "regular", c, month, amounts, ",".join(used), None)
                    unit = f.postings[0].unit_id or f.home_unit  # as _homes files it
                    place = units.places.get(unit, EMPTY_PLACE)
                    line_rows.append(
                        line_row(next(fresh), spec, names.get(c, ""), unit, place, items)
                    )
            if waiting:
                general(waiting, facts, names, carries, stored, out)
            if postgres:
                await asyncio.sleep(0)  # the task writing the previous chunk goes on
        return out

    if not chunks:
        return
    got = await read(chunks[0])
    prepared = None
    for k, chunk in enumerate(chunks):
        following = chunks[k + 1] if k + 1 < len(chunks) else None
        if postgres:
            pending = asyncio.ensure_future(io(prepared, following))
            try:
                ready = await prepare(chunk, got)
            finally:
                # Never leave the connection to a task nobody waits for.
                got = await pending
        else:
            ready = await prepare(chunk, got)
            got = await io(prepared, following)
        prepared = ready
    await write(prepared)


async def _carries(session: AsyncSession, ids: list[UUID], first: date, book) -> dict:
    """What reaches the month from the months before of each cadre in the sorted `ids`
    (one read by their id range; a cadre whose last stored month is earlier than the one
    before has the gap computed)."""
    month = format_month(first)
    e = eligibility.c
    latest = (
        select(e.cadre_id, func.max(e.month).label("month"))
        .where(e.cadre_id.between(ids[0], ids[-1]), e.month < month)
        .group_by(e.cadre_id)
        .subquery()
    )
    rows = await session.execute(
        select(eligibility)
        .join(latest, and_(latest.c.cadre_id == e.cadre_id, latest.c.month == e.month))
        .where(e.carried_forward > 0)
    )
    rows = rows.all()
    gaps = [row.cadre_id for row in rows if gap_after(row, first)]
    facts = await load_facts(session, gaps) if gaps else {}
    return {row.cadre_id: carry_from(row, first, book, facts.get(row.cadre_id)) for row in rows}


async def _build_adjustments(session: AsyncSession, batch_id: UUID) -> None:
    """What changed in locked months since they were locked, as this batch's adjustments."""
    states = await batch_states(session)
    months = [
        m
        for m, (_, status) in states.items()
        if status in CLOSED and adjustment_target(states, m) == batch_id
    ]
    if not months:
        return
    paid = (
        select(
            lines.c.cadre_id,
            lines.c.for_month,
            *(fen_sum(lines.c[m]).label(m) for m in MONEY),
        )
        .join(batches, and_(batches.c.id == lines.c.batch_id, batches.c.status.in_(CLOSED)))
        .where(lines.c.for_month.in_(months))
        .group_by(lines.c.cadre_id, lines.c.for_month)
        .subquery()
    )
    e = eligibility.c
    due = dict(zip(MONEY, (e.gross, e.total_deductions, e.deductions_applied,
                           e.carried_forward, e.net), strict=True))  # fmt: skip
    rows = (
        await session.execute(
            select(eligibility)
            .select_from(
                eligibility.outerjoin(
                    paid, and_(paid.c.cadre_id == e.cadre_id, paid.c.for_month == e.month)
                )
            )
            .where(
                e.month.in_(months),
                or_(*(func.coalesce(paid.c[m], 0) != func.round(due[m] * 100) for m in MONEY)),
            )
        )
    ).all()
    if not rows:
        return
    facts = await load_facts(session, {r.cadre_id for r in rows})
    held = await settled(session, [(r.cadre_id, r.month) for r in rows])
    specs = []
    for r in rows:
        paid_now = held.get((r.cadre_id, r.month), NOTHING_SETTLED)
        specs.append(
            LineSpec(
                batch_id,
                "adjustment",
                r.cadre_id,
                r.month,
                less(stored_amounts(r), paid_now.amounts),
                r.policy_versions,
                item_delta(json.loads(r.items), paid_now.items),
            )
        )
    if out := await line_rows(session, specs, facts):
        await session.execute(lines.insert(), out)


async def _announce(session: AsyncSession, payload_cls, row, now: datetime) -> None:
    t = await totals(session, row.id)
    await add_event(
        session,
        payload_cls(
            batch_id=row.id,
            month=row.month,
            status=row.status,
            total_net=Decimal(t["net"]),
            lines=t["lines"],
            content_hash=row.content_hash,
            entity_version=row.entity_version,
        ),
        key=row.id,
        producer=PRODUCER,
        occurred_at=now,
    )


async def create(
    session: AsyncSession, *, first: date, user_id: UUID, now: datetime, today: date
) -> dict:
    """Build the month's batch as a draft (one per month: 409 batch_exists otherwise)."""
    month = format_month(first)
    if first > today.replace(day=1):
        raise Conflict(f"{month} has not started", code="month_not_started")
    await exclusive_guard(session)
    existing = (
        await session.execute(select(batches.c.id).where(batches.c.month == month))
    ).scalar_one_or_none()
    if existing is not None:
        raise Conflict(
            f"a batch for {month} exists", code="batch_exists", existing_id=str(existing)
        )
    batch_id = uuid4()
    await session.execute(
        batches.insert().values(
            id=batch_id,
            month=month,
            status=BatchStatus.draft,
            created_at=now,
            created_by=user_id,
        )
    )
    with BATCH_BUILD.labels("incentives").time(), _no_cycle_collection():
        await _build_regular(session, batch_id, first, now)
        await _build_adjustments(session, batch_id)
    row = await get_row(session, batch_id)
    await _announce(session, BatchDrafted, row, now)
    return await render(session, row)


def content_hash(month: str, line_rows: list) -> str:
    """SHA-256 of the month and its lines, canonically ordered and serialised."""
    body = {"month": month, "lines": [line_wire(r) for r in line_rows]}
    return hashlib.sha256(canonical(body).encode()).hexdigest()


async def lock(session: AsyncSession, *, batch_id: UUID, user_id: UUID, now: datetime) -> str:
    """Approve a draft: record its content hash and freeze it (again: 409 batch_locked)."""
    await exclusive_guard(session)
    row = await get_row(session, batch_id, for_update=True)
    if row.status != BatchStatus.draft:
        raise Conflict(f"batch {batch_id} is already {row.status}", code="batch_locked")
    all_lines = (
        await session.execute(
            select(lines).where(lines.c.batch_id == batch_id).order_by(*LINE_ORDER)
        )
    ).all()
    digest = content_hash(row.month, all_lines)
    values = {
        "status": BatchStatus.locked,
        "locked_at": now,
        "locked_by": user_id,
        "content_hash": digest,
    }
    body = await _render_live(session, row, **values)
    frozen = canonical(body)
    await session.execute(
        batches.update()
        .where(batches.c.id == batch_id)
        .values(**values, frozen=frozen, entity_version=batches.c.entity_version + 1)
    )
    row = await get_row(session, batch_id)
    await _announce(session, BatchLocked, row, now)
    return frozen


async def pay(session: AsyncSession, *, batch_id: UUID, user_id: UUID, now: datetime) -> str:
    """Mark a locked batch paid (a draft: 409 batch_not_locked; paid again: 409)."""
    await exclusive_guard(session)
    row = await get_row(session, batch_id, for_update=True)
    if row.status == BatchStatus.draft:
        raise Conflict("lock the batch before paying it", code="batch_not_locked")
    if row.status == BatchStatus.paid:
        raise Conflict(f"batch {batch_id} is already paid", code="batch_paid")
    body = json.loads(row.frozen) | {"status": BatchStatus.paid.value, "paid_at": now.isoformat()}
    frozen = canonical(body)
    await session.execute(
        batches.update()
        .where(batches.c.id == batch_id)
        .values(
            status=BatchStatus.paid,
            paid_at=now,
            paid_by=user_id,
            frozen=frozen,
            entity_version=batches.c.entity_version + 1,
        )
    )
    row = await get_row(session, batch_id)
    await _announce(session, BatchPaid, row, now)
    return frozen


async def list_batches(
    session: AsyncSession, *, month: str | None, page: PageParams, scope: UUID | None = None
) -> dict:
    """Batches, newest month first (a scoped reader: its subtree's totals)."""
    q = select(batches).order_by(batches.c.month.desc()).limit(page.limit + 1)
    if month:
        q = q.where(batches.c.month == month)
    after = page.after()
    if after:
        q = q.where(batches.c.month < str(after[0]))
    rows = (await session.execute(q)).all()
    result = make_page(rows, page, lambda r: [r.month])
    result["items"] = [await render(session, r) for r in result["items"]]
    if scope is not None:
        result["items"] = [await scoped(session, b, scope) for b in result["items"]]
    return result
