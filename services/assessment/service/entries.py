"""The negative list (负面清单) and the accountability ladder (一次进班学习、两次约谈、三次处罚).

Entries are recorded and revoked in sets (a week close files thousands at once). The ladder
follows the entries' dates, not their arrival: within a cadre's calendar year (the window
of the entry date), the n-th active entry by date (same date: by reason, then source) has
the action of rung n. Whenever entries are recorded or revoked, the cadre's year is
re-sequenced with compensating events (`resequence`).
"""

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from itertools import groupby
from typing import Any

from sqlalchemy import (
    Date,
    Select,
    String,
    and_,
    any_,
    bindparam,
    cast,
    func,
    literal,
    null,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.service.common import (
    ACTIONS,
    ENTRIES,
    FINDINGS,
    PRODUCER,
    after_key,
    chunks,
    emit,
    subtree,
    units_on,
)
from shared.audit import MAX_EVENTS_NOTED
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
from shared.db import insert_ignore, is_postgres
from shared.errors import Conflict, InvalidInput, NotFound
from shared.outbox import events_insert_from, note_events_written
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


async def record_entries_from(
    session: AsyncSession, found: Select, *, reason: EntryReason, day: date, now: datetime
) -> None:
    """PostgreSQL: `record_entries` for cadre entries of one reason and date, each given by a
    row (cadre_id, unit_id, source_id) of `found` (unit_id not NULL), set-based for a week
    close's thousands: one statement files the entries and their NegativeEntryRecorded
    events; after the ladder locks, one statement opens the rung-1 action (and its
    AccountabilityOpened event) of each cadre whose year now holds that one active entry
    alone, which is what `resequence` gives such a ladder; the other cadres' ladders go
    through `resequence`. Same rows and events as `record_entries`, but for random ids."""
    src = found.subquery("found")
    columns = ["id", "subject_type", "subject_id", "unit_id", "reason", "source_id"]
    columns += ["severity", "date", "month", "status", "created_at", "revoked_reason", "version"]
    filed = (
        pg_insert(ENTRIES)
        .from_select(
            columns,
            select(
                func.gen_random_uuid(),
                literal(SubjectType.cadre.value, String),
                src.c.cadre_id,
                src.c.unit_id,
                literal(reason.value, String),
                src.c.source_id,
                cast(null(), String),
                literal(day, Date),
                literal(format_month(day), String),
                literal(EntryStatus.active.value, String),
                literal(now, ENTRIES.c.created_at.type),
                literal("", String),
                literal(1),
            ),
        )
        .on_conflict_do_nothing()
        .returning(*ENTRIES.c)
        .cte("entries_filed")
    )
    own = {"entry_id": filed.c.id, "entity_version": filed.c.version}
    cadres = await _written_with_events(
        session,
        filed,
        filed.c.subject_id,
        NegativeEntryRecorded,
        {f: own.get(f, filed.c.get(f)) for f in NegativeEntryRecorded.model_fields},
        now,
    )
    if not cadres:
        return
    await _lock_ladders(session, cadres)
    year = (date(day.year, 1, 1), date(day.year, 12, 31))
    in_year = and_(
        ENTRIES.c.subject_type == SubjectType.cadre.value,
        ENTRIES.c.subject_id == any_(bindparam("cadres", cadres, ARRAY(ENTRIES.c.subject_id.type))),
        ENTRIES.c.status == EntryStatus.active.value,
        ENTRIES.c.date.between(*year),
    )
    # A cadre in `cadres` has that year one active entry alone: the one just filed (a fresh
    # id, so no action yet).
    ladder = (
        select(
            ENTRIES.c.id,
            ENTRIES.c.subject_id,
            ENTRIES.c.date,
            func.count().over(partition_by=ENTRIES.c.subject_id).label("entries"),
        )
        .where(in_year)
        .subquery("ladder")
    )
    first = select(
        func.gen_random_uuid(),
        ladder.c.subject_id,
        ladder.c.id,
        ladder.c.date,
        literal(rung_for(1).value, String),
        literal(1),
        literal(ActionStatus.pending.value, String),
        cast(null(), String),
        literal("", String),
        literal(now, ACTIONS.c.created_at.type),
        literal(1),
    ).where(ladder.c.entries == 1)
    opened = (
        ACTIONS.insert()
        .from_select(
            ["id", "cadre_id", "entry_id", "entry_date", "rung", "count", "status", "measure"]
            + ["note", "created_at", "version"],
            first,
        )
        .returning(*ACTIONS.c)
        .cte("actions_opened")
    )
    own = {"action_id": opened.c.id, "entity_version": opened.c.version}
    done = await _written_with_events(
        session,
        opened,
        opened.c.cadre_id,
        AccountabilityOpened,
        {f: own.get(f, opened.c.get(f)) for f in AccountabilityOpened.model_fields},
        now,
    )
    rest = set(cadres) - set(done)
    await resequence(session, {(c, day.year) for c in rest}, now=now)


async def _written_with_events(
    session: AsyncSession, written: Any, key: Any, kind: Any, payload: dict[str, Any], now
) -> list[uuid.UUID]:
    """Run a data-modifying CTE (`INSERT ... RETURNING`) with one event of `kind` per row
    it writes, keyed (and answered) by `key`: the keys of the rows written."""
    events = events_insert_from(
        session, kind, written, key=key, payload=payload, producer=PRODUCER, occurred_at=now
    ).cte(f"{written.name}_events")
    sample = select(events.c.id).limit(MAX_EVENTS_NOTED).subquery(f"{written.name}_sample")
    rows = (
        await session.execute(
            union_all(
                select(key, cast(null(), events.c.id.type)),
                select(cast(null(), key.type), sample.c.id),
            )
        )
    ).all()
    keys = [r[0] for r in rows if r[0] is not None]
    await note_events_written(session, [r[1] for r in rows if r[1] is not None], len(keys))
    return keys


def ladder_order(entry: Any) -> tuple:
    """Where an entry stands in its cadre's year: by date; the same date by reason, then
    source (never by arrival, so every arrival order gives the same ladder)."""
    return (entry.date, entry.reason, str(entry.source_id), str(entry.id))


def _places(found: list[Any], live: dict[uuid.UUID, dict[str, Any]]) -> list[tuple[Any, int]]:
    """Each entry with its place (count) in the year: by date; entries of one date share
    that date's places, an entry whose live action already holds one of them keeps it
    (a carried-out one takes the first free place if its own is gone), and the others take
    the rest by `ladder_order`. So any arrival order gives each date the same rungs, and
    a second entry of a day never reshuffles the first's action."""
    placed: list[tuple[Any, int]] = []
    ordered = sorted(found, key=ladder_order)
    start = 1
    for _, group in groupby(ordered, key=lambda e: e.date):
        same_day = list(group)
        free = list(range(start, start + len(same_day)))
        start += len(same_day)
        rest = []
        for e in same_day:
            action = live.get(e.id)
            if action and action["count"] in free and action["rung"] == rung_for(action["count"]):
                free.remove(action["count"])
                placed.append((e, action["count"]))
            else:
                rest.append(e)
        for e in [e for e in rest if _carried_out(live.get(e.id))]:
            placed.append((e, free.pop(0)))
        placed += zip([e for e in rest if not _carried_out(live.get(e.id))], free, strict=True)
    return placed


def _carried_out(action: dict[str, Any] | None) -> bool:
    return action is not None and action["status"] == ActionStatus.carried_out.value


async def _open_actions(session: AsyncSession, created: list[dict[str, Any]], *, now: datetime):
    if created:
        keys = {(r["subject_id"], r["date"].year) for r in created}
        await resequence(session, keys, now=now)


LADDER_LOCK = 0x1ADD  # the class of the cadres' ladder locks (two-key advisory locks)


async def _lock_ladders(session: AsyncSession, cadres: list[uuid.UUID]) -> None:
    """On PostgreSQL, one re-sequencing per cadre at a time: a transaction-scoped advisory
    lock per cadre, taken in key order (no deadlock between two of them) after the entries
    were written and before the ladder is read, so the second one to get the lock reads the
    first one's entries and actions (read committed). SQLite serialises writers anyway."""
    if not is_postgres(session):
        return
    keys = sorted({int.from_bytes(c.bytes[:4], "big", signed=True) for c in cadres})
    for part in chunks(keys):
        await session.execute(_LOCK_SQL, {"cls": LADDER_LOCK, "keys": list(part)})


_LOCK_SQL = text(
    "SELECT count(*) FROM (SELECT pg_advisory_xact_lock(:cls, k) FROM"
    " (SELECT unnest(CAST(:keys AS int[])) AS k ORDER BY k) AS sorted) AS locked"
)


async def resequence(
    session: AsyncSession, keys: set[tuple[uuid.UUID, int]], *, now: datetime
) -> None:
    """Put each (cadre, year)'s ladder in the order of its entries' dates.

    The n-th active entry by `ladder_order` should have a live action of rung n and count
    n. An entry without one gets it opened; a pending action on the wrong rung or count is
    cancelled (an event, with the reason in `note`) and its entry's action re-opened at the
    right one. A carried-out action is never undone: it stays as carried out, and the
    entries around it keep counting its entry at its date (a back-dated entry before it
    takes rung 1, the carried-out one keeps the rung it was carried out at, and the next
    ones continue from their positions), so nothing that happened is rewritten.
    """
    if not keys:
        return
    cadres = list({c for c, _ in keys})
    await _lock_ladders(session, cadres)
    first = date(min(y for _, y in keys), 1, 1)
    last = date(max(y for _, y in keys), 12, 31)
    entries: dict[tuple[uuid.UUID, int], list[Any]] = defaultdict(list)
    live: dict[uuid.UUID, dict[str, Any]] = {}
    for part in chunks(cadres):
        rows = await session.execute(
            select(
                ENTRIES.c.id,
                ENTRIES.c.subject_id,
                ENTRIES.c.date,
                ENTRIES.c.reason,
                ENTRIES.c.source_id,
            ).where(
                ENTRIES.c.subject_type == SubjectType.cadre.value,
                ENTRIES.c.subject_id.in_(part),
                ENTRIES.c.status == EntryStatus.active.value,
                ENTRIES.c.date.between(first, last),
            )
        )
        for r in rows:
            if (r.subject_id, r.date.year) in keys:
                entries[(r.subject_id, r.date.year)].append(r)
        actions = await session.execute(
            select(ACTIONS).where(
                ACTIONS.c.cadre_id.in_(part),
                ACTIONS.c.status.in_([ActionStatus.pending.value, ActionStatus.carried_out.value]),
                ACTIONS.c.entry_date.between(first, last),
            )
        )
        live.update({a.entry_id: dict(a._mapping) for a in actions})
    stale: list[tuple[dict[str, Any], str]] = []
    opened: list[dict[str, Any]] = []
    for (cadre_id, year), found in entries.items():
        for e, count in _places(found, live):
            rung = rung_for(count).value
            action = live.get(e.id)
            if action is not None and (
                action["status"] == ActionStatus.carried_out.value
                or (action["rung"], action["count"]) == (rung, count)
            ):
                continue
            if action is not None:
                why = (
                    f"re-sequenced by date: the entry of {e.date.isoformat()} is now number "
                    f"{count} in {year} ({rung}), was {action['count']} ({action['rung']})"
                )
                stale.append((action, why))
            opened.append(
                {
                    "id": uuid.uuid4(),
                    "cadre_id": cadre_id,
                    "entry_id": e.id,
                    "entry_date": e.date,
                    "rung": rung,
                    "count": count,
                    "status": ActionStatus.pending.value,
                    "measure": None,
                    "note": "",
                    "created_at": now,
                    "version": 1,
                }
            )
    cancelled: list[dict[str, Any]] = []
    kept: set[uuid.UUID] = set()
    for part in chunks(stale):  # one executemany per chunk, each with its own note
        await session.execute(
            update(ACTIONS)
            .where(
                ACTIONS.c.id == bindparam("action_id"),
                ACTIONS.c.status == ActionStatus.pending.value,
            )
            .values(
                status=ActionStatus.cancelled.value,
                closed_at=now,
                note=bindparam("why"),
                version=ACTIONS.c.version + 1,
            ),
            [{"action_id": action["id"], "why": why} for action, why in part],
        )
        rows = await session.execute(
            select(ACTIONS).where(ACTIONS.c.id.in_([action["id"] for action, _ in part]))
        )
        for row in rows:
            if row.status == ActionStatus.cancelled.value:
                cancelled.append(dict(row._mapping))
            else:  # carried out meanwhile: it stands, and its entry keeps it
                kept.add(row.entry_id)
    opened = [a for a in opened if a["entry_id"] not in kept]
    await emit(
        session,
        [(AccountabilityCancelled(**_action_payload(a)), a["cadre_id"]) for a in cancelled],
        now,
    )
    if opened:
        await session.execute(ACTIONS.insert(), opened)
    await emit(
        session, [(AccountabilityOpened(**_action_payload(a)), a["cadre_id"]) for a in opened], now
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
    # The later entries of the year move up a place.
    keys = {(r["subject_id"], r["date"].year) for r in revoked if r["subject_type"] == "cadre"}
    await resequence(session, keys, now=now)
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
    reason: EntryReason | None = None,
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
    if reason:
        stmt = stmt.where(ENTRIES.c.reason == reason.value)
    if after := page.after():
        stmt = stmt.where(tuple_(ENTRIES.c.date, ENTRIES.c.id) > after_key(after, date, uuid.UUID))
    rows = await session.execute(stmt.order_by(ENTRIES.c.date, ENTRIES.c.id).limit(page.limit + 1))
    return make_page([dict(r._mapping) for r in rows], page, lambda r: [r["date"], r["id"]])


def _actions_read() -> Select:
    """Actions with the entry behind each (reason, source, filed unit) and, for a finding's
    entry, the finding's posting time, status and appeal time (`finding_*`)."""
    behind = ENTRIES.join(ACTIONS, ACTIONS.c.entry_id == ENTRIES.c.id).outerjoin(
        FINDINGS,
        and_(ENTRIES.c.reason == EntryReason.finding.value, FINDINGS.c.id == ENTRIES.c.source_id),
    )
    return select(
        ACTIONS,
        ENTRIES.c.reason,
        ENTRIES.c.source_id,
        ENTRIES.c.unit_id,
        FINDINGS.c.posted_at.label("finding_posted_at"),
        FINDINGS.c.status.label("finding_status"),
        FINDINGS.c.appealed_at.label("finding_appealed_at"),
    ).select_from(behind)


async def read_action(session: AsyncSession, action_id: uuid.UUID) -> dict[str, Any]:
    """One action as `list_actions` lists it."""
    row = (await session.execute(_actions_read().where(ACTIONS.c.id == action_id))).first()
    if row is None:
        raise NotFound(f"accountability action {action_id} not found", code="action_not_found")
    return dict(row._mapping)


async def list_actions(
    session: AsyncSession,
    *,
    cadre_id: uuid.UUID | None,
    status: ActionStatus | None,
    page: PageParams,
    scope: uuid.UUID | None = None,
) -> dict[str, Any]:
    stmt = _actions_read()
    if scope is not None:  # an action files where the entry behind it does
        stmt = stmt.where(ENTRIES.c.unit_id.in_(subtree(scope)))
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
