"""Weekly dispatch, 10-day summary and the monthly score with its township ranking."""

from datetime import UTC, date
from decimal import Decimal

import pytest

from services.assessment.service import reports
from services.assessment.settings import AssessmentSettings
from shared.contracts.enums import Role
from tests.assessment import factories as f


@pytest.fixture
async def t(system):
    return await f.tree(system)


async def publish(system, kind, period, expect=(200, 201)):
    r = await system.client.post(
        "/assessment/v1/reports", json={"kind": kind, "period": period}, headers=system.headers()
    )
    assert r.status_code in ((expect,) if isinstance(expect, int) else expect), r.text
    return r


async def test_weekly_dispatch_per_township(system, t):
    good = await f.posted_cadre(system, t.village)
    short = await f.posted_cadre(system, t.group)
    elsewhere = await f.posted_cadre(system, t.other_village)
    await f.attend(system, good, f.full_week(date(2026, 11, 16)))
    await f.attend(system, short, f.full_week(date(2026, 11, 16), days=4))
    await f.attend(
        system, elsewhere, f.full_week(date(2026, 11, 16)), lat=f.OTHER_LAT, lon=f.OTHER_LON
    )
    await f.finding(system, short, f.local(2026, 11, 20, 10))
    dismissed = await f.finding(system, good, f.local(2026, 11, 20, 10))
    await f.dismiss(system, dismissed["id"])
    await system.client.post(
        "/assessment/v1/tasks",
        json={
            "unit_id": str(t.group),
            "quarter": "2026-Q4",
            "title": "build the water cellar",
            "assignee_id": str(short),
            "deadline": "2026-11-20",
        },
        headers=system.headers(),
    )
    await f.close(system, "2026-W47")
    r = await publish(system, "weekly_dispatch", "2026-W47", 201)
    body = r.json()["body"]
    rows = {row["township_id"]: row for row in body["townships"]}
    assert {k: v for k, v in rows[str(t.township)].items() if k not in ("township_id", "name")} == {
        "posted": 2,
        "judged": 2,
        "compliant": 1,
        "non_compliant": 1,
        "open_findings": 1,
        "overdue_tasks": 1,
    }
    assert rows[str(t.other_township)]["compliant"] == 1
    assert rows[str(t.other_township)]["open_findings"] == 0
    [event] = await f.events(system, "assessment.report.published")
    assert (event.payload["kind"], event.payload["period"], event.key) == (
        "weekly_dispatch",
        "2026-W47",
        "2026-W47",
    )
    assert event.payload["body"] == body
    # The same data publishes nothing new.
    again = await publish(system, "weekly_dispatch", "2026-W47", 200)
    assert again.json() == r.json()
    assert len(await f.events(system, "assessment.report.published")) == 1
    got = await system.client.get(
        "/assessment/v1/reports/weekly_dispatch/2026-W47", headers=system.headers(Role.auditor)
    )
    assert got.json() == r.json()


async def test_ten_day_summary(system, t):
    c = await f.posted_cadre(system, t.village)
    await f.attend(system, c, [f.local(2026, 11, 11, 10), f.local(2026, 11, 20, 21)])
    await f.sign_in(system, c, f.local(2026, 11, 21, 10))  # the next period
    await f.sign_in(system, c, f.local(2026, 11, 15, 10), mock_location=True)
    await f.finding(system, c, f.local(2026, 11, 12, 10))
    body = (await publish(system, "ten_day_summary", "2026-11-D2", 201)).json()["body"]
    assert (body["from"], body["to"]) == ("2026-11-11", "2026-11-20")
    row = {r["township_id"]: r for r in body["townships"]}[str(t.township)]
    assert (row["accepted_sign_ins"], row["flagged_sign_ins"]) == (2, 1)
    assert row["negative_entries"]["finding"] == 1


async def test_monthly_score_and_ranking_per_township(system, t):
    system.clock.set(f.local(2026, 10, 20, 10).astimezone(UTC))
    full, short, found = [await f.posted_cadre(system, t.village) for _ in range(3)]
    away = await f.posted_cadre(system, t.other_village)
    week = date(2026, 10, 12)
    await f.attend(system, full, f.full_week(week))
    await f.attend(system, short, f.full_week(week, days=4))
    await f.attend(system, found, f.full_week(week))
    serious = await f.finding(system, found, f.local(2026, 10, 14, 10), severity="serious")
    await f.close(system, "2026-W42")
    r = await system.client.post(
        "/assessment/v1/tasks",
        json={
            "unit_id": str(t.village),
            "quarter": "2026-Q4",
            "title": "household visits",
            "assignee_id": str(full),
            "deadline": "2026-10-25",
        },
        headers=system.headers(),
    )
    await system.client.post(
        f"/assessment/v1/tasks/{r.json()['id']}/complete", headers=system.headers()
    )
    system.clock.set(f.local(2026, 11, 2, 10).astimezone(UTC))
    report = (await publish(system, "monthly_assessment", "2026-10", 201)).json()
    assert report["body"]["cadres"] == 4
    scores = await list_scores(system, "2026-10")
    assert {c: (s["score"], s["rank"]) for c, s in scores.items()} == {
        str(full): ("100.00", 1),  # 60 attendance + 40 tasks
        str(found): ("80.00", 2),  # no task due: 60 of 60 scaled to 100, minus 20 (serious)
        str(short): ("0.00", 3),  # 0 attendance, no task due, minus 5 for the presence week
        str(away): ("0.00", 1),  # first in its own township
    }
    assert scores[str(short)]["components"] == {
        "attendance": "0.00",
        "deductions": "5.00",
        "judged_weight": "60.00",
    }
    published = await f.events(system, "assessment.monthly_score.published")
    assert {e.payload["cadre_id"]: e.payload["rank"] for e in published} == {
        c: s["rank"] for c, s in scores.items()
    }
    assert {e.payload["township_id"] for e in published} == {str(t.township), str(t.other_township)}
    # Same data: nothing new. The finding dismissed: one score changes, and only it is published.
    await publish(system, "monthly_assessment", "2026-10", 200)
    assert len(await f.events(system, "assessment.monthly_score.published")) == 4
    await f.dismiss(system, serious["id"])
    await publish(system, "monthly_assessment", "2026-10", 200)
    changed = (await f.events(system, "assessment.monthly_score.published"))[4:]
    assert [(e.payload["cadre_id"], e.payload["score"], e.payload["rank"]) for e in changed] == [
        (str(found), "100.00", 1)  # ties share the rank
    ]
    assert len(await f.events(system, "assessment.report.published")) == 2
    only = await system.client.get(
        "/assessment/v1/monthly-scores",
        params={"month": "2026-10", "township_id": str(t.other_township)},
        headers=system.headers(Role.auditor),
    )
    assert [s["cadre_id"] for s in only.json()["items"]] == [str(away)]
    own = await system.client.get(
        "/assessment/v1/monthly-scores",
        params={"month": "2026-10"},
        headers=system.headers(Role.cadre, cadre_id=short),
    )
    assert [s["cadre_id"] for s in own.json()["items"]] == [str(short)]


async def list_scores(system, month):
    r = await system.client.get(
        "/assessment/v1/monthly-scores", params={"month": month}, headers=system.headers()
    )
    assert r.status_code == 200, r.text
    return {s["cadre_id"]: s for s in r.json()["items"]}


async def test_score_weights_are_policy(system, t):
    system.clock.set(f.local(2026, 10, 20, 10).astimezone(UTC))
    c = await f.posted_cadre(system, t.village)
    await f.attend(system, c, f.full_week(date(2026, 10, 12)))
    await f.close(system, "2026-W42")
    await f.finding(system, c, f.local(2026, 10, 14, 10), severity="minor")
    policy = AssessmentSettings(
        score_attendance_weight=Decimal("70"),
        score_task_weight=Decimal("30"),
        score_deduction_minor=Decimal("12.5"),
    )
    async with system.transaction("assessment") as s:
        await reports.monthly_scores(s, date(2026, 10, 1), now=system.clock.now(), policy=policy)
    scores = await list_scores(system, "2026-10")
    assert scores[str(c)]["score"] == "87.50"


@pytest.mark.parametrize(
    ("kind", "period", "status", "field_or_code"),
    [
        ("weekly_dispatch", "2026-W54", 422, "period"),
        ("weekly_dispatch", "2026-W48", 409, "period_not_ended"),
        ("ten_day_summary", "2026-11-D4", 422, "period"),
        ("ten_day_summary", "2026-11-D3", 409, "period_not_ended"),
        ("monthly_assessment", "2026-13", 422, "period"),
        ("monthly_assessment", "2026-11", 409, "period_not_ended"),
        ("daily_digest", "2026-11", 422, "kind"),
    ],
)
async def test_bad_or_unended_periods(system, kind, period, status, field_or_code):
    r = await publish(system, kind, period, status)
    body = r.json()
    assert body["field" if status == 422 else "code"] == field_or_code


async def test_who_publishes_and_reads_reports(system):
    r = await system.client.post(
        "/assessment/v1/reports",
        json={"kind": "weekly_dispatch", "period": "2026-W47"},
        headers=system.headers(Role.auditor),
    )
    assert r.status_code == 403
    r = await system.client.get(
        "/assessment/v1/reports/weekly_dispatch/2026-W47", headers=system.headers()
    )
    assert r.status_code == 404
