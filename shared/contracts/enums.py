"""Enums on the wire (DESIGN.md §7.1): snake_case values; the Chinese terms are labels."""

from enum import StrEnum


class UnitKind(StrEnum):
    county = "county"
    township = "township"
    village = "village"
    group = "group"


class CadreCategory(StrEnum):
    county_leader = "county_leader"
    first_secretary = "first_secretary"
    resident_cadre = "resident_cadre"
    front_group_member = "front_group_member"
    responsible_person = "responsible_person"
    village_cadre = "village_cadre"
    agricultural_expert = "agricultural_expert"


class Position(StrEnum):
    party_secretary = "party_secretary"
    committee_director = "committee_director"
    deputy_director = "deputy_director"
    committee_member = "committee_member"


class PostingRole(StrEnum):
    commander = "commander"
    first_secretary = "first_secretary"
    team_leader = "team_leader"
    member = "member"
    expert = "expert"


class PostingEndReason(StrEnum):
    completed = "completed"
    recalled = "recalled"
    adjusted = "adjusted"


class Role(StrEnum):
    cadre = "cadre"
    inspector = "inspector"
    org_admin = "org_admin"
    finance = "finance"
    auditor = "auditor"


class HonorLevel(StrEnum):
    county = "county"
    prefecture = "prefecture"
    province = "province"
    national = "national"


class SignInStatus(StrEnum):
    accepted = "accepted"
    flagged = "flagged"
    rejected = "rejected"


class SignInReason(StrEnum):
    outside_geofence = "outside_geofence"
    not_posted = "not_posted"
    implausible_travel = "implausible_travel"
    mock_location = "mock_location"
    late_sync = "late_sync"


class LeaveKind(StrEnum):
    personal = "personal"
    sick = "sick"
    annual = "annual"
    official = "official"


class LeaveStatus(StrEnum):
    requested = "requested"
    approved = "approved"
    rejected = "rejected"
    cancelled = "cancelled"
    returned = "returned"


class SubjectType(StrEnum):
    cadre = "cadre"
    unit = "unit"


class FindingKind(StrEnum):
    absent_from_post = "absent_from_post"
    false_sign_in = "false_sign_in"
    task_not_done = "task_not_done"
    work_style = "work_style"
    discipline = "discipline"


class Severity(StrEnum):
    minor = "minor"
    major = "major"
    serious = "serious"


class FindingStatus(StrEnum):
    posted = "posted"
    appealed = "appealed"
    dismissed = "dismissed"


class EntryReason(StrEnum):
    presence_week = "presence_week"
    not_returned = "not_returned"
    duty_missed = "duty_missed"
    task_overdue = "task_overdue"
    finding = "finding"


class EntryStatus(StrEnum):
    active = "active"
    revoked = "revoked"


class Rung(StrEnum):
    study_class = "study_class"
    admonition_talk = "admonition_talk"
    penalty = "penalty"


class ActionStatus(StrEnum):
    pending = "pending"
    carried_out = "carried_out"
    cancelled = "cancelled"


class PenaltyMeasure(StrEnum):
    admonishment = "admonishment"
    suspension_for_inspection = "suspension_for_inspection"
    removal_from_leadership_post = "removal_from_leadership_post"
    dismissal = "dismissal"
    reassignment = "reassignment"


class BatchStatus(StrEnum):
    draft = "draft"
    locked = "locked"
    paid = "paid"
