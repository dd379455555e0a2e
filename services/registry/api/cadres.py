"""Cadres and their honors."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from services.registry.access import Admin, StaffOrOwn
from services.registry.api.deps import Session
from services.registry.schemas import (
    CadreCreate,
    CadrePublic,
    CadreStatus,
    CadreUpdate,
    HonorCreate,
    HonorPublic,
    HonorRevoke,
)
from services.registry.service import cadres as cadre_service
from services.registry.service import honors as honor_service
from shared.contracts.enums import CadreCategory, HonorLevel
from shared.fieldcrypt import FieldCipher, field_cipher
from shared.pagination import Page, Paging
from shared.runtime import ClockDep
from shared.types import Day

router = APIRouter(tags=["registry: cadres"])
Cipher = Annotated[FieldCipher, Depends(field_cipher)]


@router.post("/cadres", response_model=CadrePublic, status_code=201)
async def create_cadre(
    data: CadreCreate, session: Session, clock: ClockDep, principal: Admin, cipher: Cipher
):
    """Register a cadre (phone unique; a village cadre holds a position)."""
    return await cadre_service.create_cadre(
        session, clock=clock, principal=principal, data=data, cipher=cipher
    )


@router.get("/cadres", response_model=Page[CadrePublic])
async def list_cadres(
    session: Session,
    principal: StaffOrOwn,
    paging: Paging,
    unit_id: uuid.UUID | None = None,
    category: CadreCategory | None = None,
    posted_on: Day | None = None,
    active: bool | None = None,
):
    """Cadres in scope, by unit subtree, category, and posted on a date."""
    return await cadre_service.list_cadres(
        session,
        principal=principal,
        page=paging,
        unit_id=unit_id,
        category=category,
        posted_on=posted_on,
        active=active,
    )


@router.get("/cadres/{cadre_id}", response_model=CadrePublic)
async def get_cadre(cadre_id: uuid.UUID, session: Session, principal: StaffOrOwn):
    """One cadre: oneself, or any in scope for staff."""
    return await cadre_service.visible_cadre(session, principal, cadre_id)


@router.patch("/cadres/{cadre_id}", response_model=CadrePublic)
async def update_cadre(
    cadre_id: uuid.UUID,
    data: CadreUpdate,
    session: Session,
    clock: ClockDep,
    principal: Admin,
    cipher: Cipher,
):
    """Change a cadre's name, phone, category, position, unit or bank details."""
    return await cadre_service.update_cadre(
        session, clock=clock, principal=principal, cadre_id=cadre_id, data=data, cipher=cipher
    )


@router.post("/cadres/{cadre_id}/deactivate", response_model=CadrePublic)
async def deactivate_cadre(
    cadre_id: uuid.UUID,
    session: Session,
    clock: ClockDep,
    principal: Admin,
    data: CadreStatus | None = None,
):
    """Mark a cadre inactive (their postings must have ended)."""
    return await cadre_service.set_active(
        session,
        clock=clock,
        principal=principal,
        cadre_id=cadre_id,
        active=False,
        effective_date=data.effective_date if data else None,
    )


@router.post("/cadres/{cadre_id}/activate", response_model=CadrePublic)
async def activate_cadre(
    cadre_id: uuid.UUID,
    session: Session,
    clock: ClockDep,
    principal: Admin,
    data: CadreStatus | None = None,
):
    """Mark a cadre active again."""
    return await cadre_service.set_active(
        session,
        clock=clock,
        principal=principal,
        cadre_id=cadre_id,
        active=True,
        effective_date=data.effective_date if data else None,
    )


@router.post("/honors", response_model=HonorPublic, status_code=201)
async def award_honor(data: HonorCreate, session: Session, clock: ClockDep, principal: Admin):
    """Record an honor (表彰) of a cadre."""
    return await honor_service.award(session, clock=clock, principal=principal, data=data)


@router.get("/honors", response_model=Page[HonorPublic])
async def list_honors(
    session: Session,
    principal: StaffOrOwn,
    paging: Paging,
    cadre_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    level: HonorLevel | None = None,
    year: int | None = None,
    revoked: bool | None = None,
):
    """Honors of the cadres in scope."""
    return await honor_service.list_honors(
        session,
        principal=principal,
        page=paging,
        cadre_id=cadre_id,
        unit_id=unit_id,
        level=level,
        year=year,
        revoked=revoked,
    )


@router.get("/honors/{honor_id}", response_model=HonorPublic)
async def get_honor(honor_id: uuid.UUID, session: Session, principal: StaffOrOwn):
    """One honor."""
    return await honor_service.get_honor(session, principal, honor_id)


@router.post("/honors/{honor_id}/revoke", response_model=HonorPublic)
async def revoke_honor(
    honor_id: uuid.UUID, data: HonorRevoke, session: Session, clock: ClockDep, principal: Admin
):
    """Revoke an honor (an event, never a delete)."""
    return await honor_service.revoke(
        session, clock=clock, principal=principal, honor_id=honor_id, reason=data.reason
    )
