"""The rule violations a week close finds besides presence: not returned from leave,
duty missed, task overdue. Each is dated as DESIGN.md §7.1 says and evaluated for the
week that holds its date, set-based, for everyone or for the cadres being re-judged.
None is raised for a date before the cadre's go-live (golive.py).
"""

import uuid
from datetime import date, datetime, timedelta

from sqlalchemy import and_, bindparam, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.service.common import DUTIES, ENTRIES, LEAVES, SIGN_INS, TASKS, Restrict
from services.assessment.service.entries import NewEntry, record_entries, revoke_entries
from services.assessment.service.golive import cadre_go_live, is_live
from services.assessment.settings import AssessmentSettings
from shared.contracts.enums import EntryReason, EntryStatus, LeaveStatus, SubjectType

ON_LEAVE = (LeaveStatus.approved.value, LeaveStatus.returned.value)


async def find_all(
    session: AsyncSession,
    monday: date,
    *,
    now: datetime,
    policy: AssessmentSettings,
    restrict: Restrict,
) -> None:
    sunday = monday + timedelta(days=6)
    await not_returned(session, monday, sunday, now=now, policy=policy, restrict=restrict)
    await missed_duties(session, monday, sunday, now=now, restrict=restrict)
    await overdue_tasks(session, monday, sunday, now=now, restrict=restrict)


def _entry(reason: EntryReason, cadre_id: uuid.UUID, source_id: uuid.UUID, day: date) -> NewEntry:
    return NewEntry(
        subject_type=SubjectType.cadre,
        subject_id=cadre_id,
        reason=reason,
        source_id=source_id,
        date=day,
    )


async def not_returned(
    session: AsyncSession,
    monday: date,
    sunday: date,
    *,
    now: datetime,
    policy: AssessmentSettings,
    restrict: Restrict,
) -> None:
    """Leave not reported back (销假) within the grace after its end: dated the day after."""
    grace = timedelta(days=policy.return_grace_days)
    rows = await session.execute(
        select(
            LEAVES.c.id,
            LEAVES.c.cadre_id,
            LEAVES.c.end_date,
            LEAVES.c.returned_on,
            cadre_go_live(LEAVES.c.cadre_id, LEAVES.c.end_date).label("go_live"),
        ).where(
            LEAVES.c.status.in_(ON_LEAVE),
            LEAVES.c.end_date.between(monday - grace, sunday - grace),
            restrict(LEAVES.c.cadre_id),
        )
    )
    late = [
        _entry(EntryReason.not_returned, r.cadre_id, r.id, r.end_date + timedelta(days=1))
        for r in rows
        if (r.returned_on is None or r.returned_on > r.end_date + grace)
        and is_live(r.go_live, r.end_date + timedelta(days=1))
    ]
    await record_entries(session, late, now=now)


async def missed_duties(
    session: AsyncSession, monday: date, sunday: date, *, now: datetime, restrict: Restrict
) -> None:
    """A duty date without a counted sign-in (and not on leave) is `duty_missed`; a late
    sign-in that turns up for it revokes the entry."""
    signed = exists().where(
        SIGN_INS.c.cadre_id == DUTIES.c.cadre_id,
        SIGN_INS.c.local_date == DUTIES.c.duty_date,
        SIGN_INS.c.counted.is_(True),
    )
    on_leave = exists().where(
        LEAVES.c.cadre_id == DUTIES.c.cadre_id,
        LEAVES.c.status.in_(ON_LEAVE),
        and_(
            LEAVES.c.start_date <= DUTIES.c.duty_date, LEAVES.c.counted_until >= DUTIES.c.duty_date
        ),
    )
    duties = (
        await session.execute(
            select(
                DUTIES.c.id,
                DUTIES.c.cadre_id,
                DUTIES.c.duty_date,
                (signed | on_leave).label("kept"),
                cadre_go_live(DUTIES.c.cadre_id, DUTIES.c.duty_date).label("go_live"),
            ).where(DUTIES.c.duty_date.between(monday, sunday), restrict(DUTIES.c.cadre_id))
        )
    ).all()
    active = {
        r.source_id: r.id
        for r in await session.execute(
            select(ENTRIES.c.source_id, ENTRIES.c.id).where(
                ENTRIES.c.reason == EntryReason.duty_missed.value,
                ENTRIES.c.date.between(monday, sunday),
                ENTRIES.c.status == EntryStatus.active.value,
                restrict(ENTRIES.c.subject_id),
            )
        )
    }
    kept = [active[d.id] for d in duties if d.kept and d.id in active]
    await revoke_entries(session, kept, why="a sign-in on the duty date was recorded", now=now)
    missed = [
        _entry(EntryReason.duty_missed, d.cadre_id, d.id, d.duty_date)
        for d in duties
        if not d.kept and d.id not in active and is_live(d.go_live, d.duty_date)
    ]
    await record_entries(session, missed, now=now)


async def overdue_tasks(
    session: AsyncSession, monday: date, sunday: date, *, now: datetime, restrict: Restrict
) -> None:
    """A task still open after its deadline (or done late) is `task_overdue`, once per task,
    dated the day after the deadline."""
    rows = await session.execute(
        select(
            TASKS.c.id,
            TASKS.c.assignee_id,
            TASKS.c.deadline,
            TASKS.c.done_on,
            cadre_go_live(TASKS.c.assignee_id, TASKS.c.deadline).label("go_live"),
        ).where(
            TASKS.c.overdue_entry_id.is_(None),
            TASKS.c.deadline.between(monday - timedelta(days=1), sunday - timedelta(days=1)),
            restrict(TASKS.c.assignee_id),
        )
    )
    overdue = [
        _entry(EntryReason.task_overdue, r.assignee_id, r.id, r.deadline + timedelta(days=1))
        for r in rows
        if (r.done_on is None or r.done_on > r.deadline)
        and is_live(r.go_live, r.deadline + timedelta(days=1))
    ]
    created = await record_entries(session, overdue, now=now)
    if created:
        await session.execute(
            update(TASKS)
            .where(TASKS.c.id == bindparam("task_id"))
            .values(overdue_entry_id=bindparam("entry_id")),
            [{"task_id": e["source_id"], "entry_id": e["id"]} for e in created],
        )
