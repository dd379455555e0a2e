"""The cadence on its own: close the week that just ended, publish the reports of the
periods that just ended. Each tick does only the latest of each (on start too, so the
most recent unclosed week is closed); it never back-fills older ones by itself. It
closes no week before go-live (golive.py), and none while no county is known.
"""

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from services.assessment.service import golive, presence, reports
from services.assessment.service.common import REPORTS, WEEKS, week_of
from services.assessment.settings import AssessmentSettings, policy_of
from shared.clock import format_month, format_week, local_date, parse_week, week_end_moment
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)


def latest_ended_week(now: datetime) -> str:
    last_monday = week_of(local_date(now)) - timedelta(days=7)
    if now < week_end_moment(last_monday):  # Monday before 06:00: last week's nights run on
        last_monday -= timedelta(days=7)
    return format_week(last_monday)


def latest_ended_periods(now: datetime) -> list[tuple[str, str]]:
    """The most recent ended period of each report kind."""
    today = local_date(now)
    current = today.replace(day=1 if today.day < 11 else 11 if today.day < 21 else 21)
    previous = current - timedelta(days=1)
    ten = f"{format_month(previous)}-D{min((previous.day - 1) // 10 + 1, 3)}"
    return [
        ("weekly_dispatch", latest_ended_week(now)),
        ("ten_day_summary", ten),
        ("monthly_assessment", format_month(today.replace(day=1) - timedelta(days=1))),
    ]


async def tick(runtime: ServiceRuntime, policy: AssessmentSettings) -> None:
    now = runtime.clock.now()
    week = latest_ended_week(now)
    async with runtime.transaction() as session:
        if await session.scalar(
            select(WEEKS.c.week).where(WEEKS.c.week == week)
        ) is None and await golive.scheduler_may_close(session, parse_week(week)):
            log.info("assessment: closing %s", week)
            await presence.close_week(session, week, now=now, policy=policy)
    for kind, period in latest_ended_periods(now):
        if now < reports.period_span(kind, period)[2]:
            continue  # a month ending on a Sunday waits for that week's close
        async with runtime.transaction() as session:
            done = await session.scalar(
                select(REPORTS.c.id).where(REPORTS.c.kind == kind, REPORTS.c.period == period)
            )
            if done is None:
                log.info("assessment: publishing %s %s", kind, period)
                await reports.publish(session, kind, period, now=now, policy=policy)


async def scheduler(runtime: ServiceRuntime) -> None:
    """Background job: off when `run_scheduler` is false (tests close weeks explicitly)."""
    if not runtime.kernel.run_scheduler:
        return
    policy = policy_of(runtime.settings)
    while True:
        try:
            await tick(runtime, policy)
        except Exception:  # a bad tick must not stop the cadence; the next one retries
            log.exception("assessment scheduler tick failed")
        await asyncio.sleep(policy.scheduler_tick_seconds)
