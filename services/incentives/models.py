"""Incentives tables, on the service's own metadata.

Projections of registry and assessment events (each row remembers the envelope `event_id`
and type that last shaped it, so every stipend item can name its source), effective-dated
policy versions, stored eligibility per cadre and month, and stipend batches.
Months are stored as 'YYYY-MM' strings: they sort and compare as text.
"""

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field

from shared.db import service_base
from shared.outbox import kernel_tables
from shared.versions import versions_table

Base = service_base("incentives")
metadata = Base.metadata
outbox, inbox = kernel_tables(metadata)
entity_versions = versions_table(metadata)


class _Sourced(Base):
    event_id: str = Field(max_length=36)
    event_type: str = Field(max_length=100)


class Unit(_Sourced, table=True):
    __tablename__ = "units"
    unit_id: uuid.UUID = Field(primary_key=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=20)
    parent_id: uuid.UUID | None = None


class UnitAncestor(Base, table=True):
    """Closure rows (self at depth 0), so a subtree is one indexed lookup."""

    __tablename__ = "unit_ancestors"
    unit_id: uuid.UUID = Field(primary_key=True)
    ancestor_id: uuid.UUID = Field(primary_key=True, index=True)
    depth: int


class Cadre(_Sourced, table=True):
    """The cadre's latest known state (names on lines, categories for promotion lists)."""

    __tablename__ = "cadres"
    cadre_id: uuid.UUID = Field(primary_key=True)
    name: str = Field(max_length=200)
    category: str = Field(max_length=40)
    position: str | None = Field(default=None, max_length=40)
    active: bool = True
    effective_date: date
    # Where the cadre belongs when no posting says (village cadres): their lines file there.
    unit_id: uuid.UUID | None = None
    # The current position is held since (pay by position starts there; None: the first
    # state's date). The bank details for the payment file: ID card and account stay the
    # registry's ciphertext (shared/fieldcrypt.py), opened only while writing the file.
    position_since: date | None = None
    held_position: str | None = Field(default=None, max_length=40)  # the newest version's
    id_card_no_enc: str | None = Field(default=None, max_length=200)
    bank_name: str | None = Field(default=None, max_length=100)
    bank_account_enc: str | None = Field(default=None, max_length=200)


class CadreState(_Sourced, table=True):
    """Effective-dated history: pay by position follows the state in force on each day."""

    __tablename__ = "cadre_states"
    __table_args__ = (
        Index("ix_cadre_states_category_effective_date", "category", "effective_date"),
    )
    cadre_id: uuid.UUID = Field(primary_key=True)
    effective_date: date = Field(primary_key=True)
    category: str = Field(max_length=40)
    position: str | None = Field(default=None, max_length=40)
    active: bool = True


class Posting(_Sourced, table=True):
    __tablename__ = "postings"
    __table_args__ = (Index("ix_postings_start_date_end_date", "start_date", "end_date"),)
    posting_id: uuid.UUID = Field(primary_key=True)
    cadre_id: uuid.UUID = Field(index=True)
    unit_id: uuid.UUID
    role: str = Field(max_length=40)
    start_date: date
    end_date: date | None = None


class Honor(_Sourced, table=True):
    __tablename__ = "honors"
    honor_id: uuid.UUID = Field(primary_key=True)
    cadre_id: uuid.UUID = Field(index=True)
    level: str = Field(max_length=20)
    year: int
    title: str = Field(max_length=300)
    revoked: bool = False


class PresenceVerdict(_Sourced, table=True):
    """The latest verdict per cadre and week (a re-judgement replaces it)."""

    __tablename__ = "presence_verdicts"
    __table_args__ = (Index("ix_presence_verdicts_week_sunday", "week_sunday"),)
    cadre_id: uuid.UUID = Field(primary_key=True)
    week: str = Field(primary_key=True, max_length=8)
    week_sunday: date
    compliant: bool
    days: int
    nights: int
    leave_days: int


class NegativeEntry(_Sourced, table=True):
    __tablename__ = "negative_entries"
    __table_args__ = (
        Index("ix_negative_entries_subject_id_entry_date", "subject_id", "entry_date"),
    )
    entry_id: uuid.UUID = Field(primary_key=True)
    subject_type: str = Field(max_length=10)
    subject_id: uuid.UUID
    reason: str = Field(max_length=20)
    entry_date: date
    status: str = Field(max_length=10)


class AccountabilityAction(_Sourced, table=True):
    __tablename__ = "accountability_actions"
    __table_args__ = (
        Index("ix_accountability_actions_cadre_id_entry_date", "cadre_id", "entry_date"),
    )
    action_id: uuid.UUID = Field(primary_key=True)
    cadre_id: uuid.UUID
    entry_id: uuid.UUID
    entry_date: date
    rung: str = Field(max_length=20)
    count: int
    status: str = Field(max_length=20)
    measure: str | None = Field(default=None, max_length=40)


class MonthlyScore(_Sourced, table=True):
    __tablename__ = "monthly_scores"
    cadre_id: uuid.UUID = Field(primary_key=True)
    month: str = Field(primary_key=True, max_length=7, index=True)
    township_id: uuid.UUID | None = None
    score: Decimal = Field(max_digits=12, decimal_places=4)
    rank: int


class PolicyVersion(Base, table=True):
    """One effective-dated version of one policy kind; `version` is `kind@effective_from`.

    Four eyes (DESIGN §8): a version is `proposed` by one user and in force only once
    `approved` by another; a proposal may be `rejected` (or `withdrawn` by its proposer).
    `live_version` is the label while proposed or approved, NULL after a refusal, so a
    label is unique among live versions and a refused month can be proposed again.
    """

    __tablename__ = "policy_versions"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    version: str = Field(max_length=80, index=True)
    live_version: str | None = Field(default=None, max_length=80, unique=True)
    status: str = Field(
        default="approved", max_length=20, sa_column_kwargs={"server_default": "approved"}
    )
    proposed_by_name: str = Field(
        default="", max_length=100, sa_column_kwargs={"server_default": ""}
    )
    decided_by: uuid.UUID | None = None
    decided_by_name: str = Field(
        default="", max_length=100, sa_column_kwargs={"server_default": ""}
    )
    decided_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    decision_note: str = Field(default="", max_length=500, sa_column_kwargs={"server_default": ""})
    kind: str = Field(max_length=40, index=True)
    effective_from: date
    effective_to: date | None = None
    amounts: str = Field(sa_type=Text)  # JSON object of decimal strings
    params: str = Field(sa_type=Text)  # JSON object
    note: str = Field(default="", max_length=500)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    created_by: uuid.UUID | None = None
    # Entity version (shared.versions): bumped under the row lock with each event about it.
    entity_version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class Eligibility(Base, table=True):
    """What a cadre is due for a month, with its items (JSON), kept current by events."""

    __tablename__ = "eligibility"
    cadre_id: uuid.UUID = Field(primary_key=True)
    month: str = Field(primary_key=True, max_length=7, index=True)
    gross: Decimal = Field(max_digits=12, decimal_places=2)
    total_deductions: Decimal = Field(max_digits=12, decimal_places=2)
    # gross - deductions_applied = net; total_deductions - deductions_applied = carried_forward
    deductions_applied: Decimal = Field(
        default=Decimal("0.00"),
        max_digits=12,
        decimal_places=2,
        sa_column_kwargs={"server_default": "0"},
    )
    carried_forward: Decimal = Field(
        default=Decimal("0.00"),
        max_digits=12,
        decimal_places=2,
        sa_column_kwargs={"server_default": "0"},
    )
    net: Decimal = Field(max_digits=12, decimal_places=2)
    items: str = Field(sa_type=Text)
    policy_versions: str = Field(max_length=1000)
    computed_at: datetime = Field(sa_type=DateTime(timezone=True))


class StipendBatch(Base, table=True):
    __tablename__ = "stipend_batches"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    month: str = Field(max_length=7, unique=True)
    status: str = Field(max_length=10, index=True)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    created_by: uuid.UUID | None = None
    locked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    locked_by: uuid.UUID | None = None
    paid_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    paid_by: uuid.UUID | None = None
    content_hash: str | None = Field(default=None, max_length=64)
    # The rendered resource, frozen at lock: GET of a locked batch is byte-stable.
    frozen: str | None = Field(default=None, sa_type=Text)
    # Entity version (shared.versions): bumped under the row lock with each event about it.
    entity_version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class StipendLine(Base, table=True):
    __tablename__ = "stipend_lines"
    __table_args__ = (
        UniqueConstraint("batch_id", "cadre_id", "for_month", "kind"),
        Index("ix_stipend_lines_batch_id_unit_id", "batch_id", "unit_id"),
        Index("ix_stipend_lines_batch_id_township_id", "batch_id", "township_id"),
        Index("ix_stipend_lines_batch_id_deductions_total", "batch_id", "deductions_total"),
        Index("ix_stipend_lines_for_month_cadre_id", "for_month", "cadre_id"),
    )
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    batch_id: uuid.UUID
    cadre_id: uuid.UUID
    cadre_name: str = Field(max_length=200)
    unit_id: uuid.UUID | None = None
    township_id: uuid.UUID | None = None
    # Names as of the line's (re)build; a locked line keeps them.
    township_name: str | None = Field(default=None, max_length=200)
    village_id: uuid.UUID | None = None
    village_name: str | None = Field(default=None, max_length=200)
    kind: str = Field(max_length=12)
    for_month: str = Field(max_length=7)
    gross: Decimal = Field(max_digits=12, decimal_places=2)
    deductions_total: Decimal = Field(max_digits=12, decimal_places=2)
    deductions_applied: Decimal = Field(
        default=Decimal("0.00"),
        max_digits=12,
        decimal_places=2,
        sa_column_kwargs={"server_default": "0"},
    )
    carried_forward: Decimal = Field(
        default=Decimal("0.00"),
        max_digits=12,
        decimal_places=2,
        sa_column_kwargs={"server_default": "0"},
    )
    net: Decimal = Field(max_digits=12, decimal_places=2)
    policy_version: str = Field(max_length=1000)
    # {"components": [...], "deductions": [...]}: the month's items (regular) or what
    # changed in them since the locked lines (adjustment), as canonical JSON.
    items: str | None = Field(default=None, sa_type=Text)


class BatchGuard(Base, table=True):
    """One row: batch builds and locks update it, event handlers share-lock it (PostgreSQL),
    so a handler never writes lines into a batch that is being built or locked."""

    __tablename__ = "batch_guard"
    id: int = Field(primary_key=True)
    generation: int = 0


units = Unit.__table__
unit_ancestors = UnitAncestor.__table__
cadres = Cadre.__table__
cadre_states = CadreState.__table__
postings = Posting.__table__
honors = Honor.__table__
verdicts = PresenceVerdict.__table__
entries = NegativeEntry.__table__
actions = AccountabilityAction.__table__
scores = MonthlyScore.__table__
policy_versions = PolicyVersion.__table__
eligibility = Eligibility.__table__
batches = StipendBatch.__table__
lines = StipendLine.__table__
batch_guard = BatchGuard.__table__
