"""Events incentives publishes on `frontline.incentives` (key: cadre id, or batch id).

`entity_version` is the version of the batch or policy version the event is about
(shared.versions); a policy's `version` is its label (`kind@effective_from`).
"""

from decimal import Decimal
from uuid import UUID

from shared.contracts.enums import BatchStatus
from shared.events import EventPayload, event_type


@event_type("incentives.eligibility.changed")
class EligibilityChanged(EventPayload):
    cadre_id: UUID
    month: str
    gross: Decimal
    total_deductions: Decimal
    net: Decimal
    # gross - deductions_applied = net; the rest of total_deductions moves to the next month
    deductions_applied: Decimal = Decimal("0.00")
    carried_forward: Decimal = Decimal("0.00")


class _Batch(EventPayload):
    batch_id: UUID
    month: str
    status: BatchStatus
    total_net: Decimal
    lines: int
    content_hash: str | None = None
    entity_version: int


@event_type("incentives.batch.drafted")
class BatchDrafted(_Batch):
    pass


@event_type("incentives.batch.locked")
class BatchLocked(_Batch):
    pass


@event_type("incentives.batch.paid")
class BatchPaid(_Batch):
    pass


@event_type("incentives.policy.added")
class PolicyAdded(EventPayload):
    version: str
    kind: str
    effective_from: str
    effective_to: str | None = None
    entity_version: int
