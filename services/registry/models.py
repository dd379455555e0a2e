"""Registry tables, on the service's own metadata.

Enums are stored as short strings (the wire values of shared.contracts.enums), so adding
a value never needs a migration. The unit tree is kept twice on purpose: `parent_id` says
where a unit hangs, `unit_tree` (a closure table: every ancestor of every unit, itself
included at depth 0) answers "is X in the subtree of Y" and "everything under Y" with one
indexed lookup on either backend, whatever the depth.
"""

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, PrimaryKeyConstraint, UniqueConstraint
from sqlmodel import Field

from shared.db import service_base
from shared.outbox import kernel_tables
from shared.versions import versions_table

Base = service_base("registry")
metadata = Base.metadata
outbox, inbox = kernel_tables(metadata)
entity_versions = versions_table(metadata)


def _ts(nullable: bool = False) -> Any:
    return Field(default=None, sa_type=DateTime(timezone=True), nullable=nullable)


def _version() -> Any:
    """The entity's version (shared.versions): bumped under the row's lock with each event."""
    return Field(default=1, sa_column_kwargs={"server_default": "1"})


class OrgUnit(Base, table=True):
    __tablename__ = "org_unit"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    code: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=16, index=True)
    parent_id: uuid.UUID | None = Field(default=None, foreign_key="org_unit.id", index=True)
    lat: float | None = None
    lon: float | None = None
    radius_m: float | None = None
    special_difficulty: bool = False
    # Go-live (county or township): nothing is judged for the subtree before this date.
    assessment_start_date: date | None = None
    active: bool = True
    version: int = _version()
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class UnitTree(Base, table=True):
    """Closure of the unit tree: (ancestor, unit, depth), depth 0 being the unit itself."""

    __tablename__ = "unit_tree"
    __table_args__ = (
        PrimaryKeyConstraint("ancestor_id", "unit_id"),
        Index("ix_unit_tree_unit_id_depth", "unit_id", "depth"),
    )

    ancestor_id: uuid.UUID = Field(foreign_key="org_unit.id")
    unit_id: uuid.UUID = Field(foreign_key="org_unit.id")
    depth: int


class UnitChange(Base, table=True):
    """History of a unit: created, renamed, recoded, moved, re-fenced, flagged."""

    __tablename__ = "unit_change"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    unit_id: uuid.UUID = Field(foreign_key="org_unit.id", index=True)
    change: str = Field(max_length=32)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    changed_by: uuid.UUID | None = None
    changed_at: datetime = _ts()


class Cadre(Base, table=True):
    __tablename__ = "cadre"
    __table_args__ = (Index("ix_cadre_created_at_id", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=100)
    phone: str = Field(max_length=32, unique=True)
    category: str = Field(max_length=32, index=True)
    position: str | None = Field(default=None, max_length=32)
    # The unit the cadre belongs to: set at creation, then follows the latest posting.
    # Scoped users see the cadres whose unit is in their subtree.
    unit_id: uuid.UUID | None = Field(default=None, foreign_key="org_unit.id", index=True)
    active: bool = True
    # The date the current position has been held since (village cadres; pay starts there).
    position_since: date | None = None
    # Personal fields: AES-GCM ciphertext (shared/fieldcrypt.py) and the masked form reads
    # show; the plaintext is never stored.
    id_card_no_enc: str | None = Field(default=None, max_length=200)
    id_card_no_masked: str | None = Field(default=None, max_length=40)
    bank_name: str | None = Field(default=None, max_length=100)
    bank_account_enc: str | None = Field(default=None, max_length=200)
    bank_account_masked: str | None = Field(default=None, max_length=40)
    version: int = _version()
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Posting(Base, table=True):
    __tablename__ = "posting"
    __table_args__ = (
        Index("ix_posting_cadre_id_start_date", "cadre_id", "start_date"),
        Index("ix_posting_unit_id_start_date", "unit_id", "start_date"),
        Index("ix_posting_created_at_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    cadre_id: uuid.UUID = Field(foreign_key="cadre.id")
    unit_id: uuid.UUID = Field(foreign_key="org_unit.id")
    role: str = Field(max_length=32)
    start_date: date
    end_date: date | None = None
    end_reason: str | None = Field(default=None, max_length=16)
    ended_at: datetime | None = _ts(nullable=True)
    version: int = _version()
    created_at: datetime = _ts()


class Honor(Base, table=True):
    __tablename__ = "honor"
    __table_args__ = (Index("ix_honor_created_at_id", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    cadre_id: uuid.UUID = Field(foreign_key="cadre.id", index=True)
    level: str = Field(max_length=16)
    year: int
    title: str = Field(max_length=200)
    revoked_at: datetime | None = _ts(nullable=True)
    revoke_reason: str | None = Field(default=None, max_length=500)
    version: int = _version()
    created_at: datetime = _ts()


class User(Base, table=True):
    __tablename__ = "app_user"
    __table_args__ = (Index("ix_app_user_created_at_id", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    username: str = Field(max_length=100, unique=True)
    password_hash: str = Field(max_length=255)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    unit_id: uuid.UUID | None = Field(default=None, foreign_key="org_unit.id", index=True)
    cadre_id: uuid.UUID | None = Field(default=None, foreign_key="cadre.id", unique=True)
    active: bool = True
    # Bumped by every change that must end the user's tokens (shared/revocation.py).
    token_version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    password_changed_at: datetime = _ts()
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Household(Base, table=True):
    """A poor household of a village (贫困户), carried by responsible persons (包保)."""

    __tablename__ = "household"
    __table_args__ = (
        UniqueConstraint("village_id", "code"),
        Index("ix_household_created_at_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    village_id: uuid.UUID = Field(foreign_key="org_unit.id", index=True)
    code: str = Field(max_length=64)
    head_name: str = Field(max_length=100)
    members: int | None = None
    address: str | None = Field(default=None, max_length=300)
    created_at: datetime = _ts()


class Pairing(Base, table=True):
    __tablename__ = "pairing"
    __table_args__ = (Index("ix_pairing_created_at_id", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    cadre_id: uuid.UUID = Field(foreign_key="cadre.id", index=True)
    household_id: uuid.UUID = Field(foreign_key="household.id", index=True)
    village_id: uuid.UUID = Field(foreign_key="org_unit.id", index=True)
    start_date: date
    end_date: date | None = None
    version: int = _version()
    created_at: datetime = _ts()


class TrainingSession(Base, table=True):
    __tablename__ = "training_session"
    __table_args__ = (Index("ix_training_session_start_date_id", "start_date", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kind: str = Field(max_length=32)
    title: str = Field(max_length=200)
    unit_id: uuid.UUID = Field(foreign_key="org_unit.id", index=True)
    start_date: date
    end_date: date
    location: str | None = Field(default=None, max_length=300)
    created_at: datetime = _ts()


class TrainingAttendance(Base, table=True):
    __tablename__ = "training_attendance"
    __table_args__ = (PrimaryKeyConstraint("session_id", "cadre_id"),)

    session_id: uuid.UUID = Field(foreign_key="training_session.id")
    cadre_id: uuid.UUID = Field(foreign_key="cadre.id", index=True)
