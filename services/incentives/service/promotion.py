"""Promotion channel lists (优先提拔, 定向招考): cadres with sustained top monthly scores and
no active negative entry in the window; the thresholds are a policy kind each."""

from datetime import date
from decimal import Decimal
from uuid import UUID

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.incentives.models import cadres, entries, scores
from services.incentives.policies import PolicyKind
from services.incentives.service.facts import cursor_uuid, load_book, subtree
from shared.clock import format_month, month_end
from shared.contracts.enums import EntryStatus, SubjectType
from shared.errors import NotFound
from shared.pagination import PageParams, make_page


def window(last_first: date, months: int) -> list[date]:
    out = [last_first]
    while len(out) < months:
        d = out[-1]
        out.append(date(d.year - (d.month == 1), (d.month - 2) % 12 + 1, 1))
    return sorted(out)


async def candidates(
    session: AsyncSession,
    *,
    channel: PolicyKind,
    first: date,
    unit_id: UUID | None,
    page: PageParams,
) -> dict:
    """Cadres of the channel's categories ranked within `max_rank` of their township in each
    month of the window ending with `first`'s month (at or above `min_score` when set), with
    no active negative entry dated in the window."""
    policy = (await load_book(session)).for_month(channel, first)
    if policy is None:
        raise NotFound(f"no {channel} policy in force for {format_month(first)}")
    p = policy.params
    months = [format_month(m) for m in window(first, p["window_months"])]
    start, end = window(first, p["window_months"])[0], month_end(first)
    s = scores.c
    active_entry = exists().where(
        entries.c.subject_type == SubjectType.cadre,
        entries.c.subject_id == s.cadre_id,
        entries.c.status == EntryStatus.active,
        entries.c.entry_date.between(start, end),
    )
    conditions = [s.month.in_(months), s.rank <= p["max_rank"], ~active_entry]
    if p.get("min_score") is not None:
        conditions.append(s.score >= Decimal(p["min_score"]))
    if unit_id is not None:
        conditions.append(s.township_id.in_(subtree(unit_id)))
    q = (
        select(s.cadre_id, cadres.c.name, cadres.c.category)
        .join(
            cadres,
            and_(cadres.c.cadre_id == s.cadre_id, cadres.c.category.in_(p["categories"])),
        )
        .where(*conditions)
        .group_by(s.cadre_id, cadres.c.name, cadres.c.category)
        .having(func.count() == len(months))
        .order_by(s.cadre_id)
        .limit(page.limit + 1)
    )
    after = page.after()
    if after:
        q = q.where(s.cadre_id > cursor_uuid(after))
    rows = (await session.execute(q)).all()
    out = make_page(rows, page, lambda r: [str(r.cadre_id)])
    ids = [r.cadre_id for r in out["items"]]
    history: dict[UUID, list] = {c: [] for c in ids}
    if ids:
        for r in (
            await session.execute(
                select(s.cadre_id, s.month, s.score, s.rank, s.township_id)
                .where(s.cadre_id.in_(ids), s.month.in_(months))
                .order_by(s.cadre_id, s.month)
            )
        ).all():
            history[r.cadre_id].append(r)
    out["items"] = [
        {
            "cadre_id": str(r.cadre_id),
            "cadre_name": r.name,
            "category": r.category,
            "channel": channel.value,
            "township_id": str(history[r.cadre_id][-1].township_id)
            if history[r.cadre_id][-1].township_id
            else None,
            "months": [
                {"month": h.month, "score": format(h.score.normalize(), "f"), "rank": h.rank}
                for h in history[r.cadre_id]
            ],
            "average_score": str(
                (sum(h.score for h in history[r.cadre_id]) / len(months)).quantize(Decimal("0.01"))
            ),
            "policy_version": policy.version,
        }
        for r in out["items"]
    ]
    return out
