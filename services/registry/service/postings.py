"""Postings (选派/驻村): one at a time per cadre, ended with a reason, replaced in one go."""

import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.access import ensure_in_scope, ensure_visible, under, visible_clause
from services.registry.models import Cadre, OrgUnit, Posting
from services.registry.schemas import PostingCreate, PostingEnd, PostingReplace
from services.registry.service.cadres import managed_cadre
from services.registry.service.common import (
    active_on,
    by_created,
    check_window,
    emit,
    fetch_page,
    get_or_404,
    next_version,
    overlapping,
)
from shared.auth import Principal
from shared.clock import Clock
from shared.contracts.enums import PostingEndReason, PostingRole, UnitKind
from shared.contracts.registry import PostingEnded, PostingOpened
from shared.errors import Conflict, InvalidInput

ROLE_UNITS: dict[PostingRole, frozenset[UnitKind]] = {
    PostingRole.commander: frozenset({UnitKind.township}),
    PostingRole.first_secretary: frozenset({UnitKind.village, UnitKind.group}),
    PostingRole.team_leader: frozenset({UnitKind.village, UnitKind.group}),
    PostingRole.member: frozenset({UnitKind.village, UnitKind.group}),
    PostingRole.expert: frozenset({UnitKind.village, UnitKind.group}),
}


def role_problem(role: PostingRole, unit_kind: str) -> str | None:
    fits = ROLE_UNITS[role]
    if unit_kind not in fits:
        where = " or ".join(sorted(k.value for k in fits))
        return f"a {role.value} is posted to a {where}, not a {unit_kind}"
    return None


def opened_event(p: Posting) -> tuple[PostingOpened, uuid.UUID]:
    payload = PostingOpened(
        posting_id=p.id,
        cadre_id=p.cadre_id,
        unit_id=p.unit_id,
        role=p.role,
        start_date=p.start_date,
        end_date=p.end_date,
        entity_version=p.version,
    )
    return payload, p.id


def ended_event(p: Posting) -> tuple[PostingEnded, uuid.UUID]:
    payload = PostingEnded(
        posting_id=p.id,
        cadre_id=p.cadre_id,
        unit_id=p.unit_id,
        role=p.role,
        start_date=p.start_date,
        end_date=p.end_date,
        reason=p.end_reason,
        entity_version=p.version,
    )
    return payload, p.id


async def _ensure_no_overlap(
    session: AsyncSession,
    cadre_id: uuid.UUID,
    start: date,
    end: date | None,
    exclude: uuid.UUID | None = None,
) -> None:
    stmt = select(Posting.id).where(
        Posting.cadre_id == cadre_id, overlapping(Posting.start_date, Posting.end_date, start, end)
    )
    if exclude is not None:
        stmt = stmt.where(Posting.id != exclude)
    clash = await session.scalar(stmt.limit(1))
    if clash is not None:
        raise Conflict(
            "the cadre already holds a posting in that period",
            code="posting_overlap",
            existing_id=str(clash),
        )


async def open_posting(
    session: AsyncSession, *, clock: Clock, principal: Principal, data: PostingCreate
) -> Posting:
    check_window(data.start_date, data.end_date)
    cadre: Cadre = await managed_cadre(session, principal, data.cadre_id)
    unit = await get_or_404(session, OrgUnit, data.unit_id, "unit")
    await ensure_in_scope(session, principal, unit.id)
    if problem := role_problem(data.role, unit.kind):
        raise InvalidInput("role", problem, code="role_unit_mismatch")
    if not cadre.active:
        raise Conflict("the cadre is inactive", code="cadre_inactive")
    await _ensure_no_overlap(session, cadre.id, data.start_date, data.end_date)
    posting = Posting(
        cadre_id=cadre.id,
        unit_id=unit.id,
        role=data.role,
        start_date=data.start_date,
        end_date=data.end_date,
        created_at=clock.now(),
    )
    session.add(posting)
    later = await session.scalar(
        select(Posting.id).where(Posting.cadre_id == cadre.id, Posting.start_date > data.start_date)
    )
    if later is None:
        cadre.unit_id = unit.id  # the cadre belongs where their latest posting is
    await session.flush()
    await emit(session, clock, opened_event(posting))
    return posting


async def managed_posting(
    session: AsyncSession, principal: Principal, posting_id: uuid.UUID
) -> Posting:
    posting = await get_or_404(session, Posting, posting_id, "posting")
    await ensure_in_scope(session, principal, posting.unit_id)
    return posting


async def end_posting(
    session: AsyncSession,
    *,
    clock: Clock,
    principal: Principal,
    posting_id: uuid.UUID,
    data: PostingEnd,
) -> Posting:
    posting = await managed_posting(session, principal, posting_id)
    if posting.end_reason is not None:
        raise Conflict("the posting has already ended", code="posting_ended")
    check_window(posting.start_date, data.end_date)
    if posting.end_date is None or data.end_date > posting.end_date:
        await _ensure_no_overlap(
            session, posting.cadre_id, posting.start_date, data.end_date, exclude=posting.id
        )
    posting.end_date, posting.end_reason = data.end_date, data.reason
    posting.ended_at = clock.now()
    await next_version(session, posting)
    await emit(session, clock, ended_event(posting))
    return posting


async def replace_posting(
    session: AsyncSession,
    *,
    clock: Clock,
    principal: Principal,
    posting_id: uuid.UUID,
    data: PostingReplace,
) -> tuple[Posting, Posting]:
    """调整: end one posting and open its successor; either both happen or neither."""
    old = await end_posting(
        session,
        clock=clock,
        principal=principal,
        posting_id=posting_id,
        data=PostingEnd(end_date=data.end_date, reason=data.reason),
    )
    start = data.start_date or data.end_date + timedelta(days=1)
    if start <= data.end_date and (data.cadre_id in (None, old.cadre_id)):
        raise InvalidInput("start_date", "the successor starts after the end date")
    new = await open_posting(
        session,
        clock=clock,
        principal=principal,
        data=PostingCreate(
            cadre_id=data.cadre_id or old.cadre_id,
            unit_id=data.unit_id or old.unit_id,
            role=data.role or PostingRole(old.role),
            start_date=start,
            end_date=data.new_end_date,
        ),
    )
    return old, new


async def get_posting(
    session: AsyncSession, principal: Principal, posting_id: uuid.UUID
) -> Posting:
    posting = await get_or_404(session, Posting, posting_id, "posting")
    await ensure_visible(session, principal, cadre_id=posting.cadre_id, unit_id=posting.unit_id)
    return posting


async def list_postings(
    session: AsyncSession,
    *,
    principal: Principal,
    page,
    cadre_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    role: PostingRole | None = None,
    posted_on: date | None = None,
    ended: bool | None = None,
    reason: PostingEndReason | None = None,
) -> dict[str, Any]:
    """Full history per cadre (`cadre_id`) or per unit subtree (`unit_id`)."""
    stmt = select(Posting)
    seen = visible_clause(principal, cadre_col=Posting.cadre_id, unit_col=Posting.unit_id)
    if seen is not None:
        stmt = stmt.where(seen)
    if cadre_id is not None:
        stmt = stmt.where(Posting.cadre_id == cadre_id)
    if unit_id is not None:
        stmt = stmt.where(under(Posting.unit_id, unit_id))
    if role is not None:
        stmt = stmt.where(Posting.role == role)
    if posted_on is not None:
        stmt = stmt.where(active_on(Posting.start_date, Posting.end_date, posted_on))
    if ended is not None:
        stmt = stmt.where(
            Posting.end_reason.is_not(None) if ended else Posting.end_reason.is_(None)
        )
    if reason is not None:
        stmt = stmt.where(Posting.end_reason == reason)
    return await fetch_page(session, stmt, page, by_created(Posting))
