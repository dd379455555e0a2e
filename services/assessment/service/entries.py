"""The negative list (负面清单) and the accountability ladder (一次进班学习、两次约谈、三次处罚).

Entries are recorded and revoked in sets (a week close files thousands at once); each
new active entry of a cadre opens an action on the rung its count in the calendar year
of the entry date reaches. Revoking an entry cancels the pending action behind it.
"""

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.service.common import (
    ACTIONS,
    ENTRIES,
    after_key,
    chunks,
    emit,
    subtree,
    units_on,
)
from shared.authz import Access
from shared.clock import format_month, month_end, parse_month
from shared.contracts.assessment import (
    AccountabilityCancelled,
    AccountabilityCarriedOut,
    AccountabilityOpened,
    NegativeEntryRecorded,
    NegativeEntryRevoked,
)
from shared.contracts.enums import (
    ActionStatus,
    EntryReason,
    EntryStatus,
    PenaltyMeasure,
    Rung,
    SubjectType,
)
from shared.db import insert_ignore
from shared.errors import Conflict, InvalidInput, NotFound
from shared.pagination import PageParams, make_page


@dataclass(frozen=True)
class NewEntry:
    subject_type: SubjectType
    subject_id: uuid.UUID
    reason: EntryReason
    source_id: uuid.UUID
    date: date
    severity: str | None = None
    # Filed under this unit; for a cadre, the unit of the posting on `date` when absent.
    unit_id: uuid.UUID | None = None


def rung_for(count: int) -> Rung:
    return Rung.study_class if count == 1 else Rung.admonition_talk if count == 2 else Rung.penalty


def _entry_payload(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("subject_type", "subject_id", "unit_id", "reason", "source_id", "date", "month")
    return {
        "entry_id": row["id"],
        "status": row["status"],
        "severity": row["severity"],
        "entity_version": row["version"],
    } | {k: row[k] for k in keys}


def _action_payload(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("cadre_id", "entry_id", "entry_date", "rung", "count", "status", "measure", "note")
    return {"action_id": row["id"], "entity_version": row["version"]} | {k: row[k] for k in keys}


async def record_entries(
    session: AsyncSession, new: list[NewEntry], *, now: datetime
) -> list[dict[str, Any]]:
    """File entries (one active per source: a repeat is ignored) and open their actions."""
    if not new:
        return []
    unplaced = [
        (e.subject_id, e.date) for e in new if e.subject_type == SubjectType.cadre and not e.unit_id
    ]
    placed = dict(zip(unplaced, await units_on(session, unplaced), strict=True)) if unplaced else {}
    rows = []
    for e in new:
        unit_id = e.unit_id
        if unit_id is None and e.subject_type == SubjectType.unit:
            unit_id = e.subject_id
        elif unit_id is None:
            unit_id = placed[(e.subject_id, e.date)]
        rows.append(
            {
                "id": uuid.uuid4(),
                "subject_type": e.subject_type.value,
                "subject_id": e.subject_id,
                "unit_id": unit_id,
                "reason": e.reason.value,
                "source_id": e.source_id,
                "severity": e.severity,
                "date": e.date,
                "month": format_month(e.date),
                "status": EntryStatus.active.value,
                "created_at": now,
                "revoked_reason": "",
                "version": 1,
            }
        )
    # executemany with RETURNING: SQLAlchemy batches it into multi-row INSERTs.
    result = await session.execute(insert_ignore(session, ENTRIES).returning(ENTRIES.c.id), rows)
    inserted = set(result.scalars())
    created = [r for r in rows if r["id"] in inserted]
    await emit(
        session,
        [(NegativeEntryRecorded(**_entry_payload(r)), r["subject_id"]) for r in created],
        now,
    )
    await _open_actions(session, [r for r in created if r["subject_type"] == "cadre"], now=now)
    return created


async def _open_actions(session: AsyncSession, created: list[dict[str, Any]], *, now: datetime):
    """Each new entry counts the cadre's active entries in its calendar year, itself included."""
    if not created:
        return
    new_ids = {r["id"] for r in created}
    first = date(min(r["date"].year for r in created), 1, 1)
    last = date(max(r["date"].year for r in created), 12, 31)
    before: dict[tuple[uuid.UUID, int], int] = defaultdict(int)
    cadres = list({r["subject_id"] for r in created})
    for part in chunks(cadres):
        rows = await session.execute(
            select(ENTRIES.c.id, ENTRIES.c.subject_id, ENTRIES.c.date).where(
                ENTRIES.c.subject_type == SubjectType.cadre.value,
                ENTRIES.c.subject_id.in_(part),
                ENTRIES.c.status == EntryStatus.active.value,
                ENTRIES.c.date.between(first, last),
            )
        )
        for r in rows:
            if r.id not in new_ids:
                before[(r.subject_id, r.date.year)] += 1
    actions = []
    for r in sorted(created, key=lambda r: (r["date"], str(r["id"]))):
        key = (r["subject_id"], r["date"].year)
        before[key] += 1
        actions.append(
            {
                "id": uuid.uuid4(),
                "cadre_id": r["subject_id"],
                "entry_id": r["id"],
                "entry_date": r["date"],
                "rung": rung_for(before[key]).value,
                "count": before[key],
                "status": ActionStatus.pending.value,
                "measure": None,
                "note": "",
                "created_at": now,
                "version": 1,
            }
        )
    await session.execute(ACTIONS.insert(), actions)
    await emit(
        session, [(AccountabilityOpened(**_action_payload(a)), a["cadre_id"]) for a in actions], now
    )


async def revoke_entries(
    session: AsyncSession, entry_ids: list[uuid.UUID], *, why: str, now: datetime
) -> list[dict[str, Any]]:
    """Revoke active entries (an event, never a delete) and cancel their pending actions."""
    revoked: list[dict[str, Any]] = []
    for part in chunks(entry_ids):
        result = await session.execute(
            update(ENTRIES)
            .where(ENTRIES.c.id.in_(part), ENTRIES.c.status == EntryStatus.active.value)
            .values(
                status=EntryStatus.revoked.value,
                revoked_at=now,
                revoked_reason=why,
                version=ENTRIES.c.version + 1,  # under the row's lock, which the UPDATE takes
            )
            .returning(*ENTRIES.c)
        )
        revoked.extend(dict(r._mapping) for r in result)
    await emit(
        session,
        [
            (NegativeEntryRevoked(**_entry_payload(r), revoked_reason=why), r["subject_id"])
            for r in revoked
        ],
        now,
    )
    cancelled: list[dict[str, Any]] = []
    for part in chunks([r["id"] for r in revoked if r["subject_type"] == "cadre"]):
        result = await session.execute(
            update(ACTIONS)
            .where(ACTIONS.c.entry_id.in_(part), ACTIONS.c.status == ActionStatus.pending.value)
            .values(
                status=ActionStatus.cancelled.value,
                closed_at=now,
                note=why,
                version=ACTIONS.c.version + 1,
            )
            .returning(*ACTIONS.c)
        )
        cancelled.extend(dict(r._mapping) for r in result)
    await emit(
        session,
        [(AccountabilityCancelled(**_action_payload(a)), a["cadre_id"]) for a in cancelled],
        now,
    )
    return revoked


async def list_entries(
    session: AsyncSession,
    *,
    month: str,
    unit_id: uuid.UUID | None,
    subject_type: SubjectType | None,
    subject_id: uuid.UUID | None,
    status: EntryStatus | None,
    page: PageParams,
) -> dict[str, Any]:
    first = parse_month(month)
    stmt = select(ENTRIES).where(ENTRIES.c.date.between(first, month_end(first)))
    if unit_id:
        stmt = stmt.where(ENTRIES.c.unit_id.in_(subtree(unit_id)))
    if subject_type:
        stmt = stmt.where(ENTRIES.c.subject_type == subject_type.value)
    if subject_id:
        stmt = stmt.where(ENTRIES.c.subject_id == subject_id)
    if status:
        stmt = stmt.where(ENTRIES.c.status == status.value)
    if after := page.after():
        stmt = stmt.where(tuple_(ENTRIES.c.date, ENTRIES.c.id) > after_key(after, date, uuid.UUID))
    rows = await session.execute(stmt.order_by(ENTRIES.c.date, ENTRIES.c.id).limit(page.limit + 1))
    return make_page([dict(r._mapping) for r in rows], page, lambda r: [r["date"], r["id"]])


async def list_actions(
    session: AsyncSession,
    *,
    cadre_id: uuid.UUID | None,
    status: ActionStatus | None,
    page: PageParams,
    scope: uuid.UUID | None = None,
) -> dict[str, Any]:
    stmt = select(ACTIONS)
    if scope is not None:  # an action files where the entry behind it does
        stmt = stmt.where(
            ACTIONS.c.entry_id.in_(
                select(ENTRIES.c.id).where(ENTRIES.c.unit_id.in_(subtree(scope)))
            )
        )
    if cadre_id:
        stmt = stmt.where(ACTIONS.c.cadre_id == cadre_id)
    if status:
        stmt = stmt.where(ACTIONS.c.status == status.value)
    if after := page.after():
        key = after_key(after, date, uuid.UUID)
        stmt = stmt.where(tuple_(ACTIONS.c.entry_date, ACTIONS.c.id) > key)
    rows = await session.execute(
        stmt.order_by(ACTIONS.c.entry_date, ACTIONS.c.id).limit(page.limit + 1)
    )
    return make_page([dict(r._mapping) for r in rows], page, lambda r: [r["entry_date"], r["id"]])


async def get_action(session: AsyncSession, action_id: uuid.UUID) -> dict[str, Any]:
    row = (await session.execute(select(ACTIONS).where(ACTIONS.c.id == action_id))).first()
    if row is None:
        raise NotFound(f"accountability action {action_id} not found", code="action_not_found")
    return dict(row._mapping)


async def carry_out(
    session: AsyncSession,
    action_id: uuid.UUID,
    *,
    measure: PenaltyMeasure | None,
    note: str,
    now: datetime,
    who: Access,
) -> dict[str, Any]:
    action = await get_action(session, action_id)
    filed = await session.scalar(
        select(ENTRIES.c.unit_id).where(ENTRIES.c.id == action["entry_id"])
    )
    await who.ensure_unit(session, filed)
    if action["status"] != ActionStatus.pending.value:
        raise Conflict(f"the action is {action['status']}", code="action_not_pending")
    if action["rung"] == Rung.penalty.value and measure is None:
        raise InvalidInput("measure", "a penalty needs its measure")
    if action["rung"] != Rung.penalty.value and measure is not None:
        raise InvalidInput("measure", "only a penalty takes a measure")
    result = await session.execute(
        update(ACTIONS)
        .where(ACTIONS.c.id == action_id, ACTIONS.c.status == ActionStatus.pending.value)
        .values(
            status=ActionStatus.carried_out.value,
            measure=measure.value if measure else None,
            note=note,
            closed_at=now,
            version=ACTIONS.c.version + 1,
        )
        .returning(*ACTIONS.c)
    )
    row = result.first()
    if row is None:  # cancelled or carried out by a concurrent request
        raise Conflict("the action is no longer pending", code="action_not_pending")
    action = dict(row._mapping)
    await emit(
        session, [(AccountabilityCarriedOut(**_action_payload(action)), action["cadre_id"])], now
    )
    return action
