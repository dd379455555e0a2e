"""Presence per cadre and per unit, and closing a week."""

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.assessment.api.deps import (
    CountyAdmin,
    Inspection,
    InspectionOrOwn,
    Policy,
    Session,
)
from services.assessment.schemas import Presence, WeekClose
from services.assessment.service import presence
from services.assessment.service.common import ensure_reach
from shared.clock import parse_week
from shared.pagination import Page, Paging
from shared.runtime import ClockDep
from shared.types import Week as WeekStr

router = APIRouter(tags=["presence"])
Week = Annotated[WeekStr, Query()]


@router.get("/cadres/{cadre_id}/presence", response_model=Presence)
async def cadre_presence(
    cadre_id: uuid.UUID, week: Week, session: Session, who: InspectionOrOwn, policy: Policy
) -> dict[str, Any]:
    """Days, nights and leave days of a cadre's ISO week; judged once the week is closed."""
    monday = parse_week(week)
    # A scoped reader reads cadres filed in its subtree that week (DESIGN.md §8).
    await ensure_reach(session, who, cadre_id, monday, monday + timedelta(days=6))
    return await presence.presence_of(session, cadre_id, week, policy=policy)


@router.get("/units/{unit_id}/presence", response_model=Page[Presence])
async def unit_presence(
    unit_id: uuid.UUID,
    week: Week,
    session: Session,
    who: Inspection,
    policy: Policy,
    page: Paging,
) -> dict[str, Any]:
    """Presence of every cadre posted in the unit's subtree during the week."""
    await who.ensure_unit(session, unit_id)
    return await presence.unit_presence(session, unit_id, week, policy=policy, page=page)


@router.post("/weeks/{week}/close", response_model=WeekClose)
async def close_week(
    week: str, session: Session, _: CountyAdmin, clock: ClockDep, policy: Policy
) -> dict[str, Any]:
    """Judge the week for every cadre posted all of it (idempotent; re-judges changed data);
    it judges the whole county, so a county-wide org_admin closes it."""
    return await presence.close_week(session, week, now=clock.now(), policy=policy)
