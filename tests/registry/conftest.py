"""Registry tests start the registry alone, with a cheap argon2 cost (the code path is the same)."""

import pytest


@pytest.fixture
def services() -> list[str]:
    return ["registry"]


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch):
    monkeypatch.setenv("FRONTLINE_REGISTRY_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("FRONTLINE_REGISTRY_ARGON2_MEMORY_COST_KIB", "1024")
    monkeypatch.setenv("FRONTLINE_REGISTRY_ARGON2_PARALLELISM", "1")
