"""Leave requests (请销假)."""

import uuid
from typing import Any

from fastapi import APIRouter

from services.assessment.api.deps import AdminOrOwn, OrgAdmin, Own, Policy, ReaderOrOwn, Session
from services.assessment.schemas import LeaveCreate, LeavePublic, Reason
from services.assessment.service import leave
from shared.contracts.enums import LeaveStatus
from shared.pagination import Page, Paging
from shared.runtime import ClockDep

router = APIRouter(prefix="/leave-requests", tags=["leave"])


@router.post("", response_model=LeavePublic, status_code=201)
async def request_leave(
    body: LeaveCreate, session: Session, who: AdminOrOwn, clock: ClockDep
) -> dict[str, Any]:
    """Ask for leave (the cadre, or org_admin on their behalf)."""
    return await leave.request(session, body, now=clock.now(), who=who)


@router.get("", response_model=Page[LeavePublic])
async def list_leave(
    session: Session,
    who: ReaderOrOwn,
    page: Paging,
    cadre_id: uuid.UUID | None = None,
    status: LeaveStatus | None = None,
) -> dict[str, Any]:
    """Leave requests by cadre and status; a cadre sees their own, a scoped user its subtree."""
    return await leave.listing(
        session, cadre_id=who.own_cadre(cadre_id), status=status, page=page, scope=who.scope_unit
    )


@router.get("/{leave_id}", response_model=LeavePublic)
async def get_leave(leave_id: uuid.UUID, session: Session, who: ReaderOrOwn) -> dict[str, Any]:
    """One leave request."""
    return await leave.get(session, leave_id, who=who)


@router.post("/{leave_id}/approve", response_model=LeavePublic)
async def approve(
    leave_id: uuid.UUID, session: Session, principal: OrgAdmin, clock: ClockDep, policy: Policy
) -> dict[str, Any]:
    """Approve a requested leave; its days count as present."""
    return await leave.approve(
        session, leave_id, principal=principal, now=clock.now(), policy=policy
    )


@router.post("/{leave_id}/reject", response_model=LeavePublic)
async def reject(
    leave_id: uuid.UUID, session: Session, principal: OrgAdmin, clock: ClockDep
) -> dict[str, Any]:
    """Reject a requested leave."""
    return await leave.reject(session, leave_id, principal=principal, now=clock.now())


@router.post("/{leave_id}/cancel", response_model=LeavePublic)
async def cancel(
    leave_id: uuid.UUID,
    body: Reason,
    session: Session,
    principal: AdminOrOwn,
    clock: ClockDep,
) -> dict[str, Any]:
    """Cancel a leave before it starts, with a reason."""
    return await leave.cancel(
        session, leave_id, principal=principal, reason=body.reason, now=clock.now()
    )


@router.post("/{leave_id}/return", response_model=LeavePublic)
async def report_back(
    leave_id: uuid.UUID, session: Session, principal: Own, clock: ClockDep
) -> dict[str, Any]:
    """Report back from leave (销假), by the cadre."""
    return await leave.report_back(session, leave_id, principal=principal, now=clock.now())
