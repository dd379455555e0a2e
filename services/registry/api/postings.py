"""Postings: open, end, replace (调整), read, and the history lists."""

import uuid

from fastapi import APIRouter

from services.registry.access import Admin, StaffOrOwn
from services.registry.api.deps import Session
from services.registry.schemas import (
    PostingCreate,
    PostingEnd,
    PostingPublic,
    PostingReplace,
    PostingReplaced,
)
from services.registry.service import postings as posting_service
from shared.contracts.enums import PostingEndReason, PostingRole
from shared.pagination import Page, Paging
from shared.runtime import ClockDep
from shared.types import Day

router = APIRouter(tags=["registry: postings"])


@router.post("/postings", response_model=PostingPublic, status_code=201)
async def open_posting(data: PostingCreate, session: Session, clock: ClockDep, principal: Admin):
    """Post a cadre to a unit in a role (one posting at a time per cadre)."""
    return await posting_service.open_posting(session, clock=clock, principal=principal, data=data)


@router.get("/postings", response_model=Page[PostingPublic])
async def list_postings(
    session: Session,
    principal: StaffOrOwn,
    paging: Paging,
    cadre_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    role: PostingRole | None = None,
    posted_on: Day | None = None,
    ended: bool | None = None,
    reason: PostingEndReason | None = None,
):
    """Postings in scope: a cadre's history, a unit subtree's, or who was posted on a date."""
    return await posting_service.list_postings(
        session,
        principal=principal,
        page=paging,
        cadre_id=cadre_id,
        unit_id=unit_id,
        role=role,
        posted_on=posted_on,
        ended=ended,
        reason=reason,
    )


@router.get("/postings/{posting_id}", response_model=PostingPublic)
async def get_posting(posting_id: uuid.UUID, session: Session, principal: StaffOrOwn):
    """One posting."""
    return await posting_service.get_posting(session, principal, posting_id)


@router.post("/postings/{posting_id}/end", response_model=PostingPublic)
async def end_posting(
    posting_id: uuid.UUID, data: PostingEnd, session: Session, clock: ClockDep, principal: Admin
):
    """End a posting on a date (inclusive) with a reason."""
    return await posting_service.end_posting(
        session, clock=clock, principal=principal, posting_id=posting_id, data=data
    )


@router.post("/postings/{posting_id}/replace", response_model=PostingReplaced)
async def replace_posting(
    posting_id: uuid.UUID,
    data: PostingReplace,
    session: Session,
    clock: ClockDep,
    principal: Admin,
):
    """调整: end this posting and open its successor in one request."""
    ended, opened = await posting_service.replace_posting(
        session, clock=clock, principal=principal, posting_id=posting_id, data=data
    )
    return {
        "ended": PostingPublic.model_validate(ended),
        "opened": PostingPublic.model_validate(opened),
    }
