"""Registry request and response bodies (wire enums from shared.contracts.enums)."""

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from services.registry.identity import BankAccount, BankName, IdCardNo
from shared.contracts.enums import (
    CadreCategory,
    HonorLevel,
    Position,
    PostingEndReason,
    PostingRole,
    Role,
    UnitKind,
)
from shared.contracts.registry import Geofence as GeofenceOut
from shared.types import Day, MultilineText, Text

Name = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Title = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Code = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 -]{4,30}$")]


def _utc(value: datetime) -> datetime:
    # SQLite hands timestamps back naive; they were written in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


Stamp = Annotated[datetime, AfterValidator(_utc)]
Username = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.@-]{3,100}$")
]


class TrainingKind(StrEnum):
    concentrated = "concentrated"  # 短期集中培训
    on_site_observation = "on_site_observation"  # 示范点现场观摩
    field_teaching = "field_teaching"  # 专家田间地头现场教学


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


# Users


class UserCreate(_In):
    username: Username
    password: Text = Field(max_length=200)
    roles: list[Role] = Field(min_length=1)
    unit_id: uuid.UUID | None = None
    cadre_id: uuid.UUID | None = None


class UserUpdate(_In):
    roles: list[Role] | None = Field(default=None, min_length=1)
    unit_id: uuid.UUID | None = None
    cadre_id: uuid.UUID | None = None


class PasswordChange(_In):
    current_password: Text = Field(max_length=200)
    new_password: Text = Field(max_length=200)


class PasswordReset(_In):
    new_password: Text = Field(max_length=200)


class UserPublic(_Out):
    id: uuid.UUID
    username: str
    roles: list[Role]
    unit_id: uuid.UUID | None
    cadre_id: uuid.UUID | None
    active: bool
    created_at: Stamp
    updated_at: Stamp


# Org units


class Geofence(_In):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_m: float = Field(gt=0, le=100_000)


class UnitCreate(_In):
    code: Code
    name: Title
    kind: UnitKind
    parent_id: uuid.UUID | None = None
    geofence: Geofence | None = None
    special_difficulty: bool = False
    # Go-live of a county or township (local date); unset: no restriction.
    assessment_start_date: Day | None = None


class UnitUpdate(_In):
    """Rename, recode, re-fence, flag or set go-live (fields left out stay; `geofence: null`
    and `assessment_start_date: null` clear them)."""

    code: Code | None = None
    name: Title | None = None
    geofence: Geofence | None = None
    special_difficulty: bool | None = None
    assessment_start_date: Day | None = None


class UnitMove(_In):
    parent_id: uuid.UUID


class UnitPublic(_Out):
    id: uuid.UUID
    code: str
    name: str
    kind: UnitKind
    parent_id: uuid.UUID | None
    geofence: GeofenceOut | None
    special_difficulty: bool
    assessment_start_date: date | None = None
    active: bool
    created_at: Stamp
    updated_at: Stamp

    @model_validator(mode="before")
    @classmethod
    def _fence(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return data
        fence = (
            {"lat": data.lat, "lon": data.lon, "radius_m": data.radius_m}
            if data.lat is not None
            else None
        )
        return {k: getattr(data, k) for k in cls.model_fields if k != "geofence"} | {
            "geofence": fence
        }


class UnitDetail(UnitPublic):
    ancestors: list[uuid.UUID] = []


class UnitChangePublic(_Out):
    id: uuid.UUID
    unit_id: uuid.UUID
    change: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changed_by: uuid.UUID | None
    changed_at: Stamp


# Cadres


class CadreCreate(_In):
    name: Name
    phone: Phone
    category: CadreCategory
    position: Position | None = None
    unit_id: uuid.UUID | None = None
    # Village cadres: held since (pay starts there); the registration date when absent.
    position_since: Day | None = None
    id_card_no: IdCardNo | None = None
    bank_name: BankName | None = None
    bank_account: BankAccount | None = None


class CadreUpdate(_In):
    name: Name | None = None
    phone: Phone | None = None
    category: CadreCategory | None = None
    position: Position | None = None
    unit_id: uuid.UUID | None = None
    effective_date: Day | None = None
    position_since: Day | None = None
    id_card_no: IdCardNo | None = None
    bank_name: BankName | None = None
    bank_account: BankAccount | None = None


class CadreStatus(_In):
    effective_date: Day | None = None


class CadrePublic(_Out):
    id: uuid.UUID
    name: str
    phone: str
    category: CadreCategory
    position: Position | None
    unit_id: uuid.UUID | None
    active: bool
    position_since: date | None = None
    # Masked (first 4, last 4): no read ever carries the number itself.
    id_card_no: str | None = Field(
        default=None, validation_alias=AliasChoices("id_card_no_masked", "id_card_no")
    )
    bank_name: str | None = None
    bank_account: str | None = Field(
        default=None, validation_alias=AliasChoices("bank_account_masked", "bank_account")
    )
    created_at: Stamp
    updated_at: Stamp


# Postings


class PostingCreate(_In):
    cadre_id: uuid.UUID
    unit_id: uuid.UUID
    role: PostingRole
    start_date: Day
    end_date: Day | None = None


class PostingEnd(_In):
    end_date: Day
    reason: PostingEndReason


class PostingReplace(_In):
    """End posting {id} and open its successor in one transaction (调整).

    The successor defaults to the same cadre, unit and role, starting the day after
    `end_date`: name `cadre_id` to put someone else in the post, `unit_id` (and `role`)
    to move the cadre elsewhere.
    """

    end_date: Day
    reason: PostingEndReason = PostingEndReason.adjusted
    cadre_id: uuid.UUID | None = None
    unit_id: uuid.UUID | None = None
    role: PostingRole | None = None
    start_date: Day | None = None
    new_end_date: Day | None = None


class PostingPublic(_Out):
    id: uuid.UUID
    cadre_id: uuid.UUID
    unit_id: uuid.UUID
    role: PostingRole
    start_date: date
    end_date: date | None
    end_reason: PostingEndReason | None
    created_at: Stamp


class PostingReplaced(BaseModel):
    ended: PostingPublic
    opened: PostingPublic


# Honors


class HonorCreate(_In):
    cadre_id: uuid.UUID
    level: HonorLevel
    year: int = Field(ge=1949, le=2100)
    title: Title


class HonorRevoke(_In):
    reason: MultilineText = Field(min_length=1, max_length=500)


class HonorPublic(_Out):
    id: uuid.UUID
    cadre_id: uuid.UUID
    level: HonorLevel
    year: int
    title: str
    revoked_at: Stamp | None
    revoke_reason: str | None
    created_at: Stamp


# Households and pairings


class HouseholdCreate(_In):
    village_id: uuid.UUID
    code: Code
    head_name: Name
    members: int | None = Field(default=None, ge=1, le=100)
    address: Text | None = Field(default=None, max_length=300)


class HouseholdPublic(_Out):
    id: uuid.UUID
    village_id: uuid.UUID
    code: str
    head_name: str
    members: int | None
    address: str | None
    created_at: Stamp


class PairingCreate(_In):
    cadre_id: uuid.UUID
    household_id: uuid.UUID
    start_date: Day
    end_date: Day | None = None


class PairingEnd(_In):
    end_date: Day


class PairingPublic(_Out):
    id: uuid.UUID
    cadre_id: uuid.UUID
    household_id: uuid.UUID
    village_id: uuid.UUID
    start_date: date
    end_date: date | None
    created_at: Stamp


# Training


class TrainingCreate(_In):
    kind: TrainingKind
    title: Title
    unit_id: uuid.UUID
    start_date: Day
    end_date: Day | None = None
    location: Text | None = Field(default=None, max_length=300)
    attendee_ids: list[uuid.UUID] = Field(default_factory=list, max_length=5000)


class AttendeesAdd(_In):
    cadre_ids: list[uuid.UUID] = Field(min_length=1, max_length=5000)


class TrainingPublic(_Out):
    id: uuid.UUID
    kind: TrainingKind
    title: str
    unit_id: uuid.UUID
    start_date: date
    end_date: date
    location: str | None
    attendee_count: int = 0
    created_at: Stamp


class AttendeePublic(BaseModel):
    cadre_id: uuid.UUID
    name: str


class TrainingTally(BaseModel):
    sessions: int
    participant_times: int


class TrainingPeriod(TrainingTally):
    period: str


class TrainingKindTally(TrainingTally):
    kind: TrainingKind


class TrainingStats(TrainingTally):
    date_from: date = Field(serialization_alias="from")
    date_to: date = Field(serialization_alias="to")
    unit_id: uuid.UUID | None
    period: str
    periods: list[TrainingPeriod]
    by_kind: list[TrainingKindTally]


# Imports


class ImportProblem(BaseModel):
    row: int
    field: str
    problem: str


class ImportResult(BaseModel):
    dry_run: bool
    rows: int
    created: dict[str, int]
