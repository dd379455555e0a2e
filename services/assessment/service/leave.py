"""Leave (请销假): request → approved / rejected → cancelled (before start) → returned (销假).

Approved leave days count as present (a day and a night); approving leave for a week
already closed re-judges it. Not reporting back in time is found when the week closes.
"""

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.schemas import LeaveCreate
from services.assessment.service import presence
from services.assessment.service.common import (
    LEAVES,
    after_key,
    emit,
    ensure_cadre,
    ensure_reach,
    filed_under,
)
from services.assessment.settings import AssessmentSettings
from shared.authz import Access
from shared.clock import local_date
from shared.contracts.assessment import LeaveChanged
from shared.contracts.enums import LeaveStatus
from shared.errors import Conflict, InvalidInput, NotFound
from shared.pagination import PageParams, make_page

OPEN = (LeaveStatus.requested.value, LeaveStatus.approved.value)


def _event(row: dict[str, Any]) -> LeaveChanged:
    return LeaveChanged(
        leave_id=row["id"],
        cadre_id=row["cadre_id"],
        kind=row["kind"],
        start_date=row["start_date"],
        end_date=row["end_date"],
        status=row["status"],
    )


async def get(
    session: AsyncSession, leave_id: uuid.UUID, *, who: Access | None = None
) -> dict[str, Any]:
    """A leave request; with `who`, only one they reach (their own, or filed in scope)."""
    row = (await session.execute(select(LEAVES).where(LEAVES.c.id == leave_id))).first()
    if row is None:
        raise NotFound(f"leave request {leave_id} not found", code="leave_not_found")
    leave = dict(row._mapping)
    if who is not None:
        await ensure_reach(session, who, leave["cadre_id"], leave["start_date"], leave["end_date"])
    return leave


async def request(
    session: AsyncSession, body: LeaveCreate, *, now: datetime, who: Access
) -> dict[str, Any]:
    if body.end_date < body.start_date:
        raise InvalidInput("end_date", "the leave ends before it starts")
    who.ensure_cadre(body.cadre_id)
    await ensure_cadre(session, body.cadre_id)
    await ensure_reach(session, who, body.cadre_id, body.start_date, body.end_date)
    clash = await session.scalar(
        select(LEAVES.c.id).where(
            LEAVES.c.cadre_id == body.cadre_id,
            LEAVES.c.status.in_(OPEN),
            LEAVES.c.start_date <= body.end_date,
            LEAVES.c.end_date >= body.start_date,
        )
    )
    if clash is not None:
        raise Conflict(
            "an open leave request overlaps these dates",
            code="leave_overlaps",
            existing_id=str(clash),
        )
    row = {
        "id": uuid.uuid4(),
        "cadre_id": body.cadre_id,
        "kind": body.kind.value,
        "start_date": body.start_date,
        "end_date": body.end_date,
        "reason": body.reason,
        "status": LeaveStatus.requested.value,
        "counted_until": body.end_date,
        "returned_on": None,
        "decided_by": None,
        "cancel_reason": "",
        "created_at": now,
        "updated_at": now,
    }
    await session.execute(LEAVES.insert().values(row))
    await emit(session, [(_event(row), row["cadre_id"])], now)
    return row


async def _move(
    session: AsyncSession,
    leave_id: uuid.UUID,
    *,
    from_: tuple[str, ...],
    now: datetime,
    **values: Any,
) -> dict[str, Any]:
    """Change state only from the given states (409 otherwise), and announce it."""
    current = await get(session, leave_id)
    if current["status"] not in from_:
        raise Conflict(f"the leave request is {current['status']}", code="leave_state")
    result = await session.execute(
        update(LEAVES)
        .where(LEAVES.c.id == leave_id, LEAVES.c.status == current["status"])
        .values(updated_at=now, **values)
        .returning(*LEAVES.c)
    )
    row = result.first()
    if row is None:
        raise Conflict("the leave request changed meanwhile", code="leave_state")
    leave = dict(row._mapping)
    await emit(session, [(_event(leave), leave["cadre_id"])], now)
    return leave


async def approve(
    session: AsyncSession,
    leave_id: uuid.UUID,
    *,
    principal: Access,
    now: datetime,
    policy: AssessmentSettings,
) -> dict[str, Any]:
    await get(session, leave_id, who=principal)
    leave = await _move(
        session,
        leave_id,
        from_=(LeaveStatus.requested.value,),
        now=now,
        status=LeaveStatus.approved.value,
        decided_by=principal.user_id,
    )
    # Leave approved afterwards for a closed week changes that week's verdict.
    await presence.rejudge_closed(
        session, leave["cadre_id"], leave["start_date"], leave["end_date"], now=now, policy=policy
    )
    return leave


async def reject(
    session: AsyncSession, leave_id: uuid.UUID, *, principal: Access, now: datetime
) -> dict[str, Any]:
    await get(session, leave_id, who=principal)
    return await _move(
        session,
        leave_id,
        from_=(LeaveStatus.requested.value,),
        now=now,
        status=LeaveStatus.rejected.value,
        decided_by=principal.user_id,
    )


async def cancel(
    session: AsyncSession,
    leave_id: uuid.UUID,
    *,
    principal: Access,
    reason: str,
    now: datetime,
) -> dict[str, Any]:
    leave = await get(session, leave_id, who=principal)
    if local_date(now) >= leave["start_date"]:
        raise Conflict("the leave has started: report back instead", code="leave_started")
    return await _move(
        session,
        leave_id,
        from_=OPEN,
        now=now,
        status=LeaveStatus.cancelled.value,
        cancel_reason=reason,
    )


async def report_back(
    session: AsyncSession, leave_id: uuid.UUID, *, principal: Access, now: datetime
) -> dict[str, Any]:
    """销假: the cadre is back; days from today on no longer count as leave."""
    leave = await get(session, leave_id, who=principal)
    today = local_date(now)
    if today < leave["start_date"]:
        raise Conflict("the leave has not started: cancel it instead", code="leave_not_started")
    return await _move(
        session,
        leave_id,
        from_=(LeaveStatus.approved.value,),
        now=now,
        status=LeaveStatus.returned.value,
        returned_on=today,
        counted_until=min(leave["end_date"], today - timedelta(days=1)),
    )


async def listing(
    session: AsyncSession,
    *,
    cadre_id: uuid.UUID | None,
    status: LeaveStatus | None,
    page: PageParams,
    scope: uuid.UUID | None = None,
) -> dict[str, Any]:
    stmt = select(LEAVES)
    if scope is not None:
        stmt = stmt.where(
            filed_under(LEAVES.c.cadre_id, scope, LEAVES.c.start_date, LEAVES.c.end_date)
        )
    if cadre_id:
        stmt = stmt.where(LEAVES.c.cadre_id == cadre_id)
    if status:
        stmt = stmt.where(LEAVES.c.status == status.value)
    if after := page.after():
        stmt = stmt.where(
            tuple_(LEAVES.c.start_date, LEAVES.c.id) > after_key(after, date, uuid.UUID)
        )
    rows = await session.execute(
        stmt.order_by(LEAVES.c.start_date, LEAVES.c.id).limit(page.limit + 1)
    )
    return make_page([dict(r._mapping) for r in rows], page, lambda r: [r["start_date"], r["id"]])
