"""The negative list and the accountability actions it sets off."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.assessment.api.deps import InspectionOrOwn, OrgAdmin, Policy, ReaderOrOwn, Session
from services.assessment.schemas import ActionPublic, CarryOut, NegativeEntryPublic
from services.assessment.service import entries, findings, names
from shared.contracts.enums import ActionStatus, EntryReason, EntryStatus, SubjectType
from shared.pagination import Page, Paging
from shared.runtime import ClockDep

router = APIRouter(tags=["negative list"])


@router.get("/negative-list", response_model=Page[NegativeEntryPublic])
async def negative_list(
    session: Session,
    who: InspectionOrOwn,
    page: Paging,
    month: Annotated[str, Query(examples=["2026-11"])],
    unit_id: uuid.UUID | None = None,
    subject_type: SubjectType | None = None,
    subject_id: uuid.UUID | None = None,
    status: EntryStatus | None = None,
    reason: EntryReason | None = None,
) -> dict[str, Any]:
    """A month's entries, active and revoked; `unit_id` means the unit's whole subtree.
    A cadre lists only the entries about themself (403 for another's `subject_id`)."""
    listed = await entries.list_entries(
        session,
        month=month,
        unit_id=await who.narrow(session, unit_id),
        subject_type=subject_type,
        subject_id=who.own_cadre(subject_id),
        status=status,
        reason=reason,
        page=page,
    )
    await names.name_rows(session, listed["items"], person="subject_id", as_field="subject_name")
    return listed


@router.get("/accountability-actions", response_model=Page[ActionPublic])
async def list_actions(
    session: Session,
    who: ReaderOrOwn,
    page: Paging,
    clock: ClockDep,
    policy: Policy,
    cadre_id: uuid.UUID | None = None,
    status: ActionStatus | None = None,
) -> dict[str, Any]:
    """Accountability actions (every status unless `status` is given); a cadre sees their own.
    Each leads to what can be appealed: its entry's reason and source, and for a finding's
    entry the finding, its appeal deadline and whether an appeal is still possible."""
    listed = await entries.list_actions(
        session, cadre_id=who.own_cadre(cadre_id), status=status, page=page, scope=who.scope_unit
    )
    await findings.describe_actions(session, listed["items"], now=clock.now(), policy=policy)
    return listed


@router.post("/accountability-actions/{action_id}/carry-out", response_model=ActionPublic)
async def carry_out(
    action_id: uuid.UUID,
    body: CarryOut,
    session: Session,
    who: OrgAdmin,
    clock: ClockDep,
    policy: Policy,
) -> dict[str, Any]:
    """Record a pending action as carried out (a penalty names its measure)."""
    await entries.carry_out(
        session, action_id, measure=body.measure, note=body.note, now=clock.now(), who=who
    )
    action = await entries.read_action(session, action_id)
    [described] = await findings.describe_actions(session, [action], now=clock.now(), policy=policy)
    return described
