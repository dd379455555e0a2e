"""Incentives tables, on the service's own metadata."""

from shared.db import service_base
from shared.outbox import kernel_tables

Base = service_base("incentives")
metadata = Base.metadata
outbox, inbox = kernel_tables(metadata)
