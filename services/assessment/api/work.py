"""Duty rosters, work logs and quarterly tasks."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.assessment.api.deps import AdminOrOwn, OrgAdmin, Own, Reader, ReaderOrOwn, Session
from services.assessment.schemas import (
    RosterCreate,
    RosterPublic,
    TaskCreate,
    TaskPublic,
    WorkLogCreate,
    WorkLogPublic,
)
from services.assessment.service import work
from shared.errors import InvalidInput
from shared.pagination import Page, Paging
from shared.runtime import ClockDep
from shared.types import Day

router = APIRouter(tags=["work"])


@router.post("/duty-rosters", response_model=RosterPublic, status_code=201)
async def create_roster(
    body: RosterCreate, session: Session, who: OrgAdmin, clock: ClockDep
) -> dict[str, Any]:
    """A command post's duty roster: who is on duty on which date."""
    return await work.create_roster(session, body, now=clock.now(), who=who)


@router.get("/duty-rosters/{roster_id}", response_model=RosterPublic)
async def get_roster(roster_id: uuid.UUID, session: Session, who: Reader) -> dict[str, Any]:
    """One duty roster with its duties."""
    return await work.get_roster(session, roster_id, who=who)


@router.post("/work-logs", response_model=WorkLogPublic, status_code=201)
async def write_log(
    body: WorkLogCreate, session: Session, who: Own, clock: ClockDep
) -> dict[str, Any]:
    """A cadre's daily work log (one per day)."""
    who.ensure_cadre(body.cadre_id)
    return await work.write_log(session, body, now=clock.now())


@router.get("/work-logs", response_model=Page[WorkLogPublic])
async def list_logs(
    session: Session,
    who: ReaderOrOwn,
    page: Paging,
    cadre_id: uuid.UUID | None = None,
    from_: Annotated[Day | None, Query(alias="from")] = None,
    to: Day | None = None,
) -> dict[str, Any]:
    """A cadre's work logs by date (a scoped reader: the days the cadre was filed in it)."""
    cadre_id = who.own_cadre(cadre_id)
    if cadre_id is None:
        raise InvalidInput("cadre_id", "name the cadre whose logs to list")
    return await work.list_logs(
        session, cadre_id=cadre_id, first=from_, last=to, page=page, scope=who.scope_unit
    )


@router.post("/tasks", response_model=TaskPublic, status_code=201)
async def create_task(
    body: TaskCreate, session: Session, who: OrgAdmin, clock: ClockDep
) -> dict[str, Any]:
    """A task of a unit's quarterly list, with one assignee and a deadline."""
    return await work.create_task(session, body, now=clock.now(), who=who)


@router.get("/tasks", response_model=Page[TaskPublic])
async def list_tasks(
    session: Session,
    who: ReaderOrOwn,
    page: Paging,
    assignee_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    quarter: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """Tasks by assignee, unit subtree, quarter or status; a cadre sees their own."""
    return await work.list_tasks(
        session,
        assignee_id=who.own_cadre(assignee_id),
        unit_id=await who.narrow(session, unit_id),
        quarter=quarter,
        status=status,
        page=page,
    )


@router.post("/tasks/{task_id}/complete", response_model=TaskPublic)
async def complete_task(
    task_id: uuid.UUID, session: Session, principal: AdminOrOwn, clock: ClockDep
) -> dict[str, Any]:
    """Mark a task done (its assignee, or org_admin)."""
    return await work.complete_task(session, task_id, principal=principal, now=clock.now())
