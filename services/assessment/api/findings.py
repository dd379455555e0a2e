"""Findings of the inspection teams, their dismissal and appeal."""

import uuid
from typing import Any

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.api.deps import (
    Appellant,
    InspectionOrOwn,
    Inspector,
    OrgAdmin,
    Policy,
    Session,
)
from services.assessment.schemas import AppealDecision, FindingCreate, FindingPublic, Reason
from services.assessment.service import findings
from services.assessment.settings import AssessmentSettings
from shared.clock import Clock
from shared.contracts.enums import FindingStatus
from shared.pagination import Page, Paging
from shared.runtime import ClockDep

router = APIRouter(prefix="/findings", tags=["findings"])


async def _read(
    session: AsyncSession, finding: dict[str, Any], clock: Clock, policy: AssessmentSettings
) -> dict[str, Any]:
    [described] = await findings.describe(session, [finding], now=clock.now(), policy=policy)
    return described


@router.post("", response_model=FindingPublic, status_code=201)
async def post_finding(
    body: FindingCreate, session: Session, principal: Inspector, clock: ClockDep, policy: Policy
) -> dict[str, Any]:
    """Post a finding on a cadre or a unit; it takes effect at once (a negative entry)."""
    finding = await findings.post(
        session, body, principal=principal, now=clock.now(), policy=policy
    )
    return await _read(session, finding, clock, policy)


@router.get("", response_model=Page[FindingPublic])
async def list_findings(
    session: Session,
    who: InspectionOrOwn,
    page: Paging,
    clock: ClockDep,
    policy: Policy,
    subject_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    status: FindingStatus | None = None,
) -> dict[str, Any]:
    """Findings by subject, unit subtree or status, each with its appeal deadline; a cadre
    lists the findings about themself (403 for another's `subject_id`)."""
    listed = await findings.listing(
        session,
        subject_id=who.own_cadre(subject_id),
        unit_id=await who.narrow(session, unit_id),
        status=status,
        page=page,
    )
    await findings.describe(session, listed["items"], now=clock.now(), policy=policy)
    return listed


@router.get("/{finding_id}", response_model=FindingPublic)
async def get_finding(
    finding_id: uuid.UUID, session: Session, who: InspectionOrOwn, clock: ClockDep, policy: Policy
) -> dict[str, Any]:
    """One finding (its readers in scope, and a cadre it is about)."""
    return await _read(session, await findings.get(session, finding_id, who=who), clock, policy)


@router.post("/{finding_id}/dismiss", response_model=FindingPublic)
async def dismiss(
    finding_id: uuid.UUID,
    body: Reason,
    session: Session,
    who: OrgAdmin,
    clock: ClockDep,
    policy: Policy,
) -> dict[str, Any]:
    """Dismiss a finding: its entry is revoked (409 if dismissed already)."""
    finding = await findings.dismiss(
        session, finding_id, reason=body.reason, now=clock.now(), who=who
    )
    return await _read(session, finding, clock, policy)


@router.post("/{finding_id}/appeal", response_model=FindingPublic)
async def appeal(
    finding_id: uuid.UUID,
    body: Reason,
    session: Session,
    principal: Appellant,
    clock: ClockDep,
    policy: Policy,
) -> dict[str, Any]:
    """The subject appeals, within the appeal window after posting."""
    finding = await findings.appeal(
        session,
        finding_id,
        reason=body.reason,
        principal=principal,
        now=clock.now(),
        policy=policy,
    )
    return await _read(session, finding, clock, policy)


@router.post("/{finding_id}/appeal/decide", response_model=FindingPublic)
async def decide_appeal(
    finding_id: uuid.UUID,
    body: AppealDecision,
    session: Session,
    who: OrgAdmin,
    clock: ClockDep,
    policy: Policy,
) -> dict[str, Any]:
    """Decide an appeal: upheld dismisses the finding, rejected leaves it posted."""
    finding = await findings.decide_appeal(
        session, finding_id, upheld=body.upheld, note=body.note, now=clock.now(), who=who
    )
    return await _read(session, finding, clock, policy)
