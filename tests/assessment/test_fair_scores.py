"""Fair monthly scores (issue 13, finding 2): nothing on record earns nothing, a cadre
never judged is not ranked, and violations never outrank compliance."""

from datetime import UTC, date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.assessment.service.reports import score_of
from services.assessment.settings import AssessmentSettings
from shared.contracts.enums import Role
from tests.assessment import factories as f

# The ISO weeks whose Sunday falls in October 2026: W40 (Sep 28) to W43 (Oct 19).
OCTOBER = [date(2026, 9, 28) + timedelta(weeks=i) for i in range(4)]


@pytest.fixture
async def t(system):
    return await f.tree(system)


async def run_october(system, attending: dict, *, findings=()) -> None:
    """Each week: the cadres in `attending[cadre]` (a set of week indexes) sign in a full
    week, then the week is closed; findings are (cadre, week index)."""
    for i, monday in enumerate(OCTOBER):
        system.clock.set(f.local(*(monday + timedelta(days=7)).timetuple()[:3], 10).astimezone(UTC))
        for cadre_id, weeks in attending.items():
            if i in weeks:
                await f.attend(system, cadre_id, f.full_week(monday))
        for cadre_id, week in findings:
            if week == i:
                wednesday = monday + timedelta(days=2)
                await f.finding(system, cadre_id, f.local(*wednesday.timetuple()[:3], 15))
        await f.close(system, f"2026-W{40 + i}")
    system.clock.set(f.local(2026, 11, 2, 10).astimezone(UTC))


async def publish_october(system) -> dict:
    r = await system.client.post(
        "/assessment/v1/reports",
        json={"kind": "monthly_assessment", "period": "2026-10"},
        headers=system.headers(),
    )
    assert r.status_code in (200, 201), r.text
    return r.json()["body"]


async def scores(system, month="2026-10") -> dict:
    r = await system.client.get(
        "/assessment/v1/monthly-scores", params={"month": month}, headers=system.headers()
    )
    assert r.status_code == 200, r.text
    return {s["cadre_id"]: s for s in r.json()["items"]}


async def test_finding_2_nothing_on_record_does_not_rank_first(system, t):
    """The issue's month: the cadre who missed two weeks and had an absence finding ranked
    #1, and so did cadres with nothing on record. Now a diligent cadre leads, the violator
    trails, and a newcomer never judged is not ranked."""
    diligent = await f.cadre(system, "王勤")
    await f.post(system, diligent, t.village)
    violator = await f.cadre(system, "李缺")
    await f.post(system, violator, t.village)
    newcomer = await f.cadre(system, "赵新")  # posted mid-W43: no week of October judged
    await f.post(system, newcomer, t.group, start=date(2026, 10, 21))
    system.clock.set(f.local(2026, 10, 1, 10).astimezone(UTC))
    # The diligent cadre has one task due in October and finishes it late.
    r = await system.client.post(
        "/assessment/v1/tasks",
        json={
            "unit_id": str(t.village),
            "quarter": "2026-Q4",
            "title": "household visits",
            "assignee_id": str(diligent),
            "deadline": "2026-10-30",
        },
        headers=system.headers(),
    )
    assert r.status_code == 201, r.text
    await run_october(
        system,
        {diligent: {0, 1, 2, 3}, violator: {0, 1}},
        findings=[(violator, 1)],
    )
    system.clock.set(f.local(2026, 11, 2, 10).astimezone(UTC))
    done = await system.client.post(
        f"/assessment/v1/tasks/{r.json()['id']}/complete", headers=system.headers()
    )
    assert done.status_code == 200, done.text
    body = await publish_october(system)
    got = await scores(system)
    # Before: violator 30 + 40 (no task due: full marks) - 20 = 50, newcomer 100 at rank 1.
    assert {c: (s["score"], s["rank"], s["ranked"]) for c, s in got.items()} == {
        str(diligent): ("60.00", 1, True),  # 60 attendance + 0 of 40 for the late task
        str(violator): ("30.00", 2, True),  # 30 of 60 scaled to 50, minus 2 weeks and 1 finding
        str(newcomer): (None, None, False),
    }
    assert got[str(newcomer)]["not_ranked_reason"] == "no_judged_week"
    assert got[str(violator)]["components"] == {
        "attendance": "30.00",
        "deductions": "20.00",
        "judged_weight": "60.00",
    }
    assert got[str(diligent)]["components"]["tasks"] == "0.00"
    # Names beside the ids, from the registry projections.
    item = got[str(newcomer)]
    assert (item["cadre_name"], item["unit_id"], item["village_id"]) == (
        "赵新",
        str(t.group),
        str(t.village),
    )
    assert item["township_name"].startswith("township ")
    assert item["unit_name"].startswith("group ") and item["village_name"].startswith("village ")
    [town] = [row for row in body["townships"] if row["township_id"] == str(t.township)]
    assert (town["cadres"], town["ranked"], town["not_ranked"]) == (3, 2, 1)
    assert town["name"] == item["township_name"]
    assert town["top"] == [str(diligent), str(violator)]
    assert [(c["cadre_name"], c["rank"], c["score"]) for c in town["top_cadres"]] == [
        ("王勤", 1, "60.00"),
        ("李缺", 2, "30.00"),
    ]
    assert town["average"] == "45.00"  # over the ranked cadres
    # The event says the same; incentives drops the unranked cadre's rank.
    published = {
        e.payload["cadre_id"]: e.payload
        for e in await f.events(system, "assessment.monthly_score.published")
    }
    assert published[str(newcomer)]["rank"] is None
    assert published[str(newcomer)]["not_ranked_reason"] == "no_judged_week"
    assert published[str(violator)]["rank"] == 2


async def test_a_violator_cannot_outrank_an_otherwise_equal_compliant_cadre(system, t):
    compliant = await f.posted_cadre(system, t.village)
    violator = await f.posted_cadre(system, t.village)
    await run_october(
        system,
        {compliant: {0, 1, 2, 3}, violator: {0, 2}},
        findings=[(violator, 2)],
    )
    await publish_october(system)
    got = await scores(system)
    assert (got[str(compliant)]["rank"], got[str(violator)]["rank"]) == (1, 2)
    assert Decimal(got[str(violator)]["score"]) < Decimal(got[str(compliant)]["score"])
    # The cadre sees their own score, with their name.
    r = await system.client.get(
        "/assessment/v1/monthly-scores",
        params={"month": "2026-10"},
        headers=system.headers(Role.cadre, cadre_id=violator),
    )
    assert [(s["cadre_id"], s["rank"]) for s in r.json()["items"]] == [(str(violator), 2)]


async def test_attendance_counts_closed_weeks_only(system, t):
    c = await f.posted_cadre(system, t.village)
    system.clock.set(f.local(2026, 10, 19, 10).astimezone(UTC))
    await f.attend(system, c, f.full_week(OCTOBER[2]))  # W42 attended but never closed
    system.clock.set(f.local(2026, 11, 2, 10).astimezone(UTC))
    await publish_october(system)
    [item] = (await scores(system)).values()
    assert (item["score"], item["rank"], item["not_ranked_reason"]) == (
        None,
        None,
        "no_judged_week",
    )
    assert item["components"] == {"deductions": "0.00", "judged_weight": "0.00"}


POLICY = AssessmentSettings()


@settings(max_examples=300, deadline=None, database=None)
@given(
    judged=st.integers(1, 6),
    data=st.data(),
)
def test_violations_never_raise_a_score(judged, data):
    """Same month, same tasks: missing weeks or adding deductions never scores higher, and
    scores strictly lower unless the compliant one is already at zero."""
    compliant = data.draw(st.integers(0, judged))
    due = data.draw(st.integers(0, 5))
    on_time = data.draw(st.integers(0, due))
    base = Decimal(data.draw(st.integers(0, 8))) * 5
    missed = data.draw(st.integers(0, compliant))
    extra = Decimal(data.draw(st.integers(0, 4))) * 5
    common = dict(weeks_judged=judged, tasks_due=due, tasks_on_time=on_time, policy=POLICY)
    good, _ = score_of(weeks_compliant=compliant, deductions=base, **common)
    bad, _ = score_of(weeks_compliant=compliant - missed, deductions=base + extra, **common)
    assert good is not None and bad is not None
    assert bad <= good
    if missed or extra:
        assert bad < good or good == 0
    assert Decimal(0) <= bad <= POLICY.score_attendance_weight + POLICY.score_task_weight


def test_a_part_with_nothing_due_is_dropped_not_full():
    score, parts = score_of(
        weeks_judged=4, weeks_compliant=3, tasks_due=0, tasks_on_time=0,
        deductions=Decimal(0), policy=POLICY,
    )  # fmt: skip
    assert (score, parts.get("tasks")) == (Decimal("75.00"), None)
    score, parts = score_of(
        weeks_judged=0, weeks_compliant=0, tasks_due=2, tasks_on_time=1,
        deductions=Decimal(5), policy=POLICY,
    )  # fmt: skip
    assert (score, parts.get("attendance")) == (Decimal("45.00"), None)  # 20 of 40 → 50 − 5
    assert score_of(
        weeks_judged=0, weeks_compliant=0, tasks_due=0, tasks_on_time=0,
        deductions=Decimal(5), policy=POLICY,
    )[0] is None  # fmt: skip
