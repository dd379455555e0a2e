"""Request and response shapes of /incentives/v1 (money: decimal strings with 2 places)."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from services.incentives.policies import PolicyKind
from shared.contracts.enums import BatchStatus
from shared.types import Day, JsonObject, Month, MultilineText

Money = str  # "2000.00": Decimal rendered with 2 places, never a float


class Source(BaseModel):
    type: str = Field(description="the event type behind the item")
    id: str = Field(description="that event's envelope event_id")


class EligibilityItem(BaseModel):
    kind: str
    amount: Money
    reason: str
    source: Source
    policy_version: str


class EligibilityOut(BaseModel):
    cadre_id: str
    cadre_name: str | None
    month: str
    components: list[EligibilityItem]
    deductions: list[EligibilityItem]
    gross: Money
    total_deductions: Money = Field(description="every deduction of the month, carried-in too")
    deductions_applied: Money = Field(description="what gross pay took: gross - net")
    carried_forward: Money = Field(description="the rest, deducted in the next month")
    net: Money


PolicyStatus = Literal["proposed", "approved", "rejected", "withdrawn"]


class UserRef(BaseModel):
    id: str | None
    username: str | None


class PolicyIn(BaseModel):
    kind: PolicyKind
    effective_from: Day
    effective_to: Day | None = None
    amounts: JsonObject = {}
    params: JsonObject = {}
    note: MultilineText = Field(default="", max_length=500)


class PolicyOut(BaseModel):
    id: str
    version: str
    kind: str
    effective_from: str
    effective_to: str | None
    amounts: dict[str, Money]
    params: dict[str, Any]
    note: str
    created_at: str
    status: PolicyStatus = Field(description="proposed, approved (in force), rejected, withdrawn")
    proposed_by: UserRef | None = Field(description="who proposed it (None: the system)")
    proposed_at: str
    approved_by: UserRef | None = Field(
        description="the second user (None: not approved, or the system)"
    )
    approved_at: str | None
    rejected_by: UserRef | None = Field(description="who rejected it (or its proposer: withdrawn)")
    rejected_at: str | None
    decision_note: str


class PolicyRejection(BaseModel):
    note: MultilineText = Field(default="", max_length=500)


class BatchIn(BaseModel):
    month: Month


class TownshipTotals(BaseModel):
    township_id: str | None
    township_name: str | None
    lines: int
    gross: Money
    deductions_total: Money
    deductions_applied: Money
    carried_forward: Money
    net: Money


class BatchTotals(BaseModel):
    lines: int
    gross: Money
    deductions_total: Money
    deductions_applied: Money
    carried_forward: Money
    net: Money
    by_township: list[TownshipTotals]


class BatchOut(BaseModel):
    id: str
    month: str
    status: BatchStatus
    totals: BatchTotals
    content_hash: str | None
    policy_versions: list[str]
    created_at: str
    locked_at: str | None
    paid_at: str | None


class LineOut(BaseModel):
    """gross - deductions_applied = net (an adjustment: of its signed deltas)."""

    cadre_id: str
    cadre_name: str
    village_id: str | None
    village_name: str | None
    township_id: str | None
    township_name: str | None
    kind: str
    for_month: str
    gross: Money
    deductions_total: Money
    deductions_applied: Money
    carried_forward: Money
    net: Money
    policy_version: str
    components: list[EligibilityItem]
    deductions: list[EligibilityItem]


class CadreLineOut(LineOut):
    """A line of the cadre's, with the batch it is in."""

    batch_id: str
    batch_month: str
    batch_status: BatchStatus


class ScoreMonth(BaseModel):
    month: str
    score: str
    rank: int


class PromotionCandidate(BaseModel):
    cadre_id: str
    cadre_name: str
    category: str
    channel: str
    township_id: str | None
    months: list[ScoreMonth]
    average_score: str
    policy_version: str
