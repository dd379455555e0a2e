"""Households of villages and their pairings with responsible persons (包保)."""

import uuid

from fastapi import APIRouter

from services.registry.access import Admin, Staff, StaffOrOwn
from services.registry.api.deps import Session
from services.registry.schemas import (
    HouseholdCreate,
    HouseholdPublic,
    PairingCreate,
    PairingEnd,
    PairingPublic,
)
from services.registry.service import households as household_service
from shared.pagination import Page, Paging
from shared.runtime import ClockDep
from shared.types import Day

router = APIRouter(tags=["registry: households"])


@router.post("/households", response_model=HouseholdPublic, status_code=201)
async def create_household(
    data: HouseholdCreate, session: Session, clock: ClockDep, principal: Admin
):
    """Register a poor household of a village (code unique within the village)."""
    return await household_service.create_household(
        session, clock=clock, principal=principal, data=data
    )


@router.get("/households", response_model=Page[HouseholdPublic])
async def list_households(
    session: Session, principal: Staff, paging: Paging, unit_id: uuid.UUID | None = None
):
    """Households in scope, by unit subtree."""
    return await household_service.list_households(
        session, principal=principal, page=paging, unit_id=unit_id
    )


@router.get("/households/{household_id}", response_model=HouseholdPublic)
async def get_household(household_id: uuid.UUID, session: Session, principal: Staff):
    """One household."""
    return await household_service.get_household(session, principal, household_id)


@router.post("/pairings", response_model=PairingPublic, status_code=201)
async def create_pairing(data: PairingCreate, session: Session, clock: ClockDep, principal: Admin):
    """A responsible person takes on a household from a date (one carrier at a time)."""
    return await household_service.pair(session, clock=clock, principal=principal, data=data)


@router.get("/pairings", response_model=Page[PairingPublic])
async def list_pairings(
    session: Session,
    principal: StaffOrOwn,
    paging: Paging,
    cadre_id: uuid.UUID | None = None,
    household_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    active_on: Day | None = None,
):
    """Pairings in scope (a cadre sees their own), by cadre, household, subtree, date."""
    return await household_service.list_pairings(
        session,
        principal=principal,
        page=paging,
        cadre_id=cadre_id,
        household_id=household_id,
        unit_id=unit_id,
        active_on_date=active_on,
    )


@router.get("/pairings/{pairing_id}", response_model=PairingPublic)
async def get_pairing(pairing_id: uuid.UUID, session: Session, principal: StaffOrOwn):
    """One pairing."""
    return await household_service.get_pairing(session, principal, pairing_id)


@router.post("/pairings/{pairing_id}/end", response_model=PairingPublic)
async def end_pairing(
    pairing_id: uuid.UUID, data: PairingEnd, session: Session, clock: ClockDep, principal: Admin
):
    """End a pairing on a date (inclusive)."""
    return await household_service.end_pairing(
        session, clock=clock, principal=principal, pairing_id=pairing_id, end_date=data.end_date
    )
