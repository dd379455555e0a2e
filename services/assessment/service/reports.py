"""Cadence (每周一调度、十天一小结、一月一考核评比): weekly dispatch, 10-day summary and the
monthly assessment score with a ranking per township. Each report is stored and published
as an event; publishing again with the same data changes nothing and announces nothing.

Every figure is an aggregate grouped by township (or by cadre) over everyone at once.
"""

import re
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import and_, case, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.service.common import (
    ENTRIES,
    FINDINGS,
    PATHS,
    POSTINGS,
    REPORTS,
    SCORES,
    SIGN_INS,
    TASKS,
    UNITS,
    VERDICTS,
    after_key,
    emit,
    overlaps,
    subtree,
    township_column,
)
from services.assessment.settings import AssessmentSettings
from shared.clock import LOCAL_TZ, format_week, month_end, parse_month, parse_week, week_end_moment
from shared.contracts.assessment import MonthlyScorePublished, ReportPublished
from shared.contracts.enums import EntryReason, EntryStatus, FindingStatus
from shared.db import upsert
from shared.errors import Conflict, InvalidInput, NotFound
from shared.pagination import PageParams, make_page
from shared.versions import versioned_upsert

TOWN, TOWN_PATH = UNITS.alias("town"), PATHS.alias("town_path")
CENT = Decimal("0.01")
_TEN_DAYS = re.compile(r"^(\d{4}-\d{2})-D([123])$")


def _in_township(stmt, unit_col):
    """Join what `stmt` selects to its township: TOWN_PATH.c.ancestor_id is then its id."""
    return (
        stmt.select_from(unit_col.table)
        .join(TOWN_PATH, TOWN_PATH.c.unit_id == unit_col)
        .join(TOWN, and_(TOWN.c.unit_id == TOWN_PATH.c.ancestor_id, TOWN.c.kind == "township"))
    )


async def _per_township(session: AsyncSession, unit_col, *where, count=None) -> dict:
    """township id -> rows (or `count`) of `unit_col`'s table matching `where`."""
    stmt = _in_township(
        select(TOWN_PATH.c.ancestor_id, func.count() if count is None else count), unit_col
    )
    rows = await session.execute(stmt.where(*where).group_by(TOWN_PATH.c.ancestor_id))
    return dict(rows.all())


async def _townships(session: AsyncSession) -> dict[uuid.UUID, str]:
    rows = await session.execute(
        select(UNITS.c.unit_id, UNITS.c.name)
        .where(UNITS.c.kind == "township")
        .order_by(UNITS.c.code)
    )
    return {r.unit_id: r.name for r in rows}


def ten_day_period(period: str) -> tuple[date, date]:
    """'2026-11-D2' -> (11th, 20th); D3 runs to the month's end (上旬, 中旬, 下旬)."""
    match = _TEN_DAYS.match(period or "")
    if not match:
        raise InvalidInput("period", "expected a ten-day period like 2026-11-D2")
    first = parse_month(match[1], field="period")
    part = int(match[2])
    start = first + timedelta(days=10 * (part - 1))
    return start, month_end(first) if part == 3 else start + timedelta(days=9)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)


def period_span(kind: str, period: str) -> tuple[date, date, datetime]:
    """(first day, last day, the moment it has ended).

    A month has ended once its last day is over and the last week whose Sunday falls in
    it has ended too (its verdicts count in the monthly score).
    """
    if kind == "weekly_dispatch":
        monday = parse_week(period, field="period")
        return monday, monday + timedelta(days=6), week_end_moment(monday)
    if kind == "ten_day_summary":
        first, last = ten_day_period(period)
        return first, last, _midnight(last + timedelta(days=1))
    first = parse_month(period, field="period")
    last = month_end(first)
    last_sunday = last - timedelta(days=(last.weekday() + 1) % 7)
    ends = max(
        _midnight(last + timedelta(days=1)), week_end_moment(last_sunday - timedelta(days=6))
    )
    return first, last, ends


async def weekly_dispatch(session: AsyncSession, monday: date) -> dict[str, Any]:
    """Per township: posted, judged, compliant, open findings, overdue tasks."""
    sunday = monday + timedelta(days=6)
    week = format_week(monday)
    posted = await _per_township(
        session,
        POSTINGS.c.unit_id,
        overlaps(POSTINGS, monday, sunday),
        count=func.count(distinct(POSTINGS.c.cadre_id)),
    )
    judged_week = (VERDICTS.c.week == week, VERDICTS.c.judged.is_(True))
    judged = await _per_township(session, VERDICTS.c.unit_id, *judged_week)
    compliant = await _per_township(
        session, VERDICTS.c.unit_id, *judged_week, VERDICTS.c.compliant.is_(True)
    )
    open_findings = await _per_township(
        session,
        FINDINGS.c.unit_id,
        FINDINGS.c.status.in_([FindingStatus.posted.value, FindingStatus.appealed.value]),
    )
    overdue = await _per_township(
        session, TASKS.c.unit_id, TASKS.c.status == "open", TASKS.c.deadline <= sunday
    )
    return {
        "week": week,
        "townships": [
            {
                "township_id": str(t),
                "name": name,
                "posted": posted.get(t, 0),
                "judged": judged.get(t, 0),
                "compliant": compliant.get(t, 0),
                "non_compliant": judged.get(t, 0) - compliant.get(t, 0),
                "open_findings": open_findings.get(t, 0),
                "overdue_tasks": overdue.get(t, 0),
            }
            for t, name in (await _townships(session)).items()
        ],
    }


async def ten_day_summary(session: AsyncSession, first: date, last: date) -> dict[str, Any]:
    """Per township: accepted and flagged sign-ins, and active negative entries by reason."""
    signs = _in_township(
        select(TOWN_PATH.c.ancestor_id, SIGN_INS.c.counted, func.count()), SIGN_INS.c.unit_id
    ).where(SIGN_INS.c.local_date.between(first, last))
    by_sign: dict[uuid.UUID, dict[bool, int]] = defaultdict(dict)
    for town, counted, n in await session.execute(
        signs.group_by(TOWN_PATH.c.ancestor_id, SIGN_INS.c.counted)
    ):
        by_sign[town][bool(counted)] = n
    entries = _in_township(
        select(TOWN_PATH.c.ancestor_id, ENTRIES.c.reason, func.count()), ENTRIES.c.unit_id
    ).where(ENTRIES.c.date.between(first, last), ENTRIES.c.status == EntryStatus.active.value)
    by_reason: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    for town, reason, n in await session.execute(
        entries.group_by(TOWN_PATH.c.ancestor_id, ENTRIES.c.reason)
    ):
        by_reason[town][reason] = n
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "townships": [
            {
                "township_id": str(t),
                "name": name,
                "accepted_sign_ins": by_sign[t].get(True, 0),
                "flagged_sign_ins": by_sign[t].get(False, 0),
                "negative_entries": {r.value: by_reason[t].get(r.value, 0) for r in EntryReason},
            }
            for t, name in (await _townships(session)).items()
        ],
    }


def _deduction(reason: str, severity: str | None, policy: AssessmentSettings) -> Decimal:
    if reason == EntryReason.finding.value:
        return {
            "minor": policy.score_deduction_minor,
            "major": policy.score_deduction_major,
            "serious": policy.score_deduction_serious,
        }.get(severity or "", policy.score_deduction_major)
    return policy.score_deduction_violation


def _points(weight: Decimal, done: int, due: int) -> Decimal:
    """A weight earned in proportion; nothing due earns it in full."""
    return (weight * done / due if due else weight).quantize(CENT, ROUND_HALF_UP)


async def monthly_scores(
    session: AsyncSession, first: date, *, now: datetime, policy: AssessmentSettings
) -> dict[str, Any]:
    """Score every cadre posted in the month (attendance, tasks, negative entries by
    severity; weights are policy) and rank them within their township."""
    last, month = month_end(first), first.strftime("%Y-%m")
    roles = [r.value for r in policy.judged_roles]
    township: dict[uuid.UUID, uuid.UUID | None] = {}
    posted = await session.execute(
        select(POSTINGS.c.cadre_id, township_column(POSTINGS.c.unit_id))
        .where(overlaps(POSTINGS, first, last), POSTINGS.c.role.in_(roles))
        .order_by(POSTINGS.c.start_date)
    )
    for cadre_id, town in posted:  # the latest posting of the month decides
        township[cadre_id] = town
    weeks = {
        r[0]: (r[1], r[2])
        for r in await session.execute(
            select(
                VERDICTS.c.cadre_id,
                func.count(),
                func.sum(case((VERDICTS.c.compliant.is_(True), 1), else_=0)),
            )
            .where(VERDICTS.c.judged.is_(True), VERDICTS.c.week_sunday.between(first, last))
            .group_by(VERDICTS.c.cadre_id)
        )
    }
    tasks = {
        r[0]: (r[1], r[2])
        for r in await session.execute(
            select(
                TASKS.c.assignee_id,
                func.count(),
                func.sum(case((TASKS.c.done_on <= TASKS.c.deadline, 1), else_=0)),
            )
            .where(TASKS.c.deadline.between(first, last))
            .group_by(TASKS.c.assignee_id)
        )
    }
    deductions: dict[uuid.UUID, Decimal] = defaultdict(Decimal)
    for cadre_id, reason, severity, n in await session.execute(
        select(ENTRIES.c.subject_id, ENTRIES.c.reason, ENTRIES.c.severity, func.count())
        .where(
            ENTRIES.c.subject_type == "cadre",
            ENTRIES.c.status == EntryStatus.active.value,
            ENTRIES.c.date.between(first, last),
        )
        .group_by(ENTRIES.c.subject_id, ENTRIES.c.reason, ENTRIES.c.severity)
    ):
        deductions[cadre_id] += _deduction(reason, severity, policy) * n
    scored = []
    for cadre_id, town in township.items():
        judged, compliant = weeks.get(cadre_id, (0, 0))
        due, on_time = tasks.get(cadre_id, (0, 0))
        attendance = _points(policy.score_attendance_weight, compliant or 0, judged)
        task_points = _points(policy.score_task_weight, on_time or 0, due)
        minus = deductions.get(cadre_id, Decimal(0)).quantize(CENT)
        score = max(Decimal(0), attendance + task_points - minus).quantize(CENT)
        components = {"attendance": attendance, "tasks": task_points, "deductions": minus}
        scored.append({"cadre_id": cadre_id, "township_id": town, "score": score, "c": components})
    _rank(scored)
    return await _store_scores(session, month, scored, now=now)


def _rank(scored: list[dict[str, Any]]) -> None:
    """Competition ranking within each township: equal scores share a rank (1, 1, 3)."""
    by_town: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for s in scored:
        by_town[s["township_id"]].append(s)
    for group in by_town.values():
        group.sort(key=lambda s: (-s["score"], str(s["cadre_id"])))
        for i, s in enumerate(group):
            same = i and group[i - 1]["score"] == s["score"]
            s["rank"] = group[i - 1]["rank"] if same else i + 1


async def _store_scores(
    session: AsyncSession, month: str, scored: list[dict[str, Any]], *, now: datetime
) -> dict[str, Any]:
    """Upsert the month's scores; a score that changed (or is new) is published."""
    old = {
        r.cadre_id: r for r in await session.execute(select(SCORES).where(SCORES.c.month == month))
    }
    changed = []
    for s in scored:
        stored = {k: str(v) for k, v in s["c"].items()}
        was = old.get(s["cadre_id"])
        if (
            was is None
            or Decimal(was.score) != s["score"]
            or was.rank != s["rank"]
            or was.township_id != s["township_id"]
            or was.components != stored
        ):
            changed.append(s | {"stored": stored})
    if changed:
        got = await session.execute(
            versioned_upsert(
                session,
                SCORES,
                ["cadre_id", "month"],
                ["township_id", "score", "rank", "components", "updated_at"],
            ),
            [
                {
                    "cadre_id": s["cadre_id"],
                    "month": month,
                    "township_id": s["township_id"],
                    "score": s["score"],
                    "rank": s["rank"],
                    "components": s["stored"],
                    "updated_at": now,
                    "version": 1,
                }
                for s in changed
            ],
        )
        versions = {r.cadre_id: r.version for r in got}
        events = [
            (
                MonthlyScorePublished(
                    cadre_id=s["cadre_id"],
                    month=month,
                    township_id=s["township_id"],
                    score=s["score"],
                    rank=s["rank"],
                    components=s["c"],
                    entity_version=versions[s["cadre_id"]],
                ),
                s["cadre_id"],
            )
            for s in changed
        ]
        await emit(session, events, now)
    towns: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for s in scored:
        towns[s["township_id"]].append(s)
    return {
        "month": month,
        "cadres": len(scored),
        "townships": [
            {
                "township_id": str(t) if t else None,
                "cadres": len(group),
                "average": str((sum(s["score"] for s in group) / len(group)).quantize(CENT)),
                "top": [str(s["cadre_id"]) for s in sorted(group, key=lambda s: s["rank"])[:3]],
            }
            for t, group in sorted(towns.items(), key=lambda kv: str(kv[0]))
        ],
    }


async def publish(
    session: AsyncSession,
    kind: str,
    period: str,
    *,
    now: datetime,
    policy: AssessmentSettings,
) -> tuple[dict[str, Any], bool]:
    """Build a report for an ended period, store it, publish it if new or changed."""
    first, last, ended = period_span(kind, period)
    if now < ended:
        raise Conflict(f"{period} has not ended", code="period_not_ended")
    if kind == "weekly_dispatch":
        body = await weekly_dispatch(session, first)
    elif kind == "ten_day_summary":
        body = await ten_day_summary(session, first, last)
    else:
        body = await monthly_scores(session, first, now=now, policy=policy)
    body = {"period": period} | body
    old = (
        await session.execute(
            select(REPORTS).where(REPORTS.c.kind == kind, REPORTS.c.period == period)
        )
    ).first()
    if old is not None and old.body == body:
        return dict(old._mapping), False
    row = {
        "id": old.id if old else uuid.uuid4(),
        "kind": kind,
        "period": period,
        "body": body,
        "published_at": now,
    }
    await session.execute(
        upsert(session, REPORTS, ["kind", "period"], ["body", "published_at"]).values(row)
    )
    await emit(session, [(ReportPublished(kind=kind, period=period, body=body), period)], now)
    return row, old is None


async def get_report(session: AsyncSession, kind: str, period: str) -> dict[str, Any]:
    row = (
        await session.execute(
            select(REPORTS).where(REPORTS.c.kind == kind, REPORTS.c.period == period)
        )
    ).first()
    if row is None:
        raise NotFound(f"no {kind} report for {period}", code="report_not_found")
    return dict(row._mapping)


async def list_scores(
    session: AsyncSession,
    *,
    month: str,
    township_id: uuid.UUID | None,
    cadre_id: uuid.UUID | None,
    page: PageParams,
    scope: uuid.UUID | None = None,
) -> dict[str, Any]:
    parse_month(month)
    stmt = select(SCORES).where(SCORES.c.month == month)
    if scope is not None:
        stmt = stmt.where(SCORES.c.township_id.in_(subtree(scope)))
    if township_id:
        stmt = stmt.where(SCORES.c.township_id == township_id)
    if cadre_id:
        stmt = stmt.where(SCORES.c.cadre_id == cadre_id)
    if after := page.after():
        stmt = stmt.where(SCORES.c.cadre_id > after_key(after, uuid.UUID)[0])
    rows = await session.execute(stmt.order_by(SCORES.c.cadre_id).limit(page.limit + 1))
    return make_page([dict(r._mapping) for r in rows], page, lambda r: [r["cadre_id"]])
