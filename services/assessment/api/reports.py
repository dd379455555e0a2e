"""Reports of the cadence and the monthly scores."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from services.assessment.api.deps import CountyAdmin, CountyReader, Policy, ReaderOrOwn, Session
from services.assessment.schemas import ReportCreate, ReportPublic, ScorePublic
from services.assessment.service import reports
from shared.pagination import Page, Paging
from shared.runtime import ClockDep

router = APIRouter(tags=["reports"])


@router.post("/reports", response_model=ReportPublic, status_code=201)
async def publish_report(
    body: ReportCreate,
    response: Response,
    session: Session,
    _: CountyAdmin,
    clock: ClockDep,
    policy: Policy,
) -> dict[str, Any]:
    """Build and publish a report for an ended period (the same data publishes nothing new).

    Reports cover every township, so they are county-wide users' to publish and read."""
    row, created = await reports.publish(
        session, body.kind, body.period, now=clock.now(), policy=policy
    )
    if not created:
        response.status_code = 200
    return row


@router.get("/reports/{kind}/{period}", response_model=ReportPublic)
async def get_report(kind: str, period: str, session: Session, _: CountyReader) -> dict[str, Any]:
    """A published report."""
    return await reports.get_report(session, kind, period)


@router.get("/monthly-scores", response_model=Page[ScorePublic])
async def monthly_scores(
    session: Session,
    who: ReaderOrOwn,
    page: Paging,
    month: Annotated[str, Query(examples=["2026-11"])],
    township_id: uuid.UUID | None = None,
    cadre_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Monthly assessment scores with each cadre's rank in the township (scoped users: the
    townships in their subtree)."""
    if township_id is not None:
        await who.ensure_unit(session, township_id)
    return await reports.list_scores(
        session,
        month=month,
        township_id=township_id,
        cadre_id=who.own_cadre(cadre_id),
        page=page,
        scope=who.scope_unit,
    )
