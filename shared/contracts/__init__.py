"""The event catalogue: every payload any service publishes, in one place.

Importing this package registers every event type.
"""

from shared.contracts import assessment, incentives, registry  # noqa: F401
