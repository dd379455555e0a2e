"""Five days, four nights (五天四夜) per ISO week, and closing a week.

Everything here is set-based: one statement tallies the days and nights of every cadre
in a week, one finds who was posted on all seven days; Python only compares verdicts.
`judge` serves the whole week (closing) and one cadre (a late sign-in) alike.
"""

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, distinct, func, literal, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.service import golive, violations
from services.assessment.service.common import (
    ENTRIES,
    LEAVES,
    PATHS,
    POSTINGS,
    SIGN_INS,
    VERDICTS,
    WEEKS,
    Restrict,
    after_key,
    covers,
    days_table,
    emit,
    ensure_cadre,
    ensure_unit,
    everyone,
    only,
    overlaps,
)
from services.assessment.service.entries import NewEntry, record_entries, revoke_entries
from services.assessment.service.golive import go_live_of, is_live
from services.assessment.settings import AssessmentSettings
from shared.clock import format_week, parse_week, week_end_moment
from shared.contracts.assessment import PresenceJudged, WeekClosed
from shared.contracts.enums import EntryReason, EntryStatus, LeaveStatus, SubjectType
from shared.db import insert_ignore
from shared.errors import Conflict
from shared.metrics import WEEK_CLOSE
from shared.pagination import PageParams
from shared.versions import versioned_upsert

LEAVE_COUNTS = (LeaveStatus.approved.value, LeaveStatus.returned.value)
VERDICT_FIELDS = ("unit_id", "days", "nights", "leave_days", "compliant", "judged")


def week_dates(monday: date) -> list[date]:
    return [monday + timedelta(days=i) for i in range(7)]


async def tallies(
    session: AsyncSession, monday: date, restrict: Restrict = everyone
) -> dict[uuid.UUID, tuple[int, int, int]]:
    """cadre -> (days, nights, leave days): distinct local dates, a leave day counting as both."""
    sunday = monday + timedelta(days=6)
    days = days_table(week_dates(monday))
    counted = SIGN_INS.c.counted.is_(True)
    marks = union_all(
        select(
            SIGN_INS.c.cadre_id,
            SIGN_INS.c.day_date.label("d"),
            literal(1).label("day"),
            literal(0).label("night"),
            literal(0).label("leave"),
        ).where(
            counted, SIGN_INS.c.day_date.between(monday, sunday), restrict(SIGN_INS.c.cadre_id)
        ),
        select(
            SIGN_INS.c.cadre_id, SIGN_INS.c.night_date, literal(0), literal(1), literal(0)
        ).where(
            counted, SIGN_INS.c.night_date.between(monday, sunday), restrict(SIGN_INS.c.cadre_id)
        ),
        select(LEAVES.c.cadre_id, days.c.d, literal(1), literal(1), literal(1))
        .join(days, and_(LEAVES.c.start_date <= days.c.d, LEAVES.c.counted_until >= days.c.d))
        .where(LEAVES.c.status.in_(LEAVE_COUNTS), restrict(LEAVES.c.cadre_id)),
    ).subquery("marks")

    def dates_where(flag) -> Any:
        return func.count(distinct(case((flag == 1, marks.c.d))))

    rows = await session.execute(
        select(
            marks.c.cadre_id,
            dates_where(marks.c.day),
            dates_where(marks.c.night),
            dates_where(marks.c.leave),
        ).group_by(marks.c.cadre_id)
    )
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


async def posted_all_week(
    session: AsyncSession, monday: date, policy: AssessmentSettings, restrict: Restrict = everyone
) -> dict[uuid.UUID, uuid.UUID]:
    """cadre -> unit on the Sunday, for every cadre posted (in a judged role) all seven days
    and live (go-live on or before the Monday: a week counts only from its start)."""
    days = days_table(week_dates(monday))
    roles = [r.value for r in policy.judged_roles]
    whole = (
        select(POSTINGS.c.cadre_id)
        .join(days, covers(POSTINGS, days.c.d))
        .where(POSTINGS.c.role.in_(roles), restrict(POSTINGS.c.cadre_id))
        .group_by(POSTINGS.c.cadre_id)
        .having(func.count(distinct(days.c.d)) == 7)
        .subquery("whole")
    )
    rows = await session.execute(
        select(POSTINGS.c.cadre_id, POSTINGS.c.unit_id, go_live_of(POSTINGS.c.unit_id))
        .join(whole, whole.c.cadre_id == POSTINGS.c.cadre_id)
        .where(covers(POSTINGS, monday + timedelta(days=6)), POSTINGS.c.role.in_(roles))
        .order_by(POSTINGS.c.start_date)
    )
    # The newest posting wins a correction overlap.
    units = {r[0]: (r[1], r[2]) for r in rows}
    return {c: unit for c, (unit, start) in units.items() if is_live(start, monday)}


def is_compliant(days: int, nights: int, policy: AssessmentSettings) -> bool:
    return days >= policy.min_days and nights >= policy.min_nights


async def judge(
    session: AsyncSession,
    monday: date,
    *,
    now: datetime,
    policy: AssessmentSettings,
    cadre_ids: list[uuid.UUID] | None = None,
) -> None:
    """(Re-)judge a week, for everyone or for some cadres: only what changed is written,
    and each change carries its events (verdict, entry recorded or revoked, actions)."""
    restrict = only(cadre_ids) if cadre_ids else everyone
    week, sunday = format_week(monday), monday + timedelta(days=6)
    posted = await posted_all_week(session, monday, policy, restrict)
    counts = await tallies(session, monday, restrict)
    existing = {
        r.cadre_id: dict(r._mapping)
        for r in await session.execute(
            select(VERDICTS).where(VERDICTS.c.week == week, restrict(VERDICTS.c.cadre_id))
        )
    }
    changed: list[dict[str, Any]] = []
    for cadre_id, unit_id in posted.items():
        days, nights, leave_days = counts.get(cadre_id, (0, 0, 0))
        old = existing.get(cadre_id)
        new = {
            "id": old["id"] if old else uuid.uuid4(),
            "cadre_id": cadre_id,
            "week": week,
            "week_sunday": sunday,
            "unit_id": unit_id,
            "days": days,
            "nights": nights,
            "leave_days": leave_days,
            "compliant": is_compliant(days, nights, policy),
            "judged": True,
            "judged_at": now,
        }
        if old is None or any(old[f] != new[f] for f in VERDICT_FIELDS):
            changed.append(new)
    for cadre_id, old in existing.items():
        if cadre_id not in posted and old["judged"]:
            # No longer posted all week (a posting corrected since): the verdict is
            # withdrawn; `compliant` true so that no consumer keeps a deduction for it.
            changed.append(old | {"judged": False, "compliant": True, "judged_at": now})
    if changed:
        # Each changed verdict gets the next version of its week, under its row's lock.
        stmt = versioned_upsert(
            session, VERDICTS, ["cadre_id", "week"], [*VERDICT_FIELDS, "judged_at", "week_sunday"]
        )
        rows = [{k: v for k, v in c.items() if k != "version"} | {"version": 1} for c in changed]
        got = {r.cadre_id: r.version for r in await session.execute(stmt, rows)}
        changed = [c | {"version": got[c["cadre_id"]]} for c in changed]
        await emit(session, [(_judged_event(v), v["cadre_id"]) for v in changed], now)
    final = existing | {v["cadre_id"]: v for v in changed}
    await _file_presence_entries(session, sunday, final, now=now, restrict=restrict)
    await violations.find_all(session, monday, now=now, policy=policy, restrict=restrict)


def _judged_event(v: dict[str, Any]) -> PresenceJudged:
    return PresenceJudged(
        cadre_id=v["cadre_id"],
        week=v["week"],
        week_sunday=v["week_sunday"],
        unit_id=v["unit_id"],
        days=v["days"],
        nights=v["nights"],
        leave_days=v["leave_days"],
        compliant=v["compliant"],
        judged=v["judged"],
        entity_version=v["version"],
    )


async def _file_presence_entries(
    session: AsyncSession,
    sunday: date,
    verdicts: dict[uuid.UUID, dict[str, Any]],
    *,
    now: datetime,
    restrict: Restrict,
) -> None:
    """A non-compliant week has one active entry (dated its Sunday); any other has none."""
    active = {
        r.source_id: r.id
        for r in await session.execute(
            select(ENTRIES.c.source_id, ENTRIES.c.id).where(
                ENTRIES.c.reason == EntryReason.presence_week.value,
                ENTRIES.c.date == sunday,
                ENTRIES.c.status == EntryStatus.active.value,
                restrict(ENTRIES.c.subject_id),
            )
        )
    }
    failing = {v["id"]: v for v in verdicts.values() if v["judged"] and not v["compliant"]}
    stale = [entry_id for source_id, entry_id in active.items() if source_id not in failing]
    await revoke_entries(session, stale, why="presence week re-judged compliant", now=now)
    await record_entries(
        session,
        [
            NewEntry(
                subject_type=SubjectType.cadre,
                subject_id=v["cadre_id"],
                reason=EntryReason.presence_week,
                source_id=v["id"],
                date=sunday,
                unit_id=v["unit_id"],
            )
            for verdict_id, v in failing.items()
            if verdict_id not in active
        ],
        now=now,
    )


async def close_week(
    session: AsyncSession, week: str, *, now: datetime, policy: AssessmentSettings
) -> dict[str, Any]:
    """Judge every cadre posted all week; closing again re-judges with the data as it is."""
    monday = parse_week(week)
    week = format_week(monday)
    if now < week_end_moment(monday):
        raise Conflict(
            f"{week} ends at {week_end_moment(monday).isoformat()}", code="week_not_ended"
        )
    await golive.ensure_live_week(session, monday, week)
    new = await session.execute(
        insert_ignore(session, WEEKS).values(
            week=week, monday=monday, first_closed_at=now, closed_at=now
        )
    )
    with WEEK_CLOSE.labels("assessment").time():
        return await _judge_week(session, monday, now=now, policy=policy, new=new.rowcount == 1)


async def rejudge(
    session: AsyncSession,
    monday: date,
    cadre_ids: list[uuid.UUID],
    *,
    now: datetime,
    policy: AssessmentSettings,
) -> None:
    """Re-judge a closed week for some cadres (late sign-in, leave approved afterwards)."""
    await _judge_week(session, monday, now=now, policy=policy, cadre_ids=cadre_ids)


async def _judge_week(
    session: AsyncSession,
    monday: date,
    *,
    now: datetime,
    policy: AssessmentSettings,
    cadre_ids: list[uuid.UUID] | None = None,
    new: bool = False,
) -> dict[str, Any]:
    """Judge a closed week and keep its counts; a change of counts is announced."""
    week = format_week(monday)
    # The week's row first: concurrent closings and re-judgements of this week queue on it.
    closed_at = WEEKS.c.closed_at if cadre_ids else now
    before = (
        await session.execute(
            update(WEEKS)
            .where(WEEKS.c.week == week)
            .values(closed_at=closed_at)
            .returning(WEEKS.c.judged, WEEKS.c.compliant, WEEKS.c.non_compliant)
        )
    ).one()
    await judge(session, monday, now=now, policy=policy, cadre_ids=cadre_ids)
    row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((VERDICTS.c.compliant.is_(True), 1), else_=0)), 0),
            ).where(VERDICTS.c.week == week, VERDICTS.c.judged.is_(True))
        )
    ).one()
    counts = {"judged": row[0], "compliant": row[1], "non_compliant": row[0] - row[1]}
    if new or tuple(before) != tuple(counts.values()):
        await session.execute(update(WEEKS).where(WEEKS.c.week == week).values(**counts))
        await emit(session, [(WeekClosed(week=week, **counts), week)], now)
    return {"week": week, **counts}


async def rejudge_closed(
    session: AsyncSession,
    cadre_id: uuid.UUID,
    first: date,
    last: date,
    *,
    now: datetime,
    policy: AssessmentSettings,
) -> None:
    """Re-judge, for one cadre, every closed week that holds a date in [first, last]."""
    mondays = (
        await session.execute(
            select(WEEKS.c.monday)
            .where(WEEKS.c.monday.between(first - timedelta(days=6), last))
            .order_by(WEEKS.c.monday)
        )
    ).scalars()
    for monday in list(mondays):
        await rejudge(session, monday, [cadre_id], now=now, policy=policy)


async def presence_of(
    session: AsyncSession, cadre_id: uuid.UUID, week: str, *, policy: AssessmentSettings
) -> dict[str, Any]:
    monday = parse_week(week)
    await ensure_cadre(session, cadre_id)
    return (await _presence_rows(session, monday, [cadre_id], policy))[0]


async def _presence_rows(
    session: AsyncSession, monday: date, cadre_ids: list[uuid.UUID], policy: AssessmentSettings
) -> list[dict[str, Any]]:
    """Judged weeks answer their verdict; any other week its live tally."""
    week = format_week(monday)
    if not cadre_ids:
        return []
    live = await tallies(session, monday, only(cadre_ids))
    verdicts = {
        r.cadre_id: r
        for r in await session.execute(
            select(VERDICTS).where(
                VERDICTS.c.week == week,
                VERDICTS.c.cadre_id.in_(cadre_ids),
                VERDICTS.c.judged.is_(True),
            )
        )
    }
    out = []
    for cadre_id in cadre_ids:
        if (v := verdicts.get(cadre_id)) is not None:
            days, nights, leave_days, compliant = v.days, v.nights, v.leave_days, v.compliant
        else:
            days, nights, leave_days = live.get(cadre_id, (0, 0, 0))
            compliant = is_compliant(days, nights, policy)
        out.append(
            {
                "cadre_id": cadre_id,
                "week": week,
                "days": days,
                "nights": nights,
                "leave_days": leave_days,
                "compliant": compliant,
                "judged": v is not None,
            }
        )
    return out


async def unit_presence(
    session: AsyncSession,
    unit_id: uuid.UUID,
    week: str,
    *,
    policy: AssessmentSettings,
    page: PageParams,
) -> dict[str, Any]:
    """Presence of every cadre posted in the unit's subtree during the week, by cadre id."""
    monday = parse_week(week)
    await ensure_unit(session, unit_id)
    stmt = (
        select(POSTINGS.c.cadre_id)
        .distinct()
        .join(PATHS, PATHS.c.unit_id == POSTINGS.c.unit_id)
        .where(
            PATHS.c.ancestor_id == unit_id, overlaps(POSTINGS, monday, monday + timedelta(days=6))
        )
    )
    if after := page.after():
        stmt = stmt.where(POSTINGS.c.cadre_id > after_key(after, uuid.UUID)[0])
    ids = list(
        (await session.execute(stmt.order_by(POSTINGS.c.cadre_id).limit(page.limit + 1))).scalars()
    )
    shown = ids[: page.limit]
    return {
        "items": await _presence_rows(session, monday, shown, policy),
        "next_cursor": page.encode([shown[-1]]) if len(ids) > page.limit else None,
    }
