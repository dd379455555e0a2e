"""Cadres: category, village-cadre position, phone (unique), home unit, status."""

import uuid
from datetime import date
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.access import (
    ensure_in_scope,
    ensure_visible,
    under,
    visible_clause,
)
from services.registry.identity import SECRET_FIELDS, bank_problem, sealed
from services.registry.models import Cadre, OrgUnit, Posting
from services.registry.schemas import CadreCreate, CadreUpdate
from services.registry.service.common import (
    active_on,
    by_created,
    emit,
    fetch_page,
    flush_unique,
    get_or_404,
    next_version,
)
from shared.auth import Principal
from shared.clock import Clock, local_date
from shared.contracts.enums import CadreCategory, Position
from shared.contracts.registry import CadreUpserted
from shared.errors import Conflict, InvalidInput
from shared.fieldcrypt import FieldCipher
from shared.pagination import PageParams


def position_problem(category: CadreCategory, position: Position | None) -> str | None:
    """A village cadre holds a position; nobody else does."""
    if category == CadreCategory.village_cadre and position is None:
        return "a village cadre needs a position"
    if category != CadreCategory.village_cadre and position is not None:
        return "only a village cadre holds a position"
    return None


def position_since_problem(category: CadreCategory, since: date | None) -> str | None:
    if since is not None and category != CadreCategory.village_cadre:
        return "only a village cadre holds a position"
    return None


def cadre_event(cadre: Cadre, effective: date) -> tuple[CadreUpserted, uuid.UUID]:
    payload = CadreUpserted(
        cadre_id=cadre.id,
        name=cadre.name,
        category=cadre.category,
        position=cadre.position,
        active=cadre.active,
        effective_date=effective,
        unit_id=cadre.unit_id,
        entity_version=cadre.version,
        position_since=cadre.position_since,
        id_card_no_enc=cadre.id_card_no_enc,
        bank_name=cadre.bank_name,
        bank_account_enc=cadre.bank_account_enc,
    )
    return payload, cadre.id


def _set_personal(cipher: FieldCipher, cadre: Cadre, data: CadreCreate | CadreUpdate) -> None:
    """Seal the personal fields the body names (null clears one); both bank halves or none."""
    given = data.model_fields_set
    for name in SECRET_FIELDS:
        if name in given:
            for col, value in sealed(cipher, name, getattr(data, name)).items():
                setattr(cadre, col, value)
    if "bank_name" in given:
        cadre.bank_name = data.bank_name
    has_account = cadre.bank_account_enc is not None
    if problem := bank_problem(cadre.bank_name, "x" if has_account else None):
        raise InvalidInput(*problem)


def phone_taken(phone: str) -> Conflict:
    return Conflict(f"phone {phone} is already registered", code="phone_taken", field="phone")


async def _ensure_phone_free(session: AsyncSession, phone: str) -> None:
    if await session.scalar(select(Cadre.id).where(Cadre.phone == phone)):
        raise phone_taken(phone)


async def get_cadre(session: AsyncSession, cadre_id: uuid.UUID) -> Cadre:
    return await get_or_404(session, Cadre, cadre_id, "cadre")


async def visible_cadre(session: AsyncSession, principal: Principal, cadre_id: uuid.UUID) -> Cadre:
    cadre = await get_cadre(session, cadre_id)
    await ensure_visible(session, principal, cadre_id=cadre.id, unit_id=cadre.unit_id)
    return cadre


async def managed_cadre(session: AsyncSession, principal: Principal, cadre_id: uuid.UUID) -> Cadre:
    """A cadre an org_admin may change: in their scope (403 outside it)."""
    cadre = await get_cadre(session, cadre_id)
    await ensure_in_scope(session, principal, cadre.unit_id)
    return cadre


async def _home_unit(
    session: AsyncSession, principal: Principal, unit_id: uuid.UUID | None
) -> uuid.UUID | None:
    if unit_id is None:
        return principal.unit_id  # a scoped admin's cadres land in the admin's unit
    await get_or_404(session, OrgUnit, unit_id, "unit")
    await ensure_in_scope(session, principal, unit_id)
    return unit_id


async def create_cadre(
    session: AsyncSession,
    *,
    clock: Clock,
    principal: Principal,
    data: CadreCreate,
    cipher: FieldCipher,
) -> Cadre:
    if problem := position_problem(data.category, data.position):
        raise InvalidInput("position", problem)
    if problem := position_since_problem(data.category, data.position_since):
        raise InvalidInput("position_since", problem)
    unit_id = await _home_unit(session, principal, data.unit_id)
    await _ensure_phone_free(session, data.phone)
    now = clock.now()
    cadre = Cadre(
        name=data.name,
        phone=data.phone,
        category=data.category,
        position=data.position,
        position_since=(data.position_since or clock.today()) if data.position else None,
        unit_id=unit_id,
        created_at=now,
        updated_at=now,
    )
    _set_personal(cipher, cadre, data)
    session.add(cadre)
    await flush_unique(session, phone_taken(data.phone))
    await emit(session, clock, cadre_event(cadre, clock.today()))
    return cadre


async def update_cadre(
    session: AsyncSession,
    *,
    clock: Clock,
    principal: Principal,
    cadre_id: uuid.UUID,
    data: CadreUpdate,
    cipher: FieldCipher,
) -> Cadre:
    """Change name, phone, category, position, home unit, position_since or the personal
    fields; the event carries the date.

    A position is held since `position_since` when given (null: the registration date),
    else a new one (or one named with an `effective_date`) since `effective_date`, else
    today.
    """
    cadre = await managed_cadre(session, principal, cadre_id)
    given = data.model_fields_set
    category = data.category or CadreCategory(cadre.category)
    if "position" in given:
        position = data.position
    elif data.category and data.category != CadreCategory.village_cadre:
        position = None  # leaving the village cadres drops the position
    else:
        position = Position(cadre.position) if cadre.position else None
    if problem := position_problem(category, position):
        raise InvalidInput("position", problem)
    if problem := position_since_problem(category, data.position_since):
        raise InvalidInput("position_since", problem)
    if position is None:
        cadre.position_since = None
    elif "position_since" in given:
        cadre.position_since = data.position_since or local_date(cadre.created_at)
    elif position != cadre.position or category != cadre.category:
        cadre.position_since = data.effective_date or clock.today()
    elif "position" in given and data.effective_date:
        # {position, effective_date} with the position held: the way to back-date it before
        # position_since existed, kept working.
        cadre.position_since = data.effective_date
    _set_personal(cipher, cadre, data)
    if data.phone and data.phone != cadre.phone:
        await _ensure_phone_free(session, data.phone)
        cadre.phone = data.phone
    if "unit_id" in given and data.unit_id != cadre.unit_id:
        cadre.unit_id = await _home_unit(session, principal, data.unit_id)
    cadre.name = data.name or cadre.name
    cadre.category, cadre.position = category, position
    cadre.updated_at = clock.now()
    await flush_unique(session, phone_taken(cadre.phone))
    await next_version(session, cadre)
    await emit(session, clock, cadre_event(cadre, data.effective_date or clock.today()))
    return cadre


async def set_active(
    session: AsyncSession,
    *,
    clock: Clock,
    principal: Principal,
    cadre_id: uuid.UUID,
    active: bool,
    effective_date: date | None,
) -> Cadre:
    cadre = await managed_cadre(session, principal, cadre_id)
    day = effective_date or clock.today()
    if not active:
        open_posting = await session.scalar(
            select(Posting.id).where(
                Posting.cadre_id == cadre.id,
                Posting.end_reason.is_(None),
                active_on(Posting.start_date, Posting.end_date, day) | (Posting.start_date > day),
            )
        )
        if open_posting is not None:
            raise Conflict(
                "end the cadre's posting first",
                code="cadre_has_open_posting",
                posting_id=str(open_posting),
            )
    if cadre.active != active:
        cadre.active, cadre.updated_at = active, clock.now()
        # The row's lock before the event: two concurrent changes of one cadre leave in
        # the order (and with the versions) the database applied them.
        await next_version(session, cadre)
        await emit(session, clock, cadre_event(cadre, day))
    return cadre


def posted_clause(day: date, unit_id: uuid.UUID | None):
    """Cadres with a posting covering `day` (inside the subtree of `unit_id` when given)."""
    cond = [Posting.cadre_id == Cadre.id, active_on(Posting.start_date, Posting.end_date, day)]
    if unit_id is not None:
        cond.append(under(Posting.unit_id, unit_id))
    return exists().where(*cond)


async def list_cadres(
    session: AsyncSession,
    *,
    principal: Principal,
    page: PageParams,
    unit_id: uuid.UUID | None = None,
    category: CadreCategory | None = None,
    posted_on: date | None = None,
    active: bool | None = None,
) -> dict[str, Any]:
    """`unit_id` is a subtree: of the cadre's home unit, or with `posted_on`, of the posting."""
    stmt = select(Cadre)
    seen = visible_clause(principal, cadre_col=Cadre.id, unit_col=Cadre.unit_id)
    if seen is not None:
        stmt = stmt.where(seen)
    if posted_on is not None:
        stmt = stmt.where(posted_clause(posted_on, unit_id))
    elif unit_id is not None:
        stmt = stmt.where(under(Cadre.unit_id, unit_id))
    if category is not None:
        stmt = stmt.where(Cadre.category == category)
    if active is not None:
        stmt = stmt.where(Cadre.active == active)
    return await fetch_page(session, stmt, page, by_created(Cadre))
