"""Duty rosters (值班) per command post, daily work logs (工作上网), quarterly tasks (任务清单).

Their violations (`duty_missed`, `task_overdue`) are found when a week closes
(service/violations.py); here they are only kept.
"""

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.schemas import RosterCreate, TaskCreate, WorkLogCreate
from services.assessment.service.common import (
    CADRES,
    DUTIES,
    ROSTERS,
    TASKS,
    WORK_LOGS,
    after_key,
    ensure_cadre,
    ensure_unit,
    filed_under,
    subtree,
)
from shared.authz import Access
from shared.clock import local_date
from shared.db import insert_ignore
from shared.errors import Conflict, InvalidInput, NotFound
from shared.pagination import PageParams, make_page


async def _known_cadres(session: AsyncSession, cadre_ids: set[uuid.UUID]) -> None:
    known = set(
        (
            await session.execute(select(CADRES.c.cadre_id).where(CADRES.c.cadre_id.in_(cadre_ids)))
        ).scalars()
    )
    if missing := cadre_ids - known:
        raise NotFound(f"cadre {sorted(map(str, missing))[0]} is not known", code="cadre_not_found")


async def create_roster(
    session: AsyncSession, body: RosterCreate, *, now: datetime, who: Access
) -> dict:
    await ensure_unit(session, body.unit_id)
    await who.ensure_unit(session, body.unit_id)
    pairs = [(d.cadre_id, d.duty_date) for d in body.duties]
    if len(set(pairs)) != len(pairs):
        raise InvalidInput("duties", "a cadre is on duty once per date in a roster")
    await _known_cadres(session, {d.cadre_id for d in body.duties})
    roster = {"id": uuid.uuid4(), "unit_id": body.unit_id, "title": body.title, "created_at": now}
    duties = [
        {
            "id": uuid.uuid4(),
            "roster_id": roster["id"],
            "unit_id": body.unit_id,
            "cadre_id": cadre_id,
            "duty_date": day,
        }
        for cadre_id, day in pairs
    ]
    await session.execute(ROSTERS.insert().values(roster))
    await session.execute(DUTIES.insert().values(duties))
    return roster | {"duties": duties}


async def get_roster(session: AsyncSession, roster_id: uuid.UUID, *, who: Access) -> dict:
    row = (await session.execute(select(ROSTERS).where(ROSTERS.c.id == roster_id))).first()
    if row is None:
        raise NotFound(f"duty roster {roster_id} not found", code="roster_not_found")
    await who.ensure_unit(session, row.unit_id)
    duties = await session.execute(
        select(DUTIES).where(DUTIES.c.roster_id == roster_id).order_by(DUTIES.c.duty_date)
    )
    return dict(row._mapping) | {"duties": [dict(d._mapping) for d in duties]}


async def write_log(session: AsyncSession, body: WorkLogCreate, *, now: datetime) -> dict:
    if body.log_date > local_date(now):
        raise InvalidInput("log_date", "a work log is for today or an earlier day")
    row = {
        "id": uuid.uuid4(),
        "cadre_id": body.cadre_id,
        "log_date": body.log_date,
        "text": body.text,
        "households_visited": body.households_visited,
        "household_ids": [str(h) for h in body.household_ids],
        "created_at": now,
    }
    stored = await session.execute(
        insert_ignore(session, WORK_LOGS, index=["cadre_id", "log_date"]).values(row)
    )
    if stored.rowcount == 0:
        raise Conflict("this day's work log exists", code="work_log_exists")
    return row


async def list_logs(
    session: AsyncSession,
    *,
    cadre_id: uuid.UUID,
    first: date | None,
    last: date | None,
    page: PageParams,
    scope: uuid.UUID | None = None,
) -> dict[str, Any]:
    stmt = select(WORK_LOGS).where(WORK_LOGS.c.cadre_id == cadre_id)
    if scope is not None:
        day = WORK_LOGS.c.log_date
        stmt = stmt.where(filed_under(WORK_LOGS.c.cadre_id, scope, day, day))
    if first:
        stmt = stmt.where(WORK_LOGS.c.log_date >= first)
    if last:
        stmt = stmt.where(WORK_LOGS.c.log_date <= last)
    if after := page.after():
        stmt = stmt.where(WORK_LOGS.c.log_date > after_key(after, date)[0])
    rows = await session.execute(stmt.order_by(WORK_LOGS.c.log_date).limit(page.limit + 1))
    return make_page([dict(r._mapping) for r in rows], page, lambda r: [r["log_date"]])


async def create_task(
    session: AsyncSession, body: TaskCreate, *, now: datetime, who: Access
) -> dict:
    await ensure_unit(session, body.unit_id)
    await who.ensure_unit(session, body.unit_id)
    await ensure_cadre(session, body.assignee_id)
    row = body.model_dump() | {
        "id": uuid.uuid4(),
        "status": "open",
        "done_on": None,
        "overdue_entry_id": None,
        "created_at": now,
    }
    await session.execute(TASKS.insert().values(row))
    return row


async def get_task(session: AsyncSession, task_id: uuid.UUID) -> dict[str, Any]:
    row = (await session.execute(select(TASKS).where(TASKS.c.id == task_id))).first()
    if row is None:
        raise NotFound(f"task {task_id} not found", code="task_not_found")
    return dict(row._mapping)


async def complete_task(
    session: AsyncSession, task_id: uuid.UUID, *, principal: Access, now: datetime
) -> dict[str, Any]:
    """Its assignee, or an org_admin over the task's unit."""
    task = await get_task(session, task_id)
    await principal.ensure_record(session, cadre_id=task["assignee_id"], unit_ids=[task["unit_id"]])
    result = await session.execute(
        update(TASKS)
        .where(TASKS.c.id == task_id, TASKS.c.status == "open")
        .values(status="done", done_on=local_date(now))
        .returning(*TASKS.c)
    )
    row = result.first()
    if row is None:
        raise Conflict("the task is done already", code="task_done")
    return dict(row._mapping)


async def list_tasks(
    session: AsyncSession,
    *,
    assignee_id: uuid.UUID | None,
    unit_id: uuid.UUID | None,
    quarter: str | None,
    status: str | None,
    page: PageParams,
) -> dict[str, Any]:
    stmt = select(TASKS)
    if assignee_id:
        stmt = stmt.where(TASKS.c.assignee_id == assignee_id)
    if unit_id:
        stmt = stmt.where(TASKS.c.unit_id.in_(subtree(unit_id)))
    if quarter:
        stmt = stmt.where(TASKS.c.quarter == quarter)
    if status:
        stmt = stmt.where(TASKS.c.status == status)
    if after := page.after():
        stmt = stmt.where(tuple_(TASKS.c.deadline, TASKS.c.id) > after_key(after, date, uuid.UUID))
    rows = await session.execute(stmt.order_by(TASKS.c.deadline, TASKS.c.id).limit(page.limit + 1))
    return make_page([dict(r._mapping) for r in rows], page, lambda r: [r["deadline"], r["id"]])
