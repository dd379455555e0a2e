"""Presence per cadre and per unit, and closing a week."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.assessment.api.deps import OrgAdmin, Policy, Reader, Session
from services.assessment.schemas import Presence, WeekClose
from services.assessment.service import presence
from services.assessment.service.common import scoped_unit, units_on
from shared.auth import CurrentPrincipal
from shared.clock import parse_week
from shared.contracts.enums import Role
from shared.errors import Forbidden
from shared.pagination import Page, Paging
from shared.runtime import ClockDep
from shared.types import Week as WeekStr

router = APIRouter(tags=["presence"])
Week = Annotated[WeekStr, Query()]


@router.get("/cadres/{cadre_id}/presence", response_model=Presence)
async def cadre_presence(
    cadre_id: uuid.UUID, week: Week, session: Session, principal: CurrentPrincipal, policy: Policy
) -> dict[str, Any]:
    """Days, nights and leave days of a cadre's ISO week; judged once the week is closed."""
    principal.ensure_self_or(cadre_id, Role.org_admin, Role.auditor)
    if principal.unit_id and not principal.has(Role.auditor) and not principal.is_self(cadre_id):
        # A scoped org_admin reads cadres filed in its subtree that week (DESIGN.md §8).
        [filed] = await units_on(session, [(cadre_id, parse_week(week))])
        if filed is None:
            raise Forbidden("that cadre is outside your scope", code="out_of_scope")
        await scoped_unit(session, principal.unit_id, filed)
    return await presence.presence_of(session, cadre_id, week, policy=policy)


@router.get("/units/{unit_id}/presence", response_model=Page[Presence])
async def unit_presence(
    unit_id: uuid.UUID,
    week: Week,
    session: Session,
    principal: Reader,
    policy: Policy,
    page: Paging,
) -> dict[str, Any]:
    """Presence of every cadre posted in the unit's subtree during the week."""
    if principal.unit_id and not principal.has(Role.auditor):
        await scoped_unit(session, principal.unit_id, unit_id)
    return await presence.unit_presence(session, unit_id, week, policy=policy, page=page)


@router.post("/weeks/{week}/close", response_model=WeekClose)
async def close_week(
    week: str, session: Session, _: OrgAdmin, clock: ClockDep, policy: Policy
) -> dict[str, Any]:
    """Judge the week for every cadre posted all of it (idempotent; re-judges changed data)."""
    return await presence.close_week(session, week, now=clock.now(), policy=policy)
