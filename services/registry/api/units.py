"""Org units: create, read, list, rename/re-fence/flag, move, history."""

import uuid

from fastapi import APIRouter

from services.registry.access import Admin, Anyone
from services.registry.api.deps import Session
from services.registry.schemas import (
    UnitChangePublic,
    UnitCreate,
    UnitDetail,
    UnitMove,
    UnitPublic,
    UnitUpdate,
)
from services.registry.service import units as unit_service
from shared.contracts.enums import UnitKind
from shared.pagination import Page, Paging
from shared.runtime import ClockDep

router = APIRouter(tags=["registry: org units"])


@router.post("/org-units", response_model=UnitPublic, status_code=201)
async def create_unit(data: UnitCreate, session: Session, clock: ClockDep, principal: Admin):
    """Create a unit under a parent of the kind above it (a county has none)."""
    return await unit_service.create_unit(session, clock=clock, principal=principal, data=data)


@router.get("/org-units", response_model=Page[UnitPublic])
async def list_units(
    session: Session,
    principal: Anyone,
    paging: Paging,
    unit_id: uuid.UUID | None = None,
    parent_id: uuid.UUID | None = None,
    kind: UnitKind | None = None,
    special_difficulty: bool | None = None,
):
    """Units in scope by code; `unit_id` limits to that subtree, `parent_id` to children."""
    return await unit_service.list_units(
        session,
        principal=principal,
        page=paging,
        unit_id=unit_id,
        parent_id=parent_id,
        kind=kind,
        special_difficulty=special_difficulty,
    )


@router.get("/org-units/{unit_id}", response_model=UnitDetail)
async def get_unit(unit_id: uuid.UUID, session: Session, principal: Anyone):
    """One unit, with its ancestors from the county down."""
    return await unit_service.unit_detail(session, principal, unit_id)


@router.patch("/org-units/{unit_id}", response_model=UnitPublic)
async def update_unit(
    unit_id: uuid.UUID, data: UnitUpdate, session: Session, clock: ClockDep, principal: Admin
):
    """Rename, recode, re-fence or flag a unit (history kept)."""
    return await unit_service.update_unit(
        session, clock=clock, principal=principal, unit_id=unit_id, data=data
    )


@router.post("/org-units/{unit_id}/move", response_model=UnitPublic)
async def move_unit(
    unit_id: uuid.UUID, data: UnitMove, session: Session, clock: ClockDep, principal: Admin
):
    """Move a unit and its subtree under another parent (history kept)."""
    return await unit_service.move_unit(
        session, clock=clock, principal=principal, unit_id=unit_id, parent_id=data.parent_id
    )


@router.get("/org-units/{unit_id}/history", response_model=Page[UnitChangePublic])
async def unit_history(unit_id: uuid.UUID, session: Session, principal: Anyone, paging: Paging):
    """What happened to a unit: created, renamed, recoded, moved, re-fenced, flagged."""
    return await unit_service.history(session, principal=principal, unit_id=unit_id, page=paging)
