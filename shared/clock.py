"""Time is data: every rule asks an injectable clock; local dates are Asia/Shanghai."""

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from shared.errors import InvalidInput
from shared.types import FIRST_DAY, LAST_DAY

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return local_date(self.now())


class FrozenClock(Clock):
    """A clock that moves only when told to: tests and back-fills."""

    def __init__(self, at: datetime):
        self.at = at

    def now(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at

    def advance(self, **kwargs: float) -> None:
        self.at = self.at + timedelta(**kwargs)


def local_date(moment: datetime) -> date:
    return moment.astimezone(LOCAL_TZ).date()


def local_datetime(moment: datetime) -> datetime:
    return moment.astimezone(LOCAL_TZ)


def local_midnight(day: date) -> datetime:
    """The moment a local day begins (00:00 Asia/Shanghai)."""
    return datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)


def parse_week(value: str, field: str = "week") -> date:
    """'2026-W48' -> the Monday of that ISO week; 422 naming the field when it is no week."""
    match = _WEEK.match(value or "")
    if not match:
        raise InvalidInput(field, "expected an ISO week like 2026-W48")
    try:
        monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError as exc:
        raise InvalidInput(field, f"no such ISO week: {value}") from exc
    return _in_window(monday, field)


def format_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def parse_month(value: str, field: str = "month") -> date:
    """'2026-11' -> date(2026, 11, 1); 422 naming the field otherwise."""
    match = _MONTH.match(value or "")
    if not match or not 1 <= int(match[2]) <= 12:
        raise InvalidInput(field, "expected a month like 2026-11")
    return _in_window(date(int(match[1]), int(match[2]), 1), field)


def _in_window(day: date, field: str) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput(field, f"must fall between {FIRST_DAY} and {LAST_DAY}")
    return day


def format_month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_end(first: date) -> date:
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def week_end_moment(monday: date, close_hour: int = 6) -> datetime:
    """A week has ended at 06:00 local on the Monday after it (after its last night window)."""
    nxt = monday + timedelta(days=7)
    return datetime(nxt.year, nxt.month, nxt.day, close_hour, tzinfo=LOCAL_TZ)
