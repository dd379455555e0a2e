"""Assessment tests run assessment alone; registry facts arrive as contract events."""

import pytest


@pytest.fixture
def services() -> list[str]:
    return ["assessment"]


@pytest.fixture
async def system(system):
    """The kernel's system, settled before it stops.

    On Python 3.11, `asyncio.wait_for` swallows a cancellation that coincides with the
    awaited future completing; the local bus consumer polls through it, so an event
    published while the app stops can leave that consumer running and teardown hanging.
    Settling first keeps the bus quiet when the workers are cancelled.
    """
    yield system
    await system.settle()
