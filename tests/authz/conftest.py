"""The matrix logs in and creates many users: a cheap argon2 cost keeps it fast (the cost
is a setting; what is checked here is who may call what, not the hash)."""

import pytest

CHEAP_HASH = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_COST_KIB": "1024", "ARGON2_PARALLELISM": "1"}


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch):
    for name, value in CHEAP_HASH.items():
        monkeypatch.setenv(f"FRONTLINE_REGISTRY_{name}", value)
