"""Two events of one cadre applied at the same time (replicas, or the consumer's partitions
side by side) store what one after the other stores: the recompute locks the cadre, so the
second waits and then sees the first one's fact (eligibility.lock_cadre)."""

import asyncio

import pytest

from services.incentives.models import eligibility
from services.incentives.service import eligibility as service
from shared.events import encode, envelope_for
from shared.transport import Message
from tests.incentives.test_orderings import ASSESSED, by
from tests.orderings import Run

TABLES = {"eligibility": (eligibility, by("cadre_id", "cadre"))}
FIRST = [0, 1]  # the cadre, the posting
TOGETHER = (9, 10)  # a finding's entry and its accountability action, both of November


async def side_by_side(run: Run, steps: tuple[int, ...]) -> None:
    """Run.deliver, but the steps at once, each in its own transaction (each a moment
    after the one before: the second reads its facts before the first commits)."""
    runner = run.system.runtime(run.service).runner
    messages = []
    for step in steps:
        payload, key = run.steps[step](run.ids)
        env = envelope_for(payload, key=key, producer="test", occurred_at=run.system.clock.now())
        run.names[str(env.event_id)] = f"event{step}"
        run.offset += 1
        messages.append(Message(env.topic, step, run.offset, env.key, encode(env), {}))

    async def handle(i: int, message: Message) -> str:
        await asyncio.sleep(0.1 * i)
        return await runner.handle(message)

    outcomes = await asyncio.gather(*(handle(i, m) for i, m in enumerate(messages)))
    assert outcomes == ["applied"] * len(steps)


@pytest.fixture
def slow_facts(monkeypatch):
    """Both recomputes are in flight together: each holds the facts it read a while."""
    load = service.load_facts

    async def late(*args, **kwargs):
        facts = await load(*args, **kwargs)
        await asyncio.sleep(0.3)
        return facts

    monkeypatch.setattr(service, "load_facts", late)


async def test_two_events_of_a_cadre_at_once_store_what_one_after_the_other_does(
    system, slow_facts
):
    one_by_one = Run(system, "incentives", ASSESSED.names, ASSESSED.steps)
    await one_by_one.deliver([*FIRST, *TOGETHER])
    together = Run(system, "incentives", ASSESSED.names, ASSESSED.steps)
    await together.deliver(FIRST)
    await side_by_side(together, TOGETHER)
    expected = await one_by_one.snapshot(TABLES, skip=("computed_at",))
    assert expected["eligibility"]  # November is stored, naming the entry and the action
    assert await together.snapshot(TABLES, skip=("computed_at",)) == expected
