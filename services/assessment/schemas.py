"""Request and response bodies of the assessment API (DESIGN.md §7, §7.1)."""

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from shared.contracts.enums import (
    ActionStatus,
    EntryReason,
    EntryStatus,
    FindingKind,
    FindingStatus,
    LeaveKind,
    LeaveStatus,
    PenaltyMeasure,
    Rung,
    Severity,
    SignInReason,
    SignInStatus,
    SubjectType,
)
from shared.types import Day, Moment, MultilineText
from shared.types import Text as Line

Lat = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Lon = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
Text = Annotated[MultilineText, Field(max_length=2000)]
Money = Annotated[Decimal, PlainSerializer(lambda v: f"{v:.2f}", return_type=str)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- sign-ins -------------------------------------------------------------------------


class SignInCreate(BaseModel):
    # Lenient about extra fields: a queued item from another app version still counts.
    model_config = ConfigDict(extra="ignore")

    idempotency_key: Line = Field(min_length=1, max_length=100)
    cadre_id: uuid.UUID
    device_time: Moment
    lat: Lat
    lon: Lon
    accuracy_m: float = Field(ge=0, allow_inf_nan=False)
    device_id: Line = Field(default="", max_length=100)
    mock_location: bool = False


class SignInPublic(BaseModel):
    id: uuid.UUID
    idempotency_key: str
    cadre_id: uuid.UUID
    device_time: datetime
    received_at: datetime
    status: SignInStatus
    reasons: list[SignInReason]


class SignInReview(SignInPublic):
    """A sign-in as a reviewer reads it: where, on what device, and where it is filed."""

    cadre_name: str | None
    lat: float
    lon: float
    accuracy_m: float
    device_id: str
    mock_location: bool
    counted: bool
    local_date: date
    unit_id: uuid.UUID | None
    unit_name: str | None


class SignInRejected(BaseModel):
    status: SignInStatus = SignInStatus.rejected
    code: str
    field: str
    detail: str = ""
    index: int
    idempotency_key: str | None = None


class SignInBatch(Strict):
    # Items are checked one by one, so one bad item is rejected alone.
    items: list[Any]


class SignInBatchResult(BaseModel):
    results: list[SignInPublic | SignInRejected]


# --- presence and weeks ----------------------------------------------------------------


class Presence(BaseModel):
    cadre_id: uuid.UUID
    week: str
    days: int
    nights: int
    leave_days: int
    compliant: bool
    judged: bool


class WeekClose(BaseModel):
    week: str
    judged: int
    compliant: int
    non_compliant: int


# --- negative list and accountability ---------------------------------------------------


class Named(BaseModel):
    """Names next to the ids, from the registry projections (None while unknown there)."""

    unit_name: str | None = None
    township_id: uuid.UUID | None = None
    township_name: str | None = None


class NegativeEntryPublic(Named):
    id: uuid.UUID
    subject_type: SubjectType
    subject_id: uuid.UUID
    subject_name: str | None = None
    unit_id: uuid.UUID | None
    reason: EntryReason
    source_id: uuid.UUID
    severity: str | None
    date: date
    month: str
    status: EntryStatus


class ActionPublic(Named):
    id: uuid.UUID
    cadre_id: uuid.UUID
    cadre_name: str | None = None
    entry_id: uuid.UUID
    entry_date: date
    rung: Rung
    count: int
    status: ActionStatus
    measure: PenaltyMeasure | None
    note: str
    # What can be appealed (listed actions): the entry behind the action, and the finding
    # behind that entry, if any, with its appeal deadline.
    reason: EntryReason | None = None
    source_id: uuid.UUID | None = None
    unit_id: uuid.UUID | None = None
    finding_id: uuid.UUID | None = None
    appeal_deadline: datetime | None = None
    appealable: bool = False


class CarryOut(Strict):
    measure: PenaltyMeasure | None = None
    note: Text = ""


# --- findings -----------------------------------------------------------------------------


class FindingCreate(Strict):
    subject_type: SubjectType
    subject_id: uuid.UUID
    kind: FindingKind
    severity: Severity
    observed_at: Moment
    description: MultilineText = Field(min_length=1, max_length=4000)
    evidence_urls: list[Annotated[Line, Field(min_length=1, max_length=1000)]] = Field(
        default_factory=list, max_length=50
    )
    # Sign-ins of the subject cited as evidence (the cadre's, or of a cadre in the unit).
    sign_in_ids: list[uuid.UUID] = Field(default_factory=list, max_length=20)


class FindingPublic(Named):
    id: uuid.UUID
    subject_type: SubjectType
    subject_id: uuid.UUID
    subject_name: str | None = None
    unit_id: uuid.UUID | None
    kind: FindingKind
    severity: Severity
    observed_at: datetime
    description: str
    evidence_urls: list[str]
    sign_in_ids: list[uuid.UUID] = []
    status: FindingStatus
    posted_by: uuid.UUID | None
    posted_at: datetime
    entry_id: uuid.UUID | None
    dismiss_reason: str
    appeal_reason: str
    appealed_at: datetime | None
    appeal_upheld: bool | None
    appeal_note: str
    # posted_at + the appeal window (7 days); appealable: posted, not appealed, window open.
    appeal_deadline: datetime
    appealable: bool


class Reason(Strict):
    reason: MultilineText = Field(min_length=1, max_length=2000)


class AppealDecision(Strict):
    upheld: bool
    note: Text = ""


# --- leave --------------------------------------------------------------------------------


class LeaveCreate(Strict):
    cadre_id: uuid.UUID
    start_date: Day
    end_date: Day
    kind: LeaveKind
    reason: Text = ""


class LeavePublic(BaseModel):
    id: uuid.UUID
    cadre_id: uuid.UUID
    kind: LeaveKind
    start_date: date
    end_date: date
    reason: str
    status: LeaveStatus
    returned_on: date | None
    cancel_reason: str


# --- duty, work logs, tasks -----------------------------------------------------------


class DutyItem(Strict):
    cadre_id: uuid.UUID
    duty_date: Day


class RosterCreate(Strict):
    unit_id: uuid.UUID
    title: Line = Field(default="", max_length=200)
    duties: list[DutyItem] = Field(min_length=1, max_length=1000)


class DutyPublic(BaseModel):
    id: uuid.UUID
    cadre_id: uuid.UUID
    duty_date: date


class RosterPublic(BaseModel):
    id: uuid.UUID
    unit_id: uuid.UUID
    title: str
    duties: list[DutyPublic]


class WorkLogCreate(Strict):
    cadre_id: uuid.UUID
    log_date: Day
    text: MultilineText = Field(min_length=1, max_length=8000)
    households_visited: int = Field(default=0, ge=0, le=10_000)
    household_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)


class WorkLogPublic(BaseModel):
    id: uuid.UUID
    cadre_id: uuid.UUID
    log_date: date
    text: str
    households_visited: int
    household_ids: list[uuid.UUID]


class TaskCreate(Strict):
    unit_id: uuid.UUID
    quarter: str = Field(pattern=r"^\d{4}-Q[1-4]$", examples=["2026-Q4"])
    title: Line = Field(min_length=1, max_length=500)
    description: MultilineText = Field(default="", max_length=4000)
    assignee_id: uuid.UUID
    deadline: Day


class TaskPublic(BaseModel):
    id: uuid.UUID
    unit_id: uuid.UUID
    quarter: str
    title: str
    description: str
    assignee_id: uuid.UUID
    deadline: date
    status: str
    done_on: date | None
    overdue_entry_id: uuid.UUID | None


# --- reports ---------------------------------------------------------------------------


class ReportCreate(Strict):
    kind: str = Field(pattern=r"^(weekly_dispatch|ten_day_summary|monthly_assessment)$")
    period: Line = Field(max_length=12)


class ReportPublic(BaseModel):
    id: uuid.UUID
    kind: str
    period: str
    body: dict[str, Any]
    published_at: datetime


class ScorePublic(BaseModel):
    """`score` is null only when nothing was judged; `rank` is null when not ranked."""

    cadre_id: uuid.UUID
    cadre_name: str | None = None
    month: str
    township_id: uuid.UUID | None
    township_name: str | None = None
    unit_id: uuid.UUID | None = None
    unit_name: str | None = None
    village_id: uuid.UUID | None = None
    village_name: str | None = None
    score: Money | None
    rank: int | None
    ranked: bool = True
    not_ranked_reason: str | None = None
    components: dict[str, Any]
