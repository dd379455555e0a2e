"""Assessment tests run assessment alone; registry facts arrive as contract events."""

import pytest


@pytest.fixture
def services() -> list[str]:
    return ["assessment"]
