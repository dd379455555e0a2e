"""The scheduler closes the week that just ended and publishes the latest reports, once."""

from datetime import UTC, date

import pytest
from sqlalchemy import select

from services.assessment.models import Report, Week
from services.assessment.service.scheduler import latest_ended_periods, latest_ended_week, tick
from services.assessment.settings import policy_of
from tests.assessment import factories as f


@pytest.mark.parametrize(
    ("now", "week"),
    [
        (f.local(2026, 11, 30, 5, 59), "2026-W47"),  # W48's last night still runs
        (f.local(2026, 11, 30, 6, 0), "2026-W48"),
        (f.local(2026, 11, 25, 10), "2026-W47"),
        (f.local(2027, 1, 4, 7), "2026-W53"),
    ],
)
def test_latest_ended_week(now, week):
    assert latest_ended_week(now.astimezone(UTC)) == week


@pytest.mark.parametrize(
    ("now", "ten_days", "month"),
    [
        (f.local(2026, 11, 25, 10), "2026-11-D2", "2026-10"),
        (f.local(2026, 11, 21, 0, 0), "2026-11-D2", "2026-10"),
        (f.local(2026, 11, 20, 23, 59), "2026-11-D1", "2026-10"),
        (f.local(2026, 12, 1, 8), "2026-11-D3", "2026-11"),
    ],
)
def test_latest_ended_periods(now, ten_days, month):
    periods = dict(latest_ended_periods(now.astimezone(UTC)))
    assert (periods["ten_day_summary"], periods["monthly_assessment"]) == (ten_days, month)


async def test_a_tick_closes_only_the_latest_ended_week_and_never_back_fills(system):
    t = await f.tree(system)
    c = await f.posted_cadre(system, t.village)
    await f.attend(system, c, f.full_week(date(2026, 11, 16)))
    runtime = system.runtime("assessment")
    await tick(runtime, policy_of(runtime.settings))
    async with system.transaction("assessment") as s:
        weeks = (await s.execute(select(Week.week))).scalars().all()
        reports = (await s.execute(select(Report.kind, Report.period))).all()
    assert weeks == ["2026-W47"]
    assert sorted(reports) == [
        ("monthly_assessment", "2026-10"),
        ("ten_day_summary", "2026-11-D2"),
        ("weekly_dispatch", "2026-W47"),
    ]
    assert (await f.presence(system, c, "2026-W47"))["judged"] is True
    published = len(await f.events(system))
    await tick(runtime, policy_of(runtime.settings))  # nothing new is due
    assert len(await f.events(system)) == published


async def test_the_scheduler_stays_off_when_told(system):
    from services.assessment.service.scheduler import scheduler

    runtime = system.runtime("assessment")
    assert runtime.kernel.run_scheduler is False
    await scheduler(runtime)  # returns at once instead of looping
    async with system.transaction("assessment") as s:
        assert (await s.execute(select(Week.week))).scalars().all() == []
