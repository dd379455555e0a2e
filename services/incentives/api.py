"""Incentives HTTP routes under /incentives/v1 (thin: parse, call service, return)."""

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from services.incentives.models import UnitAncestor
from services.incentives.policies import PolicyKind
from services.incentives.schemas import (
    BatchIn,
    BatchOut,
    CadreLineOut,
    EligibilityOut,
    LineOut,
    PolicyIn,
    PolicyOut,
    PolicyRejection,
    PolicyStatus,
    PromotionCandidate,
)
from services.incentives.service import batches as batch_service
from services.incentives.service import eligibility as eligibility_service
from services.incentives.service import exports
from services.incentives.service import lines as line_service
from services.incentives.service import payments as payment_service
from services.incentives.service import policy as policy_service
from services.incentives.service import promotion as promotion_service
from shared import audit
from shared.audit_http import record_request
from shared.authz import EVERYONE, Access, Authz, Scope
from shared.clock import parse_month
from shared.contracts.enums import Role
from shared.fieldcrypt import FieldCipher, field_cipher
from shared.pagination import Page, Paging
from shared.runtime import ClockDep, SessionDep
from shared.types import Day
from shared.types import Month as MonthStr

router = APIRouter(prefix="/v1", tags=["incentives"])
Session = SessionDep("incentives")
allow = Authz(UnitAncestor.__table__).allow
# Batches cover the whole county: building, locking, paying and pay policy are county-wide
# finance's; scoped finance and auditors read lines and totals of their subtree.
CountyFinance = Annotated[Access, allow(Role.finance, scope=Scope.county)]
Finance = Annotated[Access, allow(Role.finance)]
FinanceOrAuditor = Annotated[Access, allow(Role.finance, Role.auditor)]
EligibilityReader = Annotated[Access, allow(Role.finance, Role.auditor, own=True)]
LinesReader = Annotated[Access, allow(Role.finance, Role.auditor, own=True)]
PromotionReader = Annotated[Access, allow(Role.org_admin, Role.auditor)]
PolicyWriter = Annotated[Access, allow(Role.org_admin, Role.finance, scope=Scope.county)]
PROMOTION_KINDS = (PolicyKind.priority_promotion, PolicyKind.targeted_recruitment)
PolicyReader = Annotated[Access, allow(*EVERYONE, scope=Scope.shared)]
Month = Annotated[MonthStr, Query()]
JSON = "application/json"


@router.get("/policies", response_model=Page[PolicyOut])
async def list_policies(
    session: Session,
    _: PolicyReader,
    paging: Paging,
    kind: PolicyKind | None = None,
    on: Day | None = None,
    status: PolicyStatus | None = None,
):
    """Policy versions, by kind, status and the day they are in force (approved ones)."""
    return await policy_service.list_policies(session, kind=kind, on=on, status=status, page=paging)


@router.get("/policies/{version}", response_model=PolicyOut)
async def get_policy(session: Session, _: PolicyReader, version: str):
    """One policy version by its label, e.g. posted_subsidy@2018-01-01, or its id."""
    return await policy_service.get_policy(session, version)


def _may_decide(who: Access, kind: str) -> None:
    """Pay policy is county-wide finance's, to propose and to approve (org_admin may not
    approve pay: the second pair of eyes is finance's too); promotion thresholds are
    county-wide org_admin's or finance's."""
    if kind not in PROMOTION_KINDS:
        who.require(Role.finance)


@router.post("/policies", response_model=PolicyOut, status_code=201)
async def add_policy(session: Session, who: PolicyWriter, clock: ClockDep, body: PolicyIn):
    """Propose an effective-dated policy version (status `proposed`): it takes effect when
    a second user approves it. Pay policy by county-wide finance, promotion thresholds by
    county-wide org_admin or finance."""
    _may_decide(who, body.kind)
    return await policy_service.propose_policy(
        session,
        kind=body.kind,
        effective_from=body.effective_from,
        effective_to=body.effective_to,
        amounts=body.amounts,
        params=body.params,
        note=body.note,
        user_id=who.user_id,
        username=who.username,
        now=clock.now(),
    )


@router.post("/policies/{version}/approve", response_model=PolicyOut)
async def approve_policy(session: Session, who: PolicyWriter, clock: ClockDep, version: str):
    """Approve a proposed version (label or id): it takes effect. A different user than the
    proposer (403 `same_user`), with the role that may propose its kind; 409
    `not_proposed` once decided."""
    _may_decide(who, (await policy_service.get_policy(session, version))["kind"])
    return await policy_service.approve_policy(
        session, version, user_id=who.user_id, username=who.username, now=clock.now()
    )


@router.post("/policies/{version}/reject", response_model=PolicyOut)
async def reject_policy(
    session: Session,
    who: PolicyWriter,
    clock: ClockDep,
    version: str,
    body: PolicyRejection | None = None,
):
    """Refuse a proposed version: `rejected` by another user with the role, `withdrawn` by
    its proposer; 409 `not_proposed` once decided. Its month may be proposed again."""
    _may_decide(who, (await policy_service.get_policy(session, version))["kind"])
    return await policy_service.reject_policy(
        session,
        version,
        user_id=who.user_id,
        username=who.username,
        note=body.note if body else "",
        now=clock.now(),
    )


@router.get("/eligibility/{cadre_id}", response_model=EligibilityOut)
async def get_eligibility(session: Session, who: EligibilityReader, cadre_id: UUID, month: Month):
    """What a cadre is due for a month, each item with its reason, source and policy."""
    first = parse_month(month)
    who.ensure_cadre(cadre_id)
    if who.scope_unit is not None:
        await eligibility_service.ensure_in_scope(
            session, cadre_id=cadre_id, first=first, scope=who.scope_unit
        )
    return await eligibility_service.read(session, cadre_id=cadre_id, first=first)


@router.post("/stipend-batches", response_model=BatchOut, status_code=201)
async def create_batch(session: Session, who: CountyFinance, clock: ClockDep, body: BatchIn):
    """Build the month's stipend batch as a draft (finance)."""
    return await batch_service.create(
        session,
        first=parse_month(body.month),
        user_id=who.user_id,
        now=clock.now(),
        today=clock.today(),
    )


@router.get("/stipend-batches", response_model=Page[BatchOut])
async def list_batches(
    session: Session, who: FinanceOrAuditor, paging: Paging, month: Month | None = None
):
    """Stipend batches, newest month first (finance, auditor; scoped: their subtree's totals)."""
    if month is not None:
        parse_month(month)
    return await batch_service.list_batches(session, month=month, page=paging, scope=who.scope_unit)


@router.get("/stipend-batches/{batch_id}", response_model=BatchOut)
async def get_batch(session: Session, who: FinanceOrAuditor, batch_id: UUID):
    """One batch with its totals per township; byte-stable once locked (scoped users get
    the totals of their subtree)."""
    body, frozen = await batch_service.rendered(session, batch_id, scope=who.scope_unit)
    return Response(frozen, media_type=JSON) if frozen else body


@router.get("/stipend-batches/{batch_id}/lines", response_model=Page[LineOut])
async def list_lines(
    session: Session,
    who: FinanceOrAuditor,
    paging: Paging,
    batch_id: UUID,
    unit_id: UUID | None = None,
    cadre_id: UUID | None = None,
    with_deductions: bool | None = None,
    kind: Literal["regular", "adjustment"] | None = None,
):
    """A batch's lines: by unit subtree, cadre, with deductions, kind (paginated)."""
    await batch_service.get_row(session, batch_id)  # 404 for an unknown batch
    return await line_service.list_lines(
        session,
        batch_id=batch_id,
        page=paging,
        unit_id=unit_id,
        scope_unit=who.scope_unit,
        cadre_id=cadre_id,
        with_deductions=with_deductions,
        kind=kind,
    )


@router.get("/cadres/{cadre_id}/lines", response_model=Page[CadreLineOut])
async def list_cadre_lines(
    session: Session,
    who: LinesReader,
    paging: Paging,
    cadre_id: UUID,
    month: Month | None = None,
):
    """A cadre's stipend lines across batches, each explained (the cadre themself, finance,
    auditor; a scoped reader: the lines filed in its subtree). `month`: the month paid for."""
    who.ensure_cadre(cadre_id)
    if month is not None:
        parse_month(month)
    return await line_service.cadre_lines(
        session, cadre_id=cadre_id, month=month, page=paging, scope=who.scope_unit
    )


@router.post("/stipend-batches/{batch_id}/lock", response_model=BatchOut)
async def lock_batch(session: Session, who: CountyFinance, clock: ClockDep, batch_id: UUID):
    """Approve a draft: record its content hash; it never changes again (finance)."""
    frozen = await batch_service.lock(
        session, batch_id=batch_id, user_id=who.user_id, now=clock.now()
    )
    return Response(frozen, media_type=JSON)


@router.post("/stipend-batches/{batch_id}/pay", response_model=BatchOut)
async def pay_batch(session: Session, who: CountyFinance, clock: ClockDep, batch_id: UUID):
    """Mark a locked batch paid (finance)."""
    frozen = await batch_service.pay(
        session, batch_id=batch_id, user_id=who.user_id, now=clock.now()
    )
    return Response(frozen, media_type=JSON)


@router.get(
    "/stipend-batches/{batch_id}/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, exports.XLSX: {}}}},
)
async def export_batch(
    session: Session,
    who: Finance,
    batch_id: UUID,
    fmt: Annotated[Literal["csv", "xlsx"], Query(alias="format")] = "csv",
):
    """The batch as CSV or XLSX with totals and policy versions; drafts marked (finance;
    scoped finance exports its subtree's lines and totals)."""
    body, _frozen = await batch_service.rendered(session, batch_id, scope=who.scope_unit)
    rows = await line_service.all_lines(session, batch_id, scope=who.scope_unit)
    name = f"stipend-{body['month']}-{body['status']}.{fmt}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "csv":
        return Response(
            exports.to_csv(body, rows), media_type="text/csv; charset=utf-8", headers=disposition
        )
    return Response(exports.to_xlsx(body, rows), media_type=exports.XLSX, headers=disposition)


@router.get(
    "/stipend-batches/{batch_id}/payment-file",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def payment_file(
    request: Request,
    session: Session,
    who: CountyFinance,
    clock: ClockDep,
    cipher: Annotated[FieldCipher, Depends(field_cipher)],
    batch_id: UUID,
):
    """The bank payment file of a locked or paid batch (county-wide finance; audited)."""
    facts, body = await payment_service.payment_file(session, batch_id=batch_id, cipher=cipher)
    # A read that hands out account numbers is recorded like a write: who, which batch.
    audit.note(session, targets=[batch_id], **facts)
    await record_request(session, request, clock.now())
    name = f"payment-{facts['month']}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/promotion-candidates", response_model=Page[PromotionCandidate])
async def promotion_candidates(
    session: Session,
    who: PromotionReader,
    paging: Paging,
    channel: Literal["priority_promotion", "targeted_recruitment"],
    month: Month,
    unit_id: UUID | None = None,
):
    """Cadres for priority promotion or targeted recruitment as of a month (org_admin, auditor)."""
    first = parse_month(month)
    return await promotion_service.candidates(
        session,
        channel=PolicyKind(channel),
        first=first,
        unit_id=await who.narrow(session, unit_id),
        page=paging,
    )
