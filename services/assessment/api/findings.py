"""Findings of the inspection teams, their dismissal and appeal."""

import uuid
from typing import Any

from fastapi import APIRouter

from services.assessment.api.deps import (
    Appellant,
    FindingReader,
    FindingsReader,
    Inspector,
    OrgAdmin,
    Policy,
    Session,
)
from services.assessment.schemas import AppealDecision, FindingCreate, FindingPublic, Reason
from services.assessment.service import findings
from shared.contracts.enums import FindingStatus
from shared.pagination import Page, Paging
from shared.runtime import ClockDep

router = APIRouter(prefix="/findings", tags=["findings"])


@router.post("", response_model=FindingPublic, status_code=201)
async def post_finding(
    body: FindingCreate, session: Session, principal: Inspector, clock: ClockDep, policy: Policy
) -> dict[str, Any]:
    """Post a finding on a cadre or a unit; it takes effect at once (a negative entry)."""
    return await findings.post(session, body, principal=principal, now=clock.now(), policy=policy)


@router.get("", response_model=Page[FindingPublic])
async def list_findings(
    session: Session,
    who: FindingsReader,
    page: Paging,
    subject_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    status: FindingStatus | None = None,
) -> dict[str, Any]:
    """Findings by subject, unit subtree or status."""
    unit_id = await who.narrow(session, unit_id)
    return await findings.listing(
        session, subject_id=subject_id, unit_id=unit_id, status=status, page=page
    )


@router.get("/{finding_id}", response_model=FindingPublic)
async def get_finding(
    finding_id: uuid.UUID, session: Session, who: FindingReader
) -> dict[str, Any]:
    """One finding (its readers in scope, and a cadre it is about)."""
    return await findings.get(session, finding_id, who=who)


@router.post("/{finding_id}/dismiss", response_model=FindingPublic)
async def dismiss(
    finding_id: uuid.UUID, body: Reason, session: Session, who: OrgAdmin, clock: ClockDep
) -> dict[str, Any]:
    """Dismiss a finding: its entry is revoked (409 if dismissed already)."""
    return await findings.dismiss(session, finding_id, reason=body.reason, now=clock.now(), who=who)


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
    return await findings.appeal(
        session,
        finding_id,
        reason=body.reason,
        principal=principal,
        now=clock.now(),
        policy=policy,
    )


@router.post("/{finding_id}/appeal/decide", response_model=FindingPublic)
async def decide_appeal(
    finding_id: uuid.UUID, body: AppealDecision, session: Session, who: OrgAdmin, clock: ClockDep
) -> dict[str, Any]:
    """Decide an appeal: upheld dismisses the finding, rejected leaves it posted."""
    return await findings.decide_appeal(
        session, finding_id, upheld=body.upheld, note=body.note, now=clock.now(), who=who
    )
