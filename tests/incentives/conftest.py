"""Incentives tests run the service alone and feed it registry and assessment events."""

import pytest


@pytest.fixture
def services() -> list[str]:
    return ["incentives"]


@pytest.fixture(autouse=True)
async def settled_before_teardown(system):
    """Let every event (batch locked, paid...) leave before the app stops: on Python 3.11
    an event published while the workers are cancelled can hang the teardown (see
    tests/assessment/conftest.py). test_rules.py, which needs no system, overrides it."""
    yield
    await system.settle()
