"""Training sessions, attendees, and the statistics query."""

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.registry.access import Admin, Staff
from services.registry.api.deps import Session
from services.registry.schemas import (
    AttendeePublic,
    AttendeesAdd,
    TrainingCreate,
    TrainingKind,
    TrainingPublic,
    TrainingStats,
)
from services.registry.service import training as training_service
from shared.pagination import Page, Paging
from shared.runtime import ClockDep
from shared.types import Day

router = APIRouter(tags=["registry: training"])
From = Annotated[Day | None, Query(alias="from")]
To = Annotated[Day | None, Query(alias="to")]


@router.post("/training-sessions", response_model=TrainingPublic, status_code=201)
async def create_session(data: TrainingCreate, session: Session, clock: ClockDep, principal: Admin):
    """Record a training session (concentrated, on-site observation, field teaching)."""
    return await training_service.create_session(
        session, clock=clock, principal=principal, data=data
    )


@router.get("/training-sessions", response_model=Page[TrainingPublic])
async def list_sessions(
    session: Session,
    principal: Staff,
    paging: Paging,
    unit_id: uuid.UUID | None = None,
    kind: TrainingKind | None = None,
    date_from: From = None,
    date_to: To = None,
):
    """Sessions in scope by start date, filtered by subtree, kind and date range."""
    return await training_service.list_sessions(
        session,
        principal=principal,
        page=paging,
        unit_id=unit_id,
        kind=kind,
        date_from=date_from,
        date_to=date_to,
    )


@router.get("/training-sessions/{session_id}", response_model=TrainingPublic)
async def get_session(session_id: uuid.UUID, session: Session, principal: Staff):
    """One session with its attendee count."""
    return await training_service.get_session(session, principal, session_id)


@router.post("/training-sessions/{session_id}/attendees", response_model=TrainingPublic)
async def add_attendees(
    session_id: uuid.UUID, data: AttendeesAdd, session: Session, principal: Admin
):
    """Add attendees (cadres already listed are kept once)."""
    return await training_service.add_attendees(
        session, principal=principal, session_id=session_id, cadre_ids=data.cadre_ids
    )


@router.get("/training-sessions/{session_id}/attendees", response_model=Page[AttendeePublic])
async def list_attendees(session_id: uuid.UUID, session: Session, principal: Staff, paging: Paging):
    """Who attended a session."""
    return await training_service.list_attendees(
        session, principal=principal, session_id=session_id, page=paging
    )


@router.delete("/training-sessions/{session_id}/attendees/{cadre_id}", status_code=204)
async def remove_attendee(
    session_id: uuid.UUID, cadre_id: uuid.UUID, session: Session, principal: Admin
) -> Response:
    """Take a cadre off a session's attendance."""
    await training_service.remove_attendee(
        session, principal=principal, session_id=session_id, cadre_id=cadre_id
    )
    return Response(status_code=204)


@router.get("/training-stats", response_model=TrainingStats, response_model_by_alias=True)
async def training_stats(
    session: Session,
    principal: Staff,
    clock: ClockDep,
    date_from: From = None,
    date_to: To = None,
    unit_id: uuid.UUID | None = None,
    period: str = "month",
):
    """Sessions and participant-times per period (month, quarter, year) in a subtree (a
    scoped user asks within its own: 403 outside it)."""
    year = clock.today().year
    return await training_service.statistics(
        session,
        principal=principal,
        date_from=date_from or date(year, 1, 1),
        date_to=date_to or date(year, 12, 31),
        unit_id=await principal.narrow(session, unit_id),
        period=period,
    )
