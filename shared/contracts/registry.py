"""Events the registry publishes on `frontline.registry`.

The key is the id of the entity the event is about (unit, cadre, posting, honor, user,
pairing), and every event carries that entity's whole state (a revocation too): the topic
is compacted, so a consumer rebuilding from it finds each entity's last record. Order
across entities is not kept; consumers tolerate that. `entity_version` is the version of
the entity the event is about (shared.versions): consumers apply an event only when it is
newer than what they applied for that entity, so any order of delivery converges.
"""

from datetime import date
from uuid import UUID

from pydantic import BaseModel

from shared.contracts.enums import (
    CadreCategory,
    HonorLevel,
    Position,
    PostingEndReason,
    PostingRole,
    Role,
    UnitKind,
)
from shared.events import EventPayload, event_type


class Geofence(BaseModel):
    lat: float
    lon: float
    radius_m: float


@event_type("registry.unit.upserted")
class UnitUpserted(EventPayload):
    """A unit was created, renamed, moved, re-fenced or given a go-live: its whole state.

    `ancestors` runs from the county down to the parent, so consumers can answer
    "is X in the subtree of Y" without walking the tree. A move re-announces every
    unit of the moved subtree.
    """

    unit_id: UUID
    code: str
    name: str
    kind: UnitKind
    parent_id: UUID | None
    ancestors: list[UUID]
    geofence: Geofence | None = None
    special_difficulty: bool = False
    active: bool = True
    entity_version: int
    # Go-live of a county or township: assessment judges nothing in the subtree before it
    # (the latest date on a unit's ancestry holds). None: no restriction.
    assessment_start_date: date | None = None


@event_type("registry.cadre.upserted")
class CadreUpserted(EventPayload):
    """A cadre was created or changed (name, category, position, status).

    `effective_date` is the local date from which this state holds (position changes).
    `unit_id` is the unit the cadre belongs to when not posted (a village cadre's village).
    """

    cadre_id: UUID
    name: str
    category: CadreCategory
    position: Position | None = None
    active: bool = True
    effective_date: date
    unit_id: UUID | None = None
    entity_version: int
    # Village cadres: the date the current position has been held since (pay starts
    # there); absent from older events, which then mean the first state's date.
    position_since: date | None = None
    # Bank details for the payment file. The ID-card number and the account travel only
    # as AES-GCM ciphertext under FRONTLINE_FIELD_KEY (shared/fieldcrypt.py), never plain.
    id_card_no_enc: str | None = None
    bank_name: str | None = None
    bank_account_enc: str | None = None


@event_type("registry.posting.opened")
class PostingOpened(EventPayload):
    posting_id: UUID
    cadre_id: UUID
    unit_id: UUID
    role: PostingRole
    start_date: date
    end_date: date | None = None
    entity_version: int


@event_type("registry.posting.ended")
class PostingEnded(EventPayload):
    """A posting's end was set (end_date inclusive)."""

    posting_id: UUID
    cadre_id: UUID
    unit_id: UUID
    role: PostingRole
    start_date: date
    end_date: date
    reason: PostingEndReason
    entity_version: int


@event_type("registry.honor.awarded")
class HonorAwarded(EventPayload):
    honor_id: UUID
    cadre_id: UUID
    level: HonorLevel
    year: int
    title: str
    entity_version: int


@event_type("registry.honor.revoked")
class HonorRevoked(EventPayload):
    """The honor's whole state, revoked: a revocation that arrives first is kept as such."""

    honor_id: UUID
    cadre_id: UUID
    level: HonorLevel
    year: int
    title: str
    entity_version: int


@event_type("registry.user.upserted")
class UserUpserted(EventPayload):
    """A user's whole current state. `token_version` grows with every change that must end
    the user's tokens (deactivation, reactivation, password, roles, scope, cadre link):
    every service refuses tokens older than it (shared/revocation.py)."""

    user_id: UUID
    username: str
    roles: list[Role]
    unit_id: UUID | None = None
    cadre_id: UUID | None = None
    active: bool = True
    token_version: int = 1


@event_type("registry.pairing.changed")
class PairingChanged(EventPayload):
    """A responsible person carries a household from start_date to end_date (包保)."""

    pairing_id: UUID
    cadre_id: UUID
    household_id: UUID
    village_id: UUID
    start_date: date
    end_date: date | None = None
    entity_version: int
