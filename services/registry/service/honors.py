"""Honors (表彰): county, prefecture, province, national; awarded and revoked by event."""

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.access import ensure_visible, under, visible_clause
from services.registry.models import Cadre, Honor
from services.registry.schemas import HonorCreate
from services.registry.service.cadres import get_cadre, managed_cadre
from services.registry.service.common import (
    by_created,
    emit,
    fetch_page,
    get_or_404,
    next_version,
)
from shared.auth import Principal
from shared.clock import Clock
from shared.contracts.enums import HonorLevel
from shared.contracts.registry import HonorAwarded, HonorRevoked
from shared.errors import Conflict
from shared.pagination import PageParams


async def award(
    session: AsyncSession, *, clock: Clock, principal: Principal, data: HonorCreate
) -> Honor:
    cadre = await managed_cadre(session, principal, data.cadre_id)
    same = await session.scalar(
        select(Honor.id).where(
            Honor.cadre_id == cadre.id,
            Honor.level == data.level,
            Honor.year == data.year,
            Honor.title == data.title,
            Honor.revoked_at.is_(None),
        )
    )
    if same is not None:
        raise Conflict(
            "the cadre already holds that honor", code="honor_exists", existing_id=str(same)
        )
    honor = Honor(
        cadre_id=cadre.id,
        level=data.level,
        year=data.year,
        title=data.title,
        created_at=clock.now(),
    )
    session.add(honor)
    await session.flush()
    payload = HonorAwarded(
        honor_id=honor.id,
        cadre_id=honor.cadre_id,
        level=honor.level,
        year=honor.year,
        title=honor.title,
        entity_version=honor.version,
    )
    await emit(session, clock, (payload, honor.id))
    return honor


async def revoke(
    session: AsyncSession,
    *,
    clock: Clock,
    principal: Principal,
    honor_id: uuid.UUID,
    reason: str,
) -> Honor:
    honor = await get_or_404(session, Honor, honor_id, "honor")
    await managed_cadre(session, principal, honor.cadre_id)
    if honor.revoked_at is not None:
        raise Conflict("the honor is already revoked", code="honor_revoked")
    honor.revoked_at, honor.revoke_reason = clock.now(), reason
    await next_version(session, honor)
    payload = HonorRevoked(
        honor_id=honor.id,
        cadre_id=honor.cadre_id,
        level=honor.level,
        year=honor.year,
        title=honor.title,
        entity_version=honor.version,
    )
    await emit(session, clock, (payload, honor.id))
    return honor


async def get_honor(session: AsyncSession, principal: Principal, honor_id: uuid.UUID) -> Honor:
    honor = await get_or_404(session, Honor, honor_id, "honor")
    cadre = await get_cadre(session, honor.cadre_id)
    await ensure_visible(session, principal, cadre_id=cadre.id, unit_id=cadre.unit_id)
    return honor


async def list_honors(
    session: AsyncSession,
    *,
    principal: Principal,
    page: PageParams,
    cadre_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    level: HonorLevel | None = None,
    year: int | None = None,
    revoked: bool | None = None,
) -> dict[str, Any]:
    """Honors of cadres in scope; `unit_id` is the subtree of the cadre's unit."""
    stmt = select(Honor)
    cadre_unit = select(Cadre.unit_id).where(Cadre.id == Honor.cadre_id).scalar_subquery()
    seen = visible_clause(principal, cadre_col=Honor.cadre_id, unit_col=cadre_unit)
    if seen is not None:
        stmt = stmt.where(seen)
    if unit_id is not None:
        stmt = stmt.where(under(cadre_unit, unit_id))
    if cadre_id is not None:
        stmt = stmt.where(Honor.cadre_id == cadre_id)
    if level is not None:
        stmt = stmt.where(Honor.level == level)
    if year is not None:
        stmt = stmt.where(Honor.year == year)
    if revoked is not None:
        stmt = stmt.where(Honor.revoked_at.is_not(None) if revoked else Honor.revoked_at.is_(None))
    return await fetch_page(session, stmt, page, by_created(Honor))
