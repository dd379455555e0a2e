"""Revocation within seconds, embedded: every change that must end a user's tokens bumps
the user's token version, and all three services refuse the older tokens (401)."""

import asyncio
import time
import uuid

import pytest
from sqlalchemy import delete, select

from services.main import SERVICES
from services.registry.service.users import publish_unprojected_users
from shared.auth import Principal, issue_token
from shared.revocation import TABLE
from tests.registry.factories import API, admin, login, make_user

# One route per service that any org_admin may read.
PROBES = {
    "registry": "/registry/v1/users",
    "assessment": "/assessment/v1/findings",
    "incentives": "/incentives/v1/policies",
}
PASSWORD = "correct horse"


@pytest.fixture
def services() -> list[str]:
    return list(SERVICES)


async def statuses(system, token: str) -> dict[str, int]:
    headers = {"Authorization": f"Bearer {token}"}
    return {s: (await system.client.get(p, headers=headers)).status_code for s, p in PROBES.items()}


async def token_of(system, username: str, password: str = PASSWORD) -> str:
    r = await login(system, username, password)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


async def refused_everywhere_within(system, token: str, seconds: float) -> float:
    """Poll the three services until each refuses `token`; the time it took."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if set((await statuses(system, token)).values()) == {401}:
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    raise AssertionError(f"still accepted after {seconds}s: {await statuses(system, token)}")


async def test_a_deactivated_users_token_is_refused_by_all_three_within_2s(system):
    user = await make_user(system)
    token = await token_of(system, user["username"])
    await system.settle()
    assert await statuses(system, token) == dict.fromkeys(PROBES, 200)

    r = await system.client.post(f"{API}/users/{user['id']}/deactivate", headers=admin(system))
    assert r.status_code == 200
    await refused_everywhere_within(system, token, 2.0)
    r = await system.client.get(PROBES["assessment"], headers={"Authorization": f"Bearer {token}"})
    assert r.json()["code"] == "token_revoked"
    # Each service's own projection holds it too (what a restarted process starts from).
    await system.settle()
    for name in SERVICES:
        async with system.transaction(name) as s:
            table = system.runtime(name).spec.metadata.tables[TABLE]
            row = (
                await s.execute(
                    select(table.c.version, table.c.active).where(
                        table.c.user_id == uuid.UUID(user["id"])
                    )
                )
            ).one()
        assert tuple(row) == (2, False), name

    # Reactivation bumps the version again: the old token stays dead, a new login works.
    r = await system.client.post(f"{API}/users/{user['id']}/activate", headers=admin(system))
    assert r.status_code == 200
    await system.settle()
    assert set((await statuses(system, token)).values()) == {401}
    fresh = await token_of(system, user["username"])
    await system.settle()
    assert await statuses(system, fresh) == dict.fromkeys(PROBES, 200)


@pytest.mark.parametrize("change", ["own password", "password reset", "roles", "scope"])
async def test_password_role_and_scope_changes_end_the_old_tokens(system, change):
    user = await make_user(system, roles=["org_admin", "auditor"])
    token = await token_of(system, user["username"])
    await system.settle()
    assert await statuses(system, token) == dict.fromkeys(PROBES, 200)
    me = {"Authorization": f"Bearer {token}"}
    if change == "own password":
        body = {"current_password": PASSWORD, "new_password": "battery staple 9"}
        r = await system.client.post(f"{API}/users/me/password", json=body, headers=me)
    elif change == "password reset":
        body = {"new_password": "battery staple 9"}
        r = await system.client.post(
            f"{API}/users/{user['id']}/password", json=body, headers=admin(system)
        )
    elif change == "roles":
        r = await system.client.patch(
            f"{API}/users/{user['id']}", json={"roles": ["org_admin"]}, headers=admin(system)
        )
    else:
        unit = await system.client.post(
            f"{API}/org-units",
            json={"code": "C1", "name": "county", "kind": "county"},
            headers=admin(system),
        )
        r = await system.client.patch(
            f"{API}/users/{user['id']}", json={"unit_id": unit.json()["id"]}, headers=admin(system)
        )
    assert r.status_code in (200, 204), r.text
    await refused_everywhere_within(system, token, 2.0)


async def test_a_change_that_touches_no_claim_keeps_the_tokens(system):
    user = await make_user(system, roles=["org_admin"])
    token = await token_of(system, user["username"])
    r = await system.client.patch(
        f"{API}/users/{user['id']}", json={"roles": ["org_admin"]}, headers=admin(system)
    )
    assert r.status_code == 200
    await system.settle()
    assert await statuses(system, token) == dict.fromkeys(PROBES, 200)


async def test_users_from_before_the_projection_are_announced_on_start(system):
    """Users the services never heard of (created before token versions existed, or the
    bootstrap admin) are refused until the registry's start announces them."""
    user = await make_user(system)
    await system.settle()
    for name in SERVICES:
        async with system.transaction(name) as s:
            await s.execute(delete(system.runtime(name).spec.metadata.tables[TABLE]))
    system.app.state.token_versions.__init__()  # a fresh process: an empty cache
    for name in SERVICES:
        await system.runtime(name).load_token_versions()
    token = await token_of(system, user["username"])
    await system.settle()
    # Issuing taught the registry (and so the embedded cache) the user; a distributed
    # service would still refuse it. The registry's start announces it to everyone.
    rt = system.runtime("registry")
    await rt.spec.on_start(rt)
    await system.settle()
    for name in SERVICES:
        async with system.transaction(name) as s:
            table = system.runtime(name).spec.metadata.tables[TABLE]
            rows = (await s.execute(select(table.c.user_id, table.c.version))).all()
        assert {str(u) for u, _ in rows} >= {user["id"]}, name
    assert await statuses(system, token) == dict.fromkeys(PROBES, 200)
    # Announced once: a second start finds nothing to announce.
    async with rt.transaction() as s:
        assert await publish_unprojected_users(s, clock=rt.clock) == 0


async def test_a_user_nobody_announced_is_refused(system):
    token = system.token("org_admin")  # announced by the helper: accepted
    assert await statuses(system, token) == dict.fromkeys(PROBES, 200)
    stranger = Principal(user_id=uuid.uuid4(), username="x", roles=["org_admin"])
    forged = issue_token(system.app.state.keys, system.kernel, system.clock, stranger)[0]
    assert await statuses(system, forged) == dict.fromkeys(PROBES, 401)
