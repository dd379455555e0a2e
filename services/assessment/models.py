"""Assessment tables, on the service's own metadata.

Projections of registry events (units with their ancestor paths, cadres, postings, users)
come first; then what assessment owns. Enum columns hold the wire values as strings, so
no database enum types are needed. Hot paths use `Model.__table__` with Core statements.
"""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Numeric, String, TypeDecorator, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlmodel import Field

from shared.db import service_base
from shared.outbox import kernel_tables
from shared.versions import versions_table

Base = service_base("assessment")
metadata = Base.metadata
outbox, inbox = kernel_tables(metadata)
entity_versions = versions_table(metadata)


class UtcDateTime(TypeDecorator):
    """A moment, stored in UTC and read back tz-aware on SQLite and PostgreSQL alike
    (SQLite would otherwise keep the wall time and drop the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: every moment carries its offset")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


TZ = UtcDateTime()
ACTIVE = sql_text("status = 'active'")
FLAGGED = sql_text("status = 'flagged'")
COUNTED = sql_text("counted")
LIVE = sql_text("status <> 'cancelled'")


def _uuid() -> uuid.UUID:
    return uuid.uuid4()


# --- projections of registry events -------------------------------------------------


class Unit(Base, table=True):
    __tablename__ = "units"

    unit_id: uuid.UUID = Field(primary_key=True)
    code: str = Field(sa_type=String(50))
    name: str = Field(sa_type=String(200))
    kind: str = Field(sa_type=String(20))
    parent_id: uuid.UUID | None = None
    fence_lat: float | None = None
    fence_lon: float | None = None
    fence_radius_m: float | None = None
    special_difficulty: bool = False
    active: bool = True
    # Go-live of a county or township (registry); the latest on a unit's ancestry holds.
    assessment_start_date: date | None = None


class UnitPath(Base, table=True):
    """Closure rows: the unit itself (depth 0) and every ancestor (depth = steps up)."""

    __tablename__ = "unit_paths"
    __table_args__ = (Index("ix_unit_paths_ancestor", "ancestor_id", "unit_id"),)

    unit_id: uuid.UUID = Field(primary_key=True)
    ancestor_id: uuid.UUID = Field(primary_key=True)
    depth: int


class Cadre(Base, table=True):
    __tablename__ = "cadres"

    cadre_id: uuid.UUID = Field(primary_key=True)
    name: str = Field(sa_type=String(200))
    category: str = Field(sa_type=String(30))
    position: str | None = Field(default=None, sa_type=String(30))
    active: bool = True
    # The unit the cadre belongs to when not posted (a village cadre's village).
    unit_id: uuid.UUID | None = None


class Posting(Base, table=True):
    __tablename__ = "postings"
    __table_args__ = (
        Index("ix_postings_cadre", "cadre_id", "start_date"),
        Index("ix_postings_period", "start_date", "end_date"),
    )

    posting_id: uuid.UUID = Field(primary_key=True)
    cadre_id: uuid.UUID
    unit_id: uuid.UUID
    role: str = Field(sa_type=String(30))
    start_date: date
    end_date: date | None = None
    end_reason: str | None = Field(default=None, sa_type=String(20))


class User(Base, table=True):
    __tablename__ = "users"

    user_id: uuid.UUID = Field(primary_key=True)
    username: str = Field(sa_type=String(100))
    roles: list[str] = Field(default_factory=list, sa_type=JSON)
    unit_id: uuid.UUID | None = None
    cadre_id: uuid.UUID | None = Field(default=None, index=True)
    active: bool = True


# --- sign-ins and presence ----------------------------------------------------------


class SignIn(Base, table=True):
    """One sign-in; `day_date`/`night_date` say which presence date it counts for (if any),
    fixed with the policy in force when it was recorded, like its flags."""

    __tablename__ = "sign_ins"
    __table_args__ = (
        UniqueConstraint("cadre_id", "idempotency_key"),
        Index("ix_sign_ins_cadre_time", "cadre_id", "device_time"),
        # Presence tallies (counted sign-ins of a week): index-only scans on PostgreSQL.
        Index("ix_sign_ins_day", "day_date", "cadre_id", postgresql_where=COUNTED),
        Index("ix_sign_ins_night", "night_date", "cadre_id", postgresql_where=COUNTED),
        Index("ix_sign_ins_local", "local_date", "cadre_id"),
        # The review list (review.py): by unit subtree, and flagged ones county-wide.
        Index("ix_sign_ins_unit_time", "unit_id", "device_time", "id"),
        Index(
            "ix_sign_ins_flagged_time",
            "device_time",
            "id",
            sqlite_where=FLAGGED,
            postgresql_where=FLAGGED,
        ),
    )

    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    cadre_id: uuid.UUID
    idempotency_key: str = Field(sa_type=String(100))
    device_time: datetime = Field(sa_type=TZ)
    received_at: datetime = Field(sa_type=TZ)
    lat: float
    lon: float
    accuracy_m: float
    device_id: str = Field(sa_type=String(100))
    mock_location: bool = False
    status: str = Field(sa_type=String(20))
    reasons: str = Field(default="", sa_type=String(200))
    counted: bool
    posting_id: uuid.UUID | None = None
    unit_id: uuid.UUID | None = None
    local_date: date
    day_date: date | None = None
    night_date: date | None = None
    # What makes a replay "identical" (signins.request_hash); a reused key with another
    # body is refused. Rows from before the column have none and replay as before.
    request_hash: str | None = Field(default=None, sa_type=String(32))


class Week(Base, table=True):
    """A closed ISO week and the counts of its last closing."""

    __tablename__ = "weeks"

    week: str = Field(primary_key=True, sa_type=String(8))
    monday: date = Field(index=True)
    first_closed_at: datetime = Field(sa_type=TZ)
    closed_at: datetime = Field(sa_type=TZ)
    judged: int = 0
    compliant: int = 0
    non_compliant: int = 0


class PresenceWeek(Base, table=True):
    """The verdict of one cadre's week; `judged` turns false if the cadre drops out."""

    __tablename__ = "presence_weeks"
    __table_args__ = (
        UniqueConstraint("cadre_id", "week"),
        Index("ix_presence_weeks_week", "week", "cadre_id"),
    )

    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    cadre_id: uuid.UUID
    week: str = Field(sa_type=String(8))
    week_sunday: date
    unit_id: uuid.UUID | None = None
    days: int
    nights: int
    leave_days: int
    compliant: bool
    judged: bool = True
    judged_at: datetime = Field(sa_type=TZ)
    # Entity version (shared.versions): bumped with each PresenceJudged, under the row lock.
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


# --- negative list and accountability -----------------------------------------------


class NegativeEntry(Base, table=True):
    __tablename__ = "negative_entries"
    __table_args__ = (
        # One active entry per source: re-judging never files a second one.
        Index(
            "uq_negative_entries_active_source",
            "reason",
            "source_id",
            unique=True,
            sqlite_where=ACTIVE,
            postgresql_where=ACTIVE,
        ),
        Index("ix_negative_entries_month", "month", "date", "id"),
        Index("ix_negative_entries_subject", "subject_id", "date"),
        Index("ix_negative_entries_unit", "unit_id", "month"),
    )

    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    subject_type: str = Field(sa_type=String(10))
    subject_id: uuid.UUID
    unit_id: uuid.UUID | None = None
    reason: str = Field(sa_type=String(20))
    source_id: uuid.UUID
    severity: str | None = Field(default=None, sa_type=String(10))
    date: date
    month: str = Field(sa_type=String(7))
    status: str = Field(default="active", sa_type=String(10))
    created_at: datetime = Field(sa_type=TZ)
    revoked_at: datetime | None = Field(default=None, sa_type=TZ)
    revoked_reason: str = Field(default="", sa_type=String(500))
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class AccountabilityAction(Base, table=True):
    __tablename__ = "accountability_actions"
    __table_args__ = (
        Index("ix_accountability_actions_cadre", "cadre_id", "status", "id"),
        # A re-sequenced ladder cancels an action and opens its entry's next one: one live
        # (pending or carried out) action per entry, any number of cancelled ones.
        Index(
            "uq_accountability_actions_live_entry",
            "entry_id",
            unique=True,
            sqlite_where=LIVE,
            postgresql_where=LIVE,
        ),
        Index("ix_accountability_actions_entry", "entry_id"),
    )

    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    cadre_id: uuid.UUID
    entry_id: uuid.UUID
    entry_date: date
    rung: str = Field(sa_type=String(20))
    count: int
    status: str = Field(default="pending", sa_type=String(20), index=True)
    measure: str | None = Field(default=None, sa_type=String(40))
    note: str = Field(default="", sa_type=String(2000))
    created_at: datetime = Field(sa_type=TZ)
    closed_at: datetime | None = Field(default=None, sa_type=TZ)
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


# --- findings, leave, duty, work logs, tasks ----------------------------------------


class Finding(Base, table=True):
    __tablename__ = "findings"
    __table_args__ = (Index("ix_findings_subject", "subject_id", "posted_at"),)

    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    subject_type: str = Field(sa_type=String(10))
    subject_id: uuid.UUID
    unit_id: uuid.UUID | None = Field(default=None, index=True)
    kind: str = Field(sa_type=String(30))
    severity: str = Field(sa_type=String(10))
    observed_at: datetime = Field(sa_type=TZ)
    description: str = Field(sa_type=String(4000))
    evidence_urls: list[str] = Field(default_factory=list, sa_type=JSON)
    # Sign-ins cited as evidence (ids as strings); the subject's own, checked on posting.
    sign_in_ids: list[str] = Field(
        default_factory=list, sa_type=JSON, sa_column_kwargs={"server_default": "[]"}
    )
    status: str = Field(default="posted", sa_type=String(20), index=True)
    posted_by: uuid.UUID | None = None
    posted_at: datetime = Field(sa_type=TZ)
    entry_id: uuid.UUID | None = None
    dismiss_reason: str = Field(default="", sa_type=String(2000))
    dismissed_at: datetime | None = Field(default=None, sa_type=TZ)
    appeal_reason: str = Field(default="", sa_type=String(2000))
    appealed_at: datetime | None = Field(default=None, sa_type=TZ)
    appeal_upheld: bool | None = None
    appeal_note: str = Field(default="", sa_type=String(2000))
    appeal_decided_at: datetime | None = Field(default=None, sa_type=TZ)


class LeaveRequest(Base, table=True):
    __tablename__ = "leave_requests"
    __table_args__ = (
        Index("ix_leave_requests_cadre", "cadre_id", "start_date"),
        Index("ix_leave_requests_status", "status", "end_date"),
    )

    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    cadre_id: uuid.UUID
    kind: str = Field(sa_type=String(20))
    start_date: date
    end_date: date
    reason: str = Field(default="", sa_type=String(2000))
    status: str = Field(default="requested", sa_type=String(20))
    # Last day that counts as leave: end_date, or the day before an early return.
    counted_until: date
    returned_on: date | None = None
    decided_by: uuid.UUID | None = None
    cancel_reason: str = Field(default="", sa_type=String(2000))
    created_at: datetime = Field(sa_type=TZ)
    updated_at: datetime = Field(sa_type=TZ)


class DutyRoster(Base, table=True):
    __tablename__ = "duty_rosters"

    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    unit_id: uuid.UUID = Field(index=True)
    title: str = Field(default="", sa_type=String(200))
    created_at: datetime = Field(sa_type=TZ)


class Duty(Base, table=True):
    __tablename__ = "duties"
    __table_args__ = (
        UniqueConstraint("roster_id", "cadre_id", "duty_date"),
        Index("ix_duties_date", "duty_date", "cadre_id"),
    )

    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    roster_id: uuid.UUID
    unit_id: uuid.UUID
    cadre_id: uuid.UUID
    duty_date: date


class WorkLog(Base, table=True):
    __tablename__ = "work_logs"
    __table_args__ = (UniqueConstraint("cadre_id", "log_date"),)

    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    cadre_id: uuid.UUID
    log_date: date
    text: str = Field(sa_type=String(8000))
    households_visited: int = 0
    household_ids: list[str] = Field(default_factory=list, sa_type=JSON)
    created_at: datetime = Field(sa_type=TZ)


class Task(Base, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_open", "status", "deadline"),
        Index("ix_tasks_assignee", "assignee_id", "deadline"),
        Index("ix_tasks_unit", "unit_id", "quarter"),
    )

    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    unit_id: uuid.UUID
    quarter: str = Field(sa_type=String(7))
    title: str = Field(sa_type=String(500))
    description: str = Field(default="", sa_type=String(4000))
    assignee_id: uuid.UUID
    deadline: date
    status: str = Field(default="open", sa_type=String(10))
    done_on: date | None = None
    # Set once the task was found overdue: the violation is recorded once per task.
    overdue_entry_id: uuid.UUID | None = None
    created_at: datetime = Field(sa_type=TZ)


# --- cadence: reports and monthly scores --------------------------------------------


class MonthlyScore(Base, table=True):
    __tablename__ = "monthly_scores"
    __table_args__ = (Index("ix_monthly_scores_township", "month", "township_id", "rank"),)

    cadre_id: uuid.UUID = Field(primary_key=True)
    month: str = Field(primary_key=True, sa_type=String(7))
    township_id: uuid.UUID | None = None
    # Where the latest posting of the month was (a village or a group): names on reads.
    unit_id: uuid.UUID | None = None
    # None only when no part of the score was judged (no closed week, no task due).
    score: Decimal | None = Field(default=None, sa_type=Numeric(7, 2))
    # None when not ranked: no judged week in the month (`not_ranked_reason` says so).
    rank: int | None = None
    ranked: bool = Field(default=True, sa_column_kwargs={"server_default": sql_text("true")})
    not_ranked_reason: str | None = Field(default=None, sa_type=String(40))
    components: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    updated_at: datetime = Field(sa_type=TZ)
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class Report(Base, table=True):
    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("kind", "period"),)

    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    kind: str = Field(sa_type=String(30))
    period: str = Field(sa_type=String(12))
    body: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    published_at: datetime = Field(sa_type=TZ)
