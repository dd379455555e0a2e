"""Logins: the brakes on guessing (per username, per client address: 429 + Retry-After,
growing with failures, capped, decaying) and the password policy on create and change."""

import httpx
import pytest

from tests.registry.factories import API, admin, make_user
from tests.support import System

PASSWORD = "correct horse"


def client_from(system: System, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=system.app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://frontline")


async def attempt(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(f"{API}/auth/token", data={"username": username, "password": password})


async def test_a_username_is_braked_growing_capped_and_decaying(system):
    user = await make_user(system, password=PASSWORD)
    name = user["username"]
    async with client_from(system, "10.0.0.1") as stranger:
        for _ in range(5):  # free failures
            assert (await attempt(stranger, name, "wrong guess 1")).status_code == 401
        waits = []
        for _ in range(6):
            assert (await attempt(stranger, name, "wrong guess 2")).status_code == 401
            r = await attempt(stranger, name, "wrong guess 3")
            assert r.status_code == 429, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"] == "login_throttled"
            waits.append(int(r.headers["Retry-After"]))
            # Even the right password waits: the lock is on the username.
            assert (await attempt(stranger, name, PASSWORD)).status_code == 429
            system.clock.advance(seconds=waits[-1])
        assert waits == [1, 2, 4, 8, 16, 32]

        # Capped: a stranger guessing as fast as allowed is held to a guess a minute or two,
        # and never locks the name for more than 5 minutes at a time.
        more = []
        for _ in range(40):
            assert (await attempt(stranger, name, "wrong guess 4")).status_code == 401
            r = await attempt(stranger, name, "wrong guess 5")
            more.append(int(r.headers["Retry-After"]))
            system.clock.advance(seconds=more[-1])
        assert all(32 <= w <= 300 for w in more) and sum(more[-10:]) >= 600, more

        # Another name from the same address is not locked (the address has 20 free).
        assert (await attempt(stranger, "someone-else", "wrong guess 6")).status_code == 401

        # Decaying: after a quiet while the score is forgotten and the user gets in.
        system.clock.advance(hours=2)
        assert (await attempt(stranger, name, PASSWORD)).status_code == 200
    # A success clears the username's score: five free failures again.
    async with client_from(system, "10.0.0.5") as another:
        for _ in range(5):
            assert (await attempt(another, name, "wrong guess 7")).status_code == 401
        assert (await attempt(another, name, "wrong guess 8")).status_code == 401
        assert (await attempt(another, name, PASSWORD)).status_code == 429


async def test_the_user_signs_in_from_a_known_address_while_a_stranger_is_braked(system):
    user = await make_user(system, password=PASSWORD)
    name = user["username"]
    async with client_from(system, "10.0.0.2") as home, client_from(system, "10.9.9.9") as bad:
        assert (await attempt(home, name, PASSWORD)).status_code == 200
        for _ in range(8):
            await attempt(bad, name, "not the password")
        assert (await attempt(bad, name, PASSWORD)).status_code == 429
        # The address the user signed in from before is not held by the username's lock.
        assert (await attempt(home, name, PASSWORD)).status_code == 200


async def test_a_client_address_is_braked_across_usernames(system):
    user = await make_user(system, password=PASSWORD)
    async with client_from(system, "10.0.0.3") as sprayer, client_from(system, "10.0.0.4") as other:
        for i in range(20):  # a different name each time: no username is braked
            assert (await attempt(sprayer, f"guess{i}", "spray password 1")).status_code == 401
        assert (await attempt(sprayer, "guess-last", "spray password 1")).status_code == 401
        r = await attempt(sprayer, user["username"], PASSWORD)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        # Other addresses are not affected.
        assert (await attempt(other, user["username"], PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short one", "at least 10"),
        ("password123", "too common"),
        ("PassWord123", "too common"),
        ("1234567890", "too common"),
        ("woaini1314", "too common"),
        ("qwerty uiop", "too common"),
        ("          ", "different characters"),
        ("abababababab", "different characters"),
        ("my-liwei-2026", "username"),
        ("MY-LIWEI-2026", "username"),
    ],
)
async def test_password_policy_on_create(system, password, why):
    body = {"username": "liwei", "password": password, "roles": ["finance"]}
    r = await system.client.post(f"{API}/users", json=body, headers=admin(system))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "password" and r.json()["code"] == "weak_password"
    assert why in r.json()["detail"]
    listed = await system.client.get(f"{API}/users", headers=admin(system))
    assert "liwei" not in {u["username"] for u in listed.json()["items"]}


async def test_password_policy_on_change_and_reset(system):
    user = await make_user(system, password=PASSWORD)
    r = await system.client.post(
        f"{API}/auth/token", data={"username": user["username"], "password": PASSWORD}
    )
    mine = {"Authorization": f"Bearer {r.json()['access_token']}"}
    for bad in ("iloveyou123", f"{user['username']}-is-me", "tiny"):
        r = await system.client.post(
            f"{API}/users/me/password",
            json={"current_password": PASSWORD, "new_password": bad},
            headers=mine,
        )
        assert r.status_code == 422 and r.json()["field"] == "new_password", bad
        r = await system.client.post(
            f"{API}/users/{user['id']}/password", json={"new_password": bad}, headers=admin(system)
        )
        assert r.status_code == 422 and r.json()["field"] == "new_password", bad
    r = await system.client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": "plum blossom 17"},
        headers=mine,
    )
    assert r.status_code == 204
