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
    CADRES,
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
    WEEKS,
    after_key,
    emit,
    overlaps,
    subtree,
    township_column,
)
from services.assessment.service.names import cadre_names, unit_names
from services.assessment.settings import AssessmentSettings
from shared.clock import (
    format_week,
    local_midnight,
    month_end,
    parse_month,
    parse_week,
    week_end_moment,
)
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
        return first, last, local_midnight(last + timedelta(days=1))
    first = parse_month(period, field="period")
    last = month_end(first)
    last_sunday = last - timedelta(days=(last.weekday() + 1) % 7)
    ends = max(
        local_midnight(last + timedelta(days=1)), week_end_moment(last_sunday - timedelta(days=6))
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


NO_JUDGED_WEEK = "no_judged_week"


def _points(weight: Decimal, done: int, due: int) -> Decimal | None:
    """A weight earned in proportion; nothing due is not judged (None), never full marks."""
    return (weight * done / due).quantize(CENT, ROUND_HALF_UP) if due else None


def score_of(
    *,
    weeks_judged: int,
    weeks_compliant: int,
    tasks_due: int,
    tasks_on_time: int,
    deductions: Decimal,
    policy: AssessmentSettings,
) -> tuple[Decimal | None, dict[str, Decimal]]:
    """The monthly score and its components.

    A part with no evidence (no closed week judged, no task due) is dropped, and what was
    judged is scaled up to the full weight (attendance 45 of 60 with no task due scores
    75): nothing on record earns nothing. With no part judged the score is None. The
    deductions are taken after scaling, and the score never goes below zero.
    """
    attendance = _points(policy.score_attendance_weight, weeks_compliant, weeks_judged)
    tasks = _points(policy.score_task_weight, tasks_on_time, tasks_due)
    components: dict[str, Decimal] = {}
    judged_weight = Decimal(0)
    if attendance is not None:
        components["attendance"] = attendance
        judged_weight += policy.score_attendance_weight
    if tasks is not None:
        components["tasks"] = tasks
        judged_weight += policy.score_task_weight
    components["deductions"] = deductions.quantize(CENT)
    components["judged_weight"] = judged_weight.quantize(CENT)
    if not judged_weight:
        return None, components
    full = policy.score_attendance_weight + policy.score_task_weight
    earned = (attendance or Decimal(0)) + (tasks or Decimal(0))
    scaled = (earned * full / judged_weight).quantize(CENT, ROUND_HALF_UP)
    return max(Decimal(0), scaled - components["deductions"]).quantize(CENT), components


async def monthly_scores(
    session: AsyncSession, first: date, *, now: datetime, policy: AssessmentSettings
) -> dict[str, Any]:
    """Score every cadre posted in the month (attendance from closed weeks, tasks due,
    negative entries by severity; weights are policy) and rank them within their township.
    A cadre with no judged week is scored but not ranked (`not_ranked_reason`)."""
    last, month = month_end(first), first.strftime("%Y-%m")
    roles = [r.value for r in policy.judged_roles]
    placed: dict[uuid.UUID, tuple[uuid.UUID | None, uuid.UUID]] = {}
    posted = await session.execute(
        select(POSTINGS.c.cadre_id, township_column(POSTINGS.c.unit_id), POSTINGS.c.unit_id)
        .where(overlaps(POSTINGS, first, last), POSTINGS.c.role.in_(roles))
        .order_by(POSTINGS.c.start_date)
    )
    for cadre_id, town, unit_id in posted:  # the latest posting of the month decides
        placed[cadre_id] = (town, unit_id)
    weeks = {
        r[0]: (r[1], r[2])
        for r in await session.execute(
            select(
                VERDICTS.c.cadre_id,
                func.count(),
                func.sum(case((VERDICTS.c.compliant.is_(True), 1), else_=0)),
            )
            .where(
                VERDICTS.c.judged.is_(True),
                VERDICTS.c.week_sunday.between(first, last),
                VERDICTS.c.week.in_(select(WEEKS.c.week)),  # closed weeks only
            )
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
    for cadre_id, (town, unit_id) in placed.items():
        judged, compliant = weeks.get(cadre_id, (0, 0))
        due, on_time = tasks.get(cadre_id, (0, 0))
        score, components = score_of(
            weeks_judged=judged,
            weeks_compliant=compliant or 0,
            tasks_due=due,
            tasks_on_time=on_time or 0,
            deductions=deductions.get(cadre_id, Decimal(0)),
            policy=policy,
        )
        scored.append(
            {
                "cadre_id": cadre_id,
                "township_id": town,
                "unit_id": unit_id,
                "score": score,
                "ranked": bool(judged),
                "not_ranked_reason": None if judged else NO_JUDGED_WEEK,
                "c": components,
            }
        )
    _rank(scored)
    return await _store_scores(session, month, scored, now=now)


def _rank(scored: list[dict[str, Any]]) -> None:
    """Competition ranking within each township: equal scores share a rank (1, 1, 3).
    Only ranked cadres take part; the others have rank None."""
    by_town: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for s in scored:
        s["rank"] = None
        if s["ranked"]:
            by_town[s["township_id"]].append(s)
    for group in by_town.values():
        group.sort(key=lambda s: (-s["score"], str(s["cadre_id"])))
        for i, s in enumerate(group):
            same = i and group[i - 1]["score"] == s["score"]
            s["rank"] = group[i - 1]["rank"] if same else i + 1


_STORED = ("township_id", "unit_id", "rank", "ranked", "not_ranked_reason")


def _changed(was: Any, s: dict[str, Any], stored: dict[str, str]) -> bool:
    if was is None or was.components != stored:
        return True
    old_score = None if was.score is None else Decimal(was.score)
    return old_score != s["score"] or any(getattr(was, k) != s[k] for k in _STORED)


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
        if _changed(old.get(s["cadre_id"]), s, stored):
            changed.append(s | {"stored": stored})
    if changed:
        got = await session.execute(
            versioned_upsert(
                session,
                SCORES,
                ["cadre_id", "month"],
                [*_STORED, "score", "components", "updated_at"],
            ),
            [
                {
                    "cadre_id": s["cadre_id"],
                    "month": month,
                    "score": s["score"],
                    "components": s["stored"],
                    "updated_at": now,
                    "version": 1,
                }
                | {k: s[k] for k in _STORED}
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
                    ranked=s["ranked"],
                    not_ranked_reason=s["not_ranked_reason"],
                    components=s["c"],
                    entity_version=versions[s["cadre_id"]],
                ),
                s["cadre_id"],
            )
            for s in changed
        ]
        await emit(session, events, now)
    cadres = await cadre_names(session, [s["cadre_id"] for s in scored])
    units = await unit_names(session, [s["township_id"] for s in scored])
    names = {t: u.name for t, u in units.items()}
    towns: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for s in scored:
        towns[s["township_id"]].append(s)
    return {
        "month": month,
        "cadres": len(scored),
        "townships": [
            _township_row(t, group, names, cadres)
            for t, group in sorted(towns.items(), key=lambda kv: str(kv[0]))
        ],
    }


def _township_row(
    town: Any, group: list[dict[str, Any]], names: dict[Any, str], cadres: dict[Any, str]
) -> dict[str, Any]:
    """`top` (ids) and `average` are over the ranked cadres; `top_cadres` names them."""
    ranked = sorted(
        (s for s in group if s["ranked"]), key=lambda s: (s["rank"], str(s["cadre_id"]))
    )
    average = sum(s["score"] for s in ranked) / len(ranked) if ranked else None
    return {
        "township_id": str(town) if town else None,
        "name": names.get(town),
        "cadres": len(group),
        "ranked": len(ranked),
        "not_ranked": len(group) - len(ranked),
        "average": str(average.quantize(CENT)) if average is not None else None,
        "top": [str(s["cadre_id"]) for s in ranked[:3]],
        "top_cadres": [
            {
                "cadre_id": str(s["cadre_id"]),
                "cadre_name": cadres.get(s["cadre_id"]),
                "score": str(s["score"]),
                "rank": s["rank"],
            }
            for s in ranked[:3]
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
    """Score items with the cadre's, the township's, the posted unit's and its village's
    names from the projections beside the ids."""
    parse_month(month)
    unit, village, village_path = UNITS.alias("unit"), UNITS.alias("village"), PATHS.alias("vp")
    village_id = (
        select(village_path.c.ancestor_id)
        .join(village, village.c.unit_id == village_path.c.ancestor_id)
        .where(village_path.c.unit_id == SCORES.c.unit_id, village.c.kind == "village")
        .limit(1)
        .scalar_subquery()
    )
    village_name = select(UNITS.c.name).where(UNITS.c.unit_id == village_id).scalar_subquery()
    stmt = (
        select(
            SCORES,
            CADRES.c.name.label("cadre_name"),
            TOWN.c.name.label("township_name"),
            unit.c.name.label("unit_name"),
            village_id.label("village_id"),
            village_name.label("village_name"),
        )
        .select_from(SCORES)
        .outerjoin(CADRES, CADRES.c.cadre_id == SCORES.c.cadre_id)
        .outerjoin(TOWN, TOWN.c.unit_id == SCORES.c.township_id)
        .outerjoin(unit, unit.c.unit_id == SCORES.c.unit_id)
        .where(SCORES.c.month == month)
    )
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
