"""Poor households of a village and the responsible persons who carry them (包保)."""

import uuid
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.access import (
    ensure_in_scope,
    ensure_visible,
    scope_clause,
    under,
    visible_clause,
)
from services.registry.models import Household, OrgUnit, Pairing
from services.registry.schemas import HouseholdCreate, PairingCreate
from services.registry.service.cadres import get_cadre
from services.registry.service.common import (
    active_on,
    by_created,
    check_window,
    emit,
    fetch_page,
    flush_unique,
    get_or_404,
    next_version,
    overlapping,
)
from shared.auth import Principal
from shared.clock import Clock
from shared.contracts.enums import UnitKind
from shared.contracts.registry import PairingChanged
from shared.errors import Conflict, InvalidInput
from shared.pagination import PageParams


def _household_exists(code: str) -> Conflict:
    return Conflict(f"household {code} exists in that village", code="household_exists")


async def create_household(
    session: AsyncSession, *, clock: Clock, principal: Principal, data: HouseholdCreate
) -> Household:
    village = await get_or_404(session, OrgUnit, data.village_id, "unit")
    if village.kind != UnitKind.village:
        raise InvalidInput("village_id", f"a household belongs to a village, not a {village.kind}")
    await ensure_in_scope(session, principal, village.id)
    same = select(Household.id).where(
        Household.village_id == village.id, Household.code == data.code
    )
    if await session.scalar(same):
        raise _household_exists(data.code)
    household = Household(**data.model_dump(), created_at=clock.now())
    session.add(household)
    await flush_unique(session, _household_exists(data.code))
    return household


async def get_household(
    session: AsyncSession, principal: Principal, household_id: uuid.UUID
) -> Household:
    household = await get_or_404(session, Household, household_id, "household")
    await ensure_in_scope(session, principal, household.village_id)
    return household


async def list_households(
    session: AsyncSession, *, principal: Principal, page: PageParams, unit_id: uuid.UUID | None
) -> dict[str, Any]:
    stmt = select(Household)
    if (clause := scope_clause(principal, Household.village_id)) is not None:
        stmt = stmt.where(clause)
    if unit_id is not None:
        stmt = stmt.where(under(Household.village_id, unit_id))
    return await fetch_page(session, stmt, page, by_created(Household))


def pairing_event(p: Pairing) -> tuple[PairingChanged, uuid.UUID]:
    payload = PairingChanged(
        pairing_id=p.id,
        cadre_id=p.cadre_id,
        household_id=p.household_id,
        village_id=p.village_id,
        start_date=p.start_date,
        end_date=p.end_date,
        entity_version=p.version,
    )
    return payload, p.id


async def pair(
    session: AsyncSession, *, clock: Clock, principal: Principal, data: PairingCreate
) -> Pairing:
    """A responsible person takes on a household; one carrier per household at a time."""
    check_window(data.start_date, data.end_date)
    household = await get_household(session, principal, data.household_id)
    cadre = await get_cadre(session, data.cadre_id)
    if not cadre.active:
        raise Conflict("the cadre is inactive", code="cadre_inactive")
    clash = await session.scalar(
        select(Pairing.id).where(
            Pairing.household_id == household.id,
            overlapping(Pairing.start_date, Pairing.end_date, data.start_date, data.end_date),
        )
    )
    if clash is not None:
        raise Conflict(
            "the household is carried by someone in that period",
            code="pairing_overlap",
            existing_id=str(clash),
        )
    pairing = Pairing(
        cadre_id=cadre.id,
        household_id=household.id,
        village_id=household.village_id,
        start_date=data.start_date,
        end_date=data.end_date,
        created_at=clock.now(),
    )
    session.add(pairing)
    await session.flush()
    await emit(session, clock, pairing_event(pairing))
    return pairing


async def end_pairing(
    session: AsyncSession,
    *,
    clock: Clock,
    principal: Principal,
    pairing_id: uuid.UUID,
    end_date: date,
) -> Pairing:
    pairing = await get_or_404(session, Pairing, pairing_id, "pairing")
    await ensure_in_scope(session, principal, pairing.village_id)
    if pairing.end_date is not None and pairing.end_date <= end_date:
        raise Conflict("the pairing already ends by then", code="pairing_ended")
    check_window(pairing.start_date, end_date)
    pairing.end_date = end_date
    await next_version(session, pairing)
    await emit(session, clock, pairing_event(pairing))
    return pairing


async def get_pairing(session: AsyncSession, principal: Principal, pairing_id: uuid.UUID):
    pairing = await get_or_404(session, Pairing, pairing_id, "pairing")
    await ensure_visible(session, principal, cadre_id=pairing.cadre_id, unit_id=pairing.village_id)
    return pairing


async def list_pairings(
    session: AsyncSession,
    *,
    principal: Principal,
    page: PageParams,
    cadre_id: uuid.UUID | None = None,
    household_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    active_on_date: date | None = None,
) -> dict[str, Any]:
    stmt = select(Pairing)
    seen = visible_clause(principal, cadre_col=Pairing.cadre_id, unit_col=Pairing.village_id)
    if seen is not None:
        stmt = stmt.where(seen)
    if cadre_id is not None:
        stmt = stmt.where(Pairing.cadre_id == cadre_id)
    if household_id is not None:
        stmt = stmt.where(Pairing.household_id == household_id)
    if unit_id is not None:
        stmt = stmt.where(under(Pairing.village_id, unit_id))
    if active_on_date is not None:
        stmt = stmt.where(active_on(Pairing.start_date, Pairing.end_date, active_on_date))
    return await fetch_page(session, stmt, page, by_created(Pairing))
