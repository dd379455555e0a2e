"""Training (培训): sessions, attendees, and the count of sessions and participant-times."""

import uuid
from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.access import ensure_in_scope, scope_clause, under
from services.registry.models import Cadre, OrgUnit, TrainingAttendance, TrainingSession
from services.registry.schemas import TrainingCreate, TrainingKind
from services.registry.service.common import (
    by_start,
    check_window,
    fetch_page,
    get_or_404,
    parse_uuid,
)
from shared.auth import Principal
from shared.clock import Clock
from shared.db import insert_ignore
from shared.errors import InvalidInput, NotFound
from shared.pagination import PageParams

CHUNK = 500
PERIODS = ("month", "quarter", "year")


def _count():
    return (
        select(func.count())
        .where(TrainingAttendance.session_id == TrainingSession.id)
        .correlate(TrainingSession)
        .scalar_subquery()
        .label("attendee_count")
    )


def _public(row) -> dict[str, Any]:
    session, count = row
    return {
        **{c: getattr(session, c) for c in TrainingSession.model_fields},
        "attendee_count": count,
    }


async def _add_attendees(
    session: AsyncSession, session_id: uuid.UUID, cadre_ids: list[uuid.UUID]
) -> int:
    """Add cadres to a session (already there: kept); 404 naming every unknown cadre."""
    wanted = list(dict.fromkeys(cadre_ids))
    known: set[uuid.UUID] = set()
    for i in range(0, len(wanted), CHUNK):
        known.update(
            await session.scalars(select(Cadre.id).where(Cadre.id.in_(wanted[i : i + CHUNK])))
        )
    unknown = [str(c) for c in wanted if c not in known]
    if unknown:
        raise NotFound("unknown cadres", code="cadre_not_found", field="cadre_ids", ids=unknown)
    added = 0
    for i in range(0, len(wanted), CHUNK):
        rows = [{"session_id": session_id, "cadre_id": c} for c in wanted[i : i + CHUNK]]
        stmt = insert_ignore(session, TrainingAttendance.__table__)
        added += (await session.execute(stmt, rows)).rowcount or 0
    return added


async def create_session(
    session: AsyncSession, *, clock: Clock, principal: Principal, data: TrainingCreate
) -> dict[str, Any]:
    end = data.end_date or data.start_date
    check_window(data.start_date, end)
    unit = await get_or_404(session, OrgUnit, data.unit_id, "unit")
    await ensure_in_scope(session, principal, unit.id)
    training = TrainingSession(
        kind=data.kind,
        title=data.title,
        unit_id=unit.id,
        start_date=data.start_date,
        end_date=end,
        location=data.location,
        created_at=clock.now(),
    )
    session.add(training)
    await session.flush()
    if data.attendee_ids:
        await _add_attendees(session, training.id, data.attendee_ids)
    return await get_session(session, principal, training.id)


async def get_session(
    session: AsyncSession, principal: Principal, session_id: uuid.UUID
) -> dict[str, Any]:
    row = (
        await session.execute(
            select(TrainingSession, _count()).where(TrainingSession.id == session_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no training session {session_id}", code="training_session_not_found")
    await ensure_in_scope(session, principal, row[0].unit_id)
    return _public(row)


async def add_attendees(
    session: AsyncSession,
    *,
    principal: Principal,
    session_id: uuid.UUID,
    cadre_ids: list[uuid.UUID],
) -> dict[str, Any]:
    await get_session(session, principal, session_id)
    added = await _add_attendees(session, session_id, cadre_ids)
    return await get_session(session, principal, session_id) | {"added": added}


async def remove_attendee(
    session: AsyncSession, *, principal: Principal, session_id: uuid.UUID, cadre_id: uuid.UUID
) -> None:
    await get_session(session, principal, session_id)
    gone = await session.execute(
        delete(TrainingAttendance).where(
            TrainingAttendance.session_id == session_id, TrainingAttendance.cadre_id == cadre_id
        )
    )
    if not gone.rowcount:
        raise NotFound("that cadre did not attend", code="attendee_not_found")


async def list_attendees(
    session: AsyncSession, *, principal: Principal, session_id: uuid.UUID, page: PageParams
) -> dict[str, Any]:
    await get_session(session, principal, session_id)
    stmt = (
        select(Cadre)
        .join(TrainingAttendance, TrainingAttendance.cadre_id == Cadre.id)
        .where(TrainingAttendance.session_id == session_id)
    )
    out = await fetch_page(session, stmt, page, [(Cadre.id, "id", parse_uuid)])
    out["items"] = [{"cadre_id": c.id, "name": c.name} for c in out["items"]]
    return out


def _filtered(stmt, principal: Principal, unit_id, kind, date_from, date_to):
    if (clause := scope_clause(principal, TrainingSession.unit_id)) is not None:
        stmt = stmt.where(clause)
    if unit_id is not None:
        stmt = stmt.where(under(TrainingSession.unit_id, unit_id))
    if kind is not None:
        stmt = stmt.where(TrainingSession.kind == kind)
    if date_from is not None:
        stmt = stmt.where(TrainingSession.start_date >= date_from)
    if date_to is not None:
        stmt = stmt.where(TrainingSession.start_date <= date_to)
    return stmt


async def list_sessions(
    session: AsyncSession,
    *,
    principal: Principal,
    page: PageParams,
    unit_id: uuid.UUID | None = None,
    kind: TrainingKind | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> dict[str, Any]:
    stmt = _filtered(
        select(TrainingSession, _count()), principal, unit_id, kind, date_from, date_to
    )
    out = await fetch_page(session, stmt, page, by_start(TrainingSession))
    out["items"] = [_public(r) for r in out["items"]]
    return out


def period_of(day: date, period: str) -> str:
    if period == "year":
        return f"{day.year}"
    if period == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year}-{day.month:02d}"


async def statistics(
    session: AsyncSession,
    *,
    principal: Principal,
    date_from: date,
    date_to: date,
    unit_id: uuid.UUID | None,
    period: str,
) -> dict[str, Any]:
    """Sessions and participant-times (attendances) by period and kind, a session counted
    in the period of its start date; one grouped query, however many sessions."""
    if period not in PERIODS:
        raise InvalidInput("period", f"one of {', '.join(PERIODS)}")
    check_window(date_from, date_to, "to")
    per_session = (
        select(TrainingAttendance.session_id, func.count().label("n"))
        .group_by(TrainingAttendance.session_id)
        .subquery()
    )
    stmt = _filtered(
        select(
            TrainingSession.start_date,
            TrainingSession.kind,
            func.count(),
            func.coalesce(func.sum(per_session.c.n), 0),
        ).outerjoin(per_session, per_session.c.session_id == TrainingSession.id),
        principal,
        unit_id,
        None,
        date_from,
        date_to,
    ).group_by(TrainingSession.start_date, TrainingSession.kind)
    periods: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for day, kind, sessions, people in await session.execute(stmt):
        for bucket in (periods[period_of(day, period)], kinds[kind]):
            bucket[0] += sessions
            bucket[1] += int(people)
    return {
        "date_from": date_from,
        "date_to": date_to,
        "unit_id": unit_id,
        "period": period,
        "sessions": sum(v[0] for v in periods.values()),
        "participant_times": sum(v[1] for v in periods.values()),
        "periods": [
            {"period": p, "sessions": v[0], "participant_times": v[1]}
            for p, v in sorted(periods.items())
        ],
        "by_kind": [
            {"kind": k, "sessions": v[0], "participant_times": v[1]}
            for k, v in sorted(kinds.items())
        ],
    }
