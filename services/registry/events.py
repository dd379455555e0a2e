"""What registry consumes: handlers by event type (what it publishes: shared.contracts)."""

from shared.inbox import Handlers

handlers = Handlers()
