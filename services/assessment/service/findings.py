"""Findings (督查发现): effect at once (a negative entry), dismissal, appeal and its decision.

A dismissed finding (by org_admin, or by an upheld appeal) revokes its entry, which
cancels the pending accountability action behind it.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.schemas import FindingCreate
from services.assessment.service import review
from services.assessment.service.common import (
    FINDINGS,
    after_key,
    as_utc,
    emit,
    ensure_cadre,
    ensure_unit,
    subtree,
    units_on,
)
from services.assessment.service.entries import NewEntry, record_entries, revoke_entries
from services.assessment.service.names import name_rows
from services.assessment.settings import AssessmentSettings
from shared.authz import Access
from shared.clock import local_date
from shared.contracts.assessment import (
    FindingAppealDecided,
    FindingAppealed,
    FindingDismissed,
    FindingPosted,
)
from shared.contracts.enums import EntryReason, FindingStatus, SubjectType
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.pagination import PageParams, make_page

DISMISSED = FindingStatus.dismissed.value


def _event_fields(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("subject_type", "subject_id", "kind", "severity", "status", "posted_by")
    cited = {"sign_in_ids": row.get("sign_in_ids") or []}
    return {"finding_id": row["id"]} | {k: row[k] for k in (*keys, "observed_at")} | cited


def appeal_deadline(posted_at: datetime, policy: AssessmentSettings) -> datetime:
    """The last moment the subject may appeal: posting + the appeal window (7 days)."""
    return as_utc(posted_at) + timedelta(days=policy.appeal_window_days)


def appealable(finding: dict[str, Any], *, now: datetime, policy: AssessmentSettings) -> bool:
    """An appeal is still possible: posted (not dismissed, not appealed yet), window open."""
    return (
        finding["status"] == FindingStatus.posted.value
        and finding["appealed_at"] is None
        and now <= appeal_deadline(finding["posted_at"], policy)
    )


async def describe(
    session: AsyncSession,
    findings: list[dict[str, Any]],
    *,
    now: datetime,
    policy: AssessmentSettings,
) -> list[dict[str, Any]]:
    """Findings as they are read: with their appeal deadline, whether an appeal is still
    possible, and the names of the subject, the unit and its township."""
    for f in findings:
        f["appeal_deadline"] = appeal_deadline(f["posted_at"], policy)
        f["appealable"] = appealable(f, now=now, policy=policy)
    return await name_rows(session, findings, person="subject_id", as_field="subject_name")


async def describe_actions(
    session: AsyncSession,
    actions: list[dict[str, Any]],
    *,
    now: datetime,
    policy: AssessmentSettings,
) -> list[dict[str, Any]]:
    """Actions as they are read (rows of `entries.list_actions`): the finding behind the
    entry, if any, with its appeal deadline and whether an appeal is still possible; the
    names of the cadre, the unit the entry is filed under and its township."""
    for a in actions:
        behind = a["finding_posted_at"] is not None
        a["finding_id"] = a["source_id"] if behind else None
        a["appeal_deadline"] = appeal_deadline(a["finding_posted_at"], policy) if behind else None
        a["appealable"] = behind and appealable(
            {
                "status": a["finding_status"],
                "appealed_at": a["finding_appealed_at"],
                "posted_at": a["finding_posted_at"],
            },
            now=now,
            policy=policy,
        )
    return await name_rows(session, actions, person="cadre_id", as_field="cadre_name")


async def get(
    session: AsyncSession, finding_id: uuid.UUID, *, who: Access | None = None
) -> dict[str, Any]:
    """A finding; with `who`, only one they may reach (403): in scope, or about themself."""
    row = (await session.execute(select(FINDINGS).where(FINDINGS.c.id == finding_id))).first()
    if row is None:
        raise NotFound(f"finding {finding_id} not found", code="finding_not_found")
    finding = dict(row._mapping)
    if who is not None:
        about = finding["subject_id"] if finding["subject_type"] == SubjectType.cadre else None
        await who.ensure_record(session, cadre_id=about, unit_ids=[finding["unit_id"]])
    return finding


async def post(
    session: AsyncSession,
    body: FindingCreate,
    *,
    principal: Access,
    now: datetime,
    policy: AssessmentSettings,
) -> dict[str, Any]:
    observed = as_utc(body.observed_at)
    if observed - now > timedelta(seconds=policy.future_tolerance_seconds):
        raise InvalidInput("observed_at", "a finding cannot be observed in the future")
    day = local_date(observed)
    if body.subject_type == SubjectType.cadre:
        await ensure_cadre(session, body.subject_id)
        [unit_id] = await units_on(session, [(body.subject_id, day)])
    else:
        await ensure_unit(session, body.subject_id)
        unit_id = body.subject_id
    # A township inspector posts findings inside its subtree only.
    await principal.ensure_unit(session, unit_id)
    await review.check_cited(
        session, body.sign_in_ids, subject_type=body.subject_type, subject_id=body.subject_id
    )
    row = {
        "id": uuid.uuid4(),
        "subject_type": body.subject_type.value,
        "subject_id": body.subject_id,
        "unit_id": unit_id,
        "kind": body.kind.value,
        "severity": body.severity.value,
        "observed_at": observed,
        "description": body.description,
        "evidence_urls": list(body.evidence_urls),
        "sign_in_ids": [str(i) for i in body.sign_in_ids],
        "status": FindingStatus.posted.value,
        "posted_by": principal.user_id,
        "posted_at": now,
        "entry_id": None,
        "dismiss_reason": "",
        "dismissed_at": None,
        "appeal_reason": "",
        "appealed_at": None,
        "appeal_upheld": None,
        "appeal_note": "",
        "appeal_decided_at": None,
    }
    await session.execute(FINDINGS.insert().values(row))
    await emit(session, [(FindingPosted(**_event_fields(row)), row["subject_id"])], now)
    entry = NewEntry(
        subject_type=body.subject_type,
        subject_id=body.subject_id,
        reason=EntryReason.finding,
        source_id=row["id"],
        date=day,
        severity=body.severity.value,
        unit_id=unit_id,
    )
    created = await record_entries(session, [entry], now=now)
    row["entry_id"] = created[0]["id"]
    await session.execute(
        update(FINDINGS).where(FINDINGS.c.id == row["id"]).values(entry_id=row["entry_id"])
    )
    return row


async def _set(session: AsyncSession, finding: dict[str, Any], **values: Any) -> dict[str, Any]:
    result = await session.execute(
        update(FINDINGS)
        .where(FINDINGS.c.id == finding["id"], FINDINGS.c.status == finding["status"])
        .values(**values)
        .returning(*FINDINGS.c)
    )
    row = result.first()
    if row is None:
        raise Conflict("the finding changed meanwhile", code="finding_changed")
    return dict(row._mapping)


def _not_dismissed(finding: dict[str, Any]) -> None:
    if finding["status"] == DISMISSED:
        raise Conflict("the finding is dismissed", code="finding_dismissed")


async def _revoke_entry(session: AsyncSession, finding: dict[str, Any], why: str, now: datetime):
    if finding["entry_id"]:
        await revoke_entries(session, [finding["entry_id"]], why=why, now=now)


async def dismiss(
    session: AsyncSession, finding_id: uuid.UUID, *, reason: str, now: datetime, who: Access
) -> dict[str, Any]:
    finding = await get(session, finding_id, who=who)
    _not_dismissed(finding)
    finding = await _set(
        session, finding, status=DISMISSED, dismiss_reason=reason, dismissed_at=now
    )
    await emit(
        session,
        [(FindingDismissed(**_event_fields(finding), reason=reason), finding["subject_id"])],
        now,
    )
    await _revoke_entry(session, finding, f"finding dismissed: {reason}", now)
    return finding


async def appeal(
    session: AsyncSession,
    finding_id: uuid.UUID,
    *,
    reason: str,
    principal: Access,
    now: datetime,
    policy: AssessmentSettings,
) -> dict[str, Any]:
    """The subject appeals within the window after posting: a cadre themself, or a user
    scoped to the unit the finding is on."""
    finding = await get(session, finding_id)
    subject = finding["subject_id"]
    is_subject = (
        principal.is_self(subject)
        if finding["subject_type"] == SubjectType.cadre.value
        else principal.unit_id == subject
    )
    if not is_subject:
        raise Forbidden("only the subject of a finding appeals it", code="not_subject")
    _not_dismissed(finding)
    if finding["appealed_at"] is not None:
        raise Conflict("the finding was appealed already", code="appeal_exists")
    if now > appeal_deadline(finding["posted_at"], policy):
        raise Conflict("the appeal window has closed", code="appeal_window_closed")
    finding = await _set(
        session,
        finding,
        status=FindingStatus.appealed.value,
        appeal_reason=reason,
        appealed_at=now,
    )
    await emit(session, [(FindingAppealed(**_event_fields(finding), reason=reason), subject)], now)
    return finding


async def decide_appeal(
    session: AsyncSession,
    finding_id: uuid.UUID,
    *,
    upheld: bool,
    note: str,
    now: datetime,
    who: Access,
) -> dict[str, Any]:
    """An upheld appeal dismisses the finding; a rejected one leaves it posted."""
    finding = await get(session, finding_id, who=who)
    _not_dismissed(finding)
    if finding["status"] != FindingStatus.appealed.value:
        raise Conflict("the finding has no appeal to decide", code="no_appeal")
    values: dict[str, Any] = {
        "status": DISMISSED if upheld else FindingStatus.posted.value,
        "appeal_upheld": upheld,
        "appeal_note": note,
        "appeal_decided_at": now,
    }
    if upheld:
        values |= {"dismiss_reason": f"appeal upheld: {note}", "dismissed_at": now}
    finding = await _set(session, finding, **values)
    event = FindingAppealDecided(**_event_fields(finding), upheld=upheld, note=note)
    await emit(session, [(event, finding["subject_id"])], now)
    if upheld:
        await _revoke_entry(session, finding, f"appeal upheld: {note}", now)
    return finding


async def listing(
    session: AsyncSession,
    *,
    subject_id: uuid.UUID | None,
    unit_id: uuid.UUID | None,
    status: FindingStatus | None,
    page: PageParams,
) -> dict[str, Any]:
    stmt = select(FINDINGS)
    if subject_id:
        stmt = stmt.where(FINDINGS.c.subject_id == subject_id)
    if unit_id:
        stmt = stmt.where(FINDINGS.c.unit_id.in_(subtree(unit_id)))
    if status:
        stmt = stmt.where(FINDINGS.c.status == status.value)
    if after := page.after():
        key = after_key(after, datetime, uuid.UUID)
        stmt = stmt.where(tuple_(FINDINGS.c.posted_at, FINDINGS.c.id) > key)
    rows = await session.execute(
        stmt.order_by(FINDINGS.c.posted_at, FINDINGS.c.id).limit(page.limit + 1)
    )
    return make_page([dict(r._mapping) for r in rows], page, lambda r: [r["posted_at"], r["id"]])
