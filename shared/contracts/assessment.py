"""Events assessment publishes on `frontline.assessment` (key: cadre id, or unit id).

State-carrying: each event holds the whole current state of its record and the record's
`entity_version` (shared.versions: a presence week per cadre and week, a negative entry, an
accountability action, a monthly score per cadre and month), so a consumer upserts by id
and the newest version wins whatever the order of delivery.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

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
from shared.events import EventPayload, event_type


@event_type("assessment.signin.recorded")
class SignInRecorded(EventPayload):
    sign_in_id: UUID
    cadre_id: UUID
    device_time: datetime
    received_at: datetime
    status: SignInStatus
    reasons: list[SignInReason]
    counted: bool


class _Presence(EventPayload):
    cadre_id: UUID
    week: str
    week_sunday: date
    unit_id: UUID | None = None
    days: int
    nights: int
    leave_days: int
    compliant: bool
    entity_version: int


@event_type("assessment.presence.judged")
class PresenceJudged(_Presence):
    """A week's verdict for a cadre, first given or changed by a re-judgement.

    `judged` false withdraws an earlier verdict (the cadre turned out not to be posted
    all week); such an event carries `compliant` true, so no deduction stays behind.
    """

    judged: bool = True


class _Entry(EventPayload):
    entry_id: UUID
    subject_type: SubjectType
    subject_id: UUID
    unit_id: UUID | None = None
    reason: EntryReason
    source_id: UUID | None = None
    date: date
    month: str
    status: EntryStatus
    severity: str | None = None
    entity_version: int


@event_type("assessment.negative_entry.recorded")
class NegativeEntryRecorded(_Entry):
    pass


@event_type("assessment.negative_entry.revoked")
class NegativeEntryRevoked(_Entry):
    revoked_reason: str = ""


class _Action(EventPayload):
    action_id: UUID
    cadre_id: UUID
    entry_id: UUID
    entry_date: date
    rung: Rung
    count: int
    status: ActionStatus
    measure: PenaltyMeasure | None = None
    note: str = ""
    entity_version: int


@event_type("assessment.accountability.opened")
class AccountabilityOpened(_Action):
    pass


@event_type("assessment.accountability.carried_out")
class AccountabilityCarriedOut(_Action):
    pass


@event_type("assessment.accountability.cancelled")
class AccountabilityCancelled(_Action):
    pass


class _Finding(EventPayload):
    finding_id: UUID
    subject_type: SubjectType
    subject_id: UUID
    kind: FindingKind
    severity: Severity
    observed_at: datetime
    status: FindingStatus
    posted_by: UUID | None = None
    # Sign-ins of the subject cited as evidence (flagged ones, usually); empty when none.
    sign_in_ids: list[UUID] = []


@event_type("assessment.finding.posted")
class FindingPosted(_Finding):
    pass


@event_type("assessment.finding.dismissed")
class FindingDismissed(_Finding):
    reason: str = ""


@event_type("assessment.finding.appealed")
class FindingAppealed(_Finding):
    reason: str = ""


@event_type("assessment.finding.appeal_decided")
class FindingAppealDecided(_Finding):
    upheld: bool
    note: str = ""


@event_type("assessment.leave.changed")
class LeaveChanged(EventPayload):
    leave_id: UUID
    cadre_id: UUID
    kind: LeaveKind
    start_date: date
    end_date: date
    status: LeaveStatus


@event_type("assessment.week.closed")
class WeekClosed(EventPayload):
    week: str
    judged: int
    compliant: int
    non_compliant: int


@event_type("assessment.monthly_score.published")
class MonthlyScorePublished(EventPayload):
    """One cadre's monthly assessment score and rank within the township (一月一考核评比)."""

    cadre_id: UUID
    month: str
    township_id: UUID | None = None
    # None when no part was judged; `rank` None when not ranked (no judged week).
    score: Decimal | None
    rank: int | None
    components: dict[str, Decimal] = {}
    entity_version: int
    ranked: bool = True
    not_ranked_reason: str | None = None


@event_type("assessment.report.published")
class ReportPublished(EventPayload):
    """Weekly dispatch, 10-day summary or monthly assessment report (key: the period)."""

    kind: str
    period: str
    body: dict[str, Any]
