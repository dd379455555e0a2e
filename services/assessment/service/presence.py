"""Five days, four nights (五天四夜) per ISO week, and closing a week.

Everything here is set-based: one statement finds the verdicts that change (who was
posted all seven days, their tallies, compared with the verdicts written), and on
PostgreSQL the same statement writes them and their events, so a week close holds no
Python object per cadre (100k cadres); SQLite writes the rows it returns.
`judge` serves the whole week (closing) and one cadre (a late sign-in) alike.
"""

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Select,
    String,
    and_,
    case,
    distinct,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    text,
    true,
    type_coerce,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.service import golive, violations
from services.assessment.service.common import (
    ENTRIES,
    LEAVES,
    PATHS,
    POSTINGS,
    PRODUCER,
    SIGN_INS,
    UNITS,
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
from services.assessment.service.entries import (
    NewEntry,
    record_entries,
    record_entries_from,
    revoke_entries,
)
from services.assessment.service.golive import go_live_of
from services.assessment.settings import AssessmentSettings
from shared.clock import format_week, parse_week, week_end_moment
from shared.contracts.assessment import PresenceJudged, WeekClosed
from shared.contracts.enums import EntryReason, EntryStatus, LeaveStatus, SubjectType
from shared.db import insert_ignore, is_postgres
from shared.errors import Conflict
from shared.metrics import WEEK_CLOSE
from shared.outbox import add_events_from
from shared.pagination import PageParams
from shared.versions import versioned_upsert

LEAVE_COUNTS = (LeaveStatus.approved.value, LeaveStatus.returned.value)


def week_dates(monday: date) -> list[date]:
    return [monday + timedelta(days=i) for i in range(7)]


def _tallies(monday: date, restrict: Restrict) -> Select:
    """cadre_id, days, nights, leave_days: distinct local dates, a leave day counting as both."""
    sunday = monday + timedelta(days=6)
    days = days_table(week_dates(monday))
    counted = SIGN_INS.c.counted  # as the partial indexes say it (PostgreSQL: index-only scans)
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

    return select(
        marks.c.cadre_id,
        dates_where(marks.c.day).label("days"),
        dates_where(marks.c.night).label("nights"),
        dates_where(marks.c.leave).label("leave_days"),
    ).group_by(marks.c.cadre_id)


async def tallies(
    session: AsyncSession, monday: date, restrict: Restrict = everyone
) -> dict[uuid.UUID, tuple[int, int, int]]:
    """cadre -> (days, nights, leave days) of the week (live, judged or not)."""
    rows = await session.execute(_tallies(monday, restrict))
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _posted_all_week(
    monday: date, policy: AssessmentSettings, restrict: Restrict, *, whole_week: bool
) -> Select:
    """cadre_id, unit_id (on the Sunday) of every cadre posted (in a judged role) all seven
    days and live (go-live on or before the Monday: a week counts only from its start).
    `whole_week`: the go-live of every unit is read once (a week close); otherwise per
    posting (a few cadres re-judged)."""
    sunday = monday + timedelta(days=6)
    days = days_table(week_dates(monday))
    roles = [r.value for r in policy.judged_roles]
    judged = and_(POSTINGS.c.role.in_(roles), restrict(POSTINGS.c.cadre_id))
    spans = and_(
        POSTINGS.c.start_date <= monday,
        or_(POSTINGS.c.end_date.is_(None), POSTINGS.c.end_date >= sunday),
    )
    # Posted all seven days: by one posting spanning the week (nearly everyone), or by
    # several that together cover each day (only those are counted day by day).
    pieced = (
        select(POSTINGS.c.cadre_id)
        .join(days, covers(POSTINGS, days.c.d))
        .where(judged, overlaps(POSTINGS, monday, sunday), ~spans)
        .group_by(POSTINGS.c.cadre_id)
        .having(func.count(distinct(days.c.d)) == 7)
    )
    whole = union(select(POSTINGS.c.cadre_id).where(judged, spans), pieced).subquery("whole")
    # The newest posting wins a correction overlap.
    newest = func.row_number().over(
        partition_by=POSTINGS.c.cadre_id, order_by=POSTINGS.c.start_date.desc()
    )
    on_sunday = select(POSTINGS.c.cadre_id, POSTINGS.c.unit_id, newest.label("n")).join(
        whole, whole.c.cadre_id == POSTINGS.c.cadre_id
    )
    if not whole_week:
        on_sunday = on_sunday.add_columns(go_live_of(POSTINGS.c.unit_id).label("go_live"))
    on_sunday = on_sunday.where(covers(POSTINGS, sunday), POSTINGS.c.role.in_(roles)).subquery(
        "on_sunday"
    )
    stmt = select(on_sunday.c.cadre_id, on_sunday.c.unit_id)
    if whole_week:
        units = (
            select(PATHS.c.unit_id, func.max(UNITS.c.assessment_start_date).label("go_live"))
            .join(UNITS, UNITS.c.unit_id == PATHS.c.ancestor_id)
            .group_by(PATHS.c.unit_id)
            .subquery("unit_go_live")
        )
        stmt = stmt.outerjoin(units, units.c.unit_id == on_sunday.c.unit_id)
        go_live = units.c.go_live
    else:
        go_live = on_sunday.c.go_live
    return stmt.where(on_sunday.c.n == 1, or_(go_live.is_(None), go_live <= monday))


def is_compliant(days: int, nights: int, policy: AssessmentSettings) -> bool:
    return days >= policy.min_days and nights >= policy.min_nights


def _changes(
    monday: date, policy: AssessmentSettings, restrict: Restrict, *, whole_week: bool
) -> Select:
    """The verdicts of the week that must be written: each cadre posted all week whose
    verdict is missing or differs (id NULL when new), and each judged verdict of a cadre no
    longer posted all week (a posting corrected since), withdrawn: `judged` false and
    `compliant` true, so that no consumer keeps a deduction for it."""
    week = format_week(monday)
    posted = _posted_all_week(monday, policy, restrict, whole_week=whole_week).cte("posted")
    counts = _tallies(monday, restrict).subquery("counts")
    days, nights, leave_days = (
        func.coalesce(counts.c[c], 0) for c in ("days", "nights", "leave_days")
    )
    compliant = and_(days >= policy.min_days, nights >= policy.min_nights)
    fresh = (
        select(
            posted.c.cadre_id,
            posted.c.unit_id,
            days.label("days"),
            nights.label("nights"),
            leave_days.label("leave_days"),
            type_coerce(compliant, Boolean).label("compliant"),
        )
        .outerjoin(counts, counts.c.cadre_id == posted.c.cadre_id)
        .subquery("fresh")
    )
    old = VERDICTS.alias("old")
    differs = or_(
        old.c.id.is_(None),
        old.c.judged.is_(False),
        old.c.unit_id.is_distinct_from(fresh.c.unit_id),
        old.c.days != fresh.c.days,
        old.c.nights != fresh.c.nights,
        old.c.leave_days != fresh.c.leave_days,
        old.c.compliant != fresh.c.compliant,
    )
    judged = select(
        old.c.id,
        fresh.c.cadre_id,
        fresh.c.unit_id,
        fresh.c.days,
        fresh.c.nights,
        fresh.c.leave_days,
        fresh.c.compliant,
        true().label("judged"),
    ).select_from(
        fresh.outerjoin(old, and_(old.c.cadre_id == fresh.c.cadre_id, old.c.week == week))
    )
    withdrawn = select(
        VERDICTS.c.id,
        VERDICTS.c.cadre_id,
        VERDICTS.c.unit_id,
        VERDICTS.c.days,
        VERDICTS.c.nights,
        VERDICTS.c.leave_days,
        true(),
        false(),
    ).where(
        VERDICTS.c.week == week,
        VERDICTS.c.judged.is_(True),
        restrict(VERDICTS.c.cadre_id),
        ~exists().where(posted.c.cadre_id == VERDICTS.c.cadre_id),
    )
    return union_all(judged.where(differs), withdrawn)


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
    changes = _changes(monday, policy, restrict, whole_week=not cadre_ids)
    if is_postgres(session):
        await _write_verdicts_pg(session, monday, changes, now=now)
    else:
        await _write_verdicts(session, monday, changes, now=now)
    await _file_presence_entries(session, monday, now=now, restrict=restrict)
    await violations.find_all(session, monday, now=now, policy=policy, restrict=restrict)


VERDICT_COLUMNS = ("cadre_id", "unit_id", "days", "nights", "leave_days", "compliant", "judged")


async def _write_verdicts(
    session: AsyncSession, monday: date, changes: Select, *, now: datetime
) -> None:
    """Each changed verdict gets the next version of its week, under its row's lock, and
    its PresenceJudged event (SQLite, and the reference for the PostgreSQL statement)."""
    week, sunday = format_week(monday), monday + timedelta(days=6)
    rows = [
        {"id": r[0] or uuid.uuid4(), "week": week, "week_sunday": sunday, "judged_at": now}
        | dict(zip(VERDICT_COLUMNS, r[1:], strict=True))
        | {"version": 1}
        for r in await session.execute(changes)
    ]
    if not rows:
        return
    stmt = versioned_upsert(
        session, VERDICTS, ["cadre_id", "week"], [*VERDICT_COLUMNS[1:], "judged_at", "week_sunday"]
    )
    got = {r.cadre_id: r.version for r in await session.execute(stmt, rows)}
    await emit(
        session,
        [(_judged_event(v | {"version": got[v["cadre_id"]]}), v["cadre_id"]) for v in rows],
        now,
    )


async def _write_verdicts_pg(
    session: AsyncSession, monday: date, changes: Select, *, now: datetime
) -> None:
    """PostgreSQL: the same in one statement, the verdicts written by INSERT ... SELECT
    ... ON CONFLICT (version + 1 under the row's lock) and their events built from the
    rows it returns (shared.outbox.add_events_from): no Python object per cadre."""
    week, sunday = format_week(monday), monday + timedelta(days=6)
    change = changes.subquery("change")
    stmt = pg_insert(VERDICTS).from_select(
        ["id", "week", "week_sunday", "judged_at", "version", *VERDICT_COLUMNS],
        select(
            func.gen_random_uuid(),
            literal(week, String),
            literal(sunday, Date),
            literal(now, VERDICTS.c.judged_at.type),
            literal(1),
            *[change.c[c] for c in VERDICT_COLUMNS],
        ),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["cadre_id", "week"],
        set_={c: stmt.excluded[c] for c in [*VERDICT_COLUMNS[1:], "judged_at", "week_sunday"]}
        | {"version": VERDICTS.c.version + 1},
    )
    written = stmt.returning(*VERDICTS.c).cte("verdicts_written")
    fields = {f: written.c[f] for f in PresenceJudged.model_fields if f != "entity_version"}
    await add_events_from(
        session,
        PresenceJudged,
        written,
        key=written.c.cadre_id,
        payload=fields | {"entity_version": written.c.version},
        producer=PRODUCER,
        occurred_at=now,
    )


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
    session: AsyncSession, monday: date, *, now: datetime, restrict: Restrict
) -> None:
    """A non-compliant week has one active entry (dated its Sunday); any other has none."""
    week, sunday = format_week(monday), monday + timedelta(days=6)
    active = and_(
        ENTRIES.c.reason == EntryReason.presence_week.value,
        ENTRIES.c.date == sunday,
        ENTRIES.c.status == EntryStatus.active.value,
    )
    failing = and_(VERDICTS.c.judged.is_(True), VERDICTS.c.compliant.is_(False))
    stale = await session.execute(
        select(ENTRIES.c.id).where(
            active,
            restrict(ENTRIES.c.subject_id),
            ~exists().where(VERDICTS.c.id == ENTRIES.c.source_id, VERDICTS.c.week == week, failing),
        )
    )
    await revoke_entries(
        session, list(stale.scalars()), why="presence week re-judged compliant", now=now
    )
    unfiled_where = and_(
        VERDICTS.c.week == week,
        failing,
        restrict(VERDICTS.c.cadre_id),
        ~exists().where(active, ENTRIES.c.source_id == VERDICTS.c.id),
    )
    unfiled = select(VERDICTS.c.id, VERDICTS.c.cadre_id, VERDICTS.c.unit_id).where(unfiled_where)
    if is_postgres(session):
        # Set-based (a week close files thousands); a verdict without a unit (none today)
        # takes the general way below, which finds the cadre's unit on the Sunday.
        placed = select(
            VERDICTS.c.cadre_id, VERDICTS.c.unit_id, VERDICTS.c.id.label("source_id")
        ).where(unfiled_where, VERDICTS.c.unit_id.is_not(None))
        await record_entries_from(
            session, placed, reason=EntryReason.presence_week, day=sunday, now=now
        )
        unfiled = unfiled.where(VERDICTS.c.unit_id.is_(None))
    unfiled = await session.execute(unfiled)
    await record_entries(
        session,
        [
            NewEntry(
                subject_type=SubjectType.cadre,
                subject_id=v.cadre_id,
                reason=EntryReason.presence_week,
                source_id=v.id,
                date=sunday,
                unit_id=v.unit_id,
            )
            for v in unfiled
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
    if is_postgres(session):
        # One statement judges 100k cadres: its sorts stay in memory, and JIT compiling
        # it would cost seconds it never earns back.
        await session.execute(text("SET LOCAL work_mem = '128MB'"))
        await session.execute(text("SET LOCAL jit = off"))
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
