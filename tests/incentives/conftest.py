"""Incentives tests run the service alone and feed it registry and assessment events."""

import pytest


@pytest.fixture
def services() -> list[str]:
    return ["incentives"]
