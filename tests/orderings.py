"""Feeding a projection an entity's events in any order (shared.versions property tests).

A scenario is a list of steps; each step builds one event (a payload with its entity
version) from a fresh set of ids, so every hypothesis example works on entities of its own
in the one running system, and its final state can be compared with in-order delivery
after the ids are replaced by their names.
"""

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from sqlalchemy import select

from shared.events import EventPayload, encode, envelope_for
from shared.transport import Message
from tests.support import System

# Each property costs a few seconds per backend; the whole set of them (seven properties,
# two backends) stays within about two minutes of CI.
EXAMPLES = 8
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # every run draws afresh; a failure prints its own example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

Step = Callable[[dict[str, uuid.UUID]], tuple[EventPayload, uuid.UUID]]
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@st.composite
def deliveries(draw, n: int, max_duplicates: int = 4) -> list[int]:
    """Any order of the steps 0..n-1, each delivered at least once, some twice or more."""
    order = list(draw(st.permutations(range(n))))
    for _ in range(draw(st.integers(0, max_duplicates))):
        step = draw(st.integers(0, n - 1))
        order.insert(draw(st.integers(0, len(order))), step)
    return order


class Run:
    """One delivery of a scenario: fresh ids, and the events as their runner applies them."""

    def __init__(self, system: System, service: str, names: Sequence[str], steps: list[Step]):
        self.system, self.service, self.steps = system, service, steps
        self.ids = {name: uuid.uuid4() for name in names}
        self.names: dict[str, str] = {str(v): k for k, v in self.ids.items()}
        self.offset = 0

    async def deliver(self, order: list[int]) -> None:
        """Apply the steps in `order` through the service's inbox runner. A repeat has an
        event id of its own (as a re-publication would), so the inbox does not skip it:
        only the entity version can."""
        runner = self.system.runtime(self.service).runner
        assert runner is not None
        for step in order:
            payload, key = self.steps[step](self.ids)
            env = envelope_for(
                payload, key=key, producer="test", occurred_at=self.system.clock.now()
            )
            self.names[str(env.event_id)] = f"event{step}"
            self.offset += 1
            message = Message(env.topic, 0, self.offset, env.key, encode(env), {})
            assert await runner.handle(message) == "applied"

    async def snapshot(self, tables: dict[str, tuple[Any, Callable]], skip=()) -> dict:
        """Rows of each table selected by `where(table, ids)`, ids replaced by names."""
        out = {}
        async with self.system.transaction(self.service) as s:
            for name, (table, where) in tables.items():
                cols = [c for c in table.c if c.name not in skip]
                rows = (await s.execute(select(*cols).where(where(table, self.ids)))).all()
                out[name] = sorted(tuple(self.name_of(v) for v in r) for r in rows)
        return out

    def name_of(self, value: Any) -> str:
        return UUID_RE.sub(lambda m: self.names.get(m.group(0), "<unknown id>"), str(value))
