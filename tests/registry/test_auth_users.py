"""Identity: the token endpoint, users, passwords, deactivation, and their events."""

import jwt

from shared.auth import verify_token
from shared.contracts.enums import Role
from tests.registry.factories import (
    API,
    admin,
    bus_events,
    get,
    login,
    make_cadre,
    make_tree,
    make_user,
    post,
)
from tests.support import ADMIN


def claims(system, token: str) -> dict:
    verify_token(
        system.app.state.keys, system.kernel, system.clock, token
    )  # signature, issuer, expiry by our clock
    return jwt.decode(token, options={"verify_signature": False})


async def test_start_creates_the_bootstrap_admin_once(system):
    r = await login(system, *ADMIN)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == system.kernel.token_ttl_seconds
    assert claims(system, body["access_token"])["roles"] == ["org_admin"]
    me = await get(system, "/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me["username"] == "admin" and me["roles"] == ["org_admin"]
    # A restart with users present adds nobody.
    rt = system.runtime("registry")
    await rt.spec.on_start(rt)
    users = await get(system, "/users")
    assert [u["username"] for u in users["items"]] == ["admin"]


async def test_bad_credentials_are_401_problem_json(system):
    for username, password in [("admin", "wrong"), ("nobody", ADMIN[1]), ("", "")]:
        r = await login(system, username, password)
        assert r.status_code in (401, 422), r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await login(system, "admin", "wrong")
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_credentials"
    assert r.headers["www-authenticate"] == "Bearer"


async def test_create_user_then_log_in_with_its_roles(system):
    user = await make_user(system, roles=["finance", "auditor", "finance"])
    assert user["roles"] == ["finance", "auditor"]
    assert "password" not in user and "password_hash" not in user
    r = await login(system, user["username"], "correct horse")
    assert r.status_code == 200
    c = claims(system, r.json()["access_token"])
    assert c["sub"] == user["id"] and c["roles"] == ["finance", "auditor"]
    events = await bus_events(system, "registry.user.upserted")
    mine = [e for e in events if e["user_id"] == user["id"]]
    assert mine == [
        {
            "type": "registry.user.upserted",
            "key": user["id"],
            "user_id": user["id"],
            "username": user["username"],
            "roles": ["finance", "auditor"],
            "unit_id": None,
            "cadre_id": None,
            "active": True,
            "token_version": 1,
        }
    ]


async def test_only_org_admin_creates_users(system):
    body = {"username": "someone", "password": "long enough", "roles": ["inspector"]}
    r = await system.client.post(f"{API}/users", json=body)
    assert r.status_code == 401
    for role in (Role.cadre, Role.inspector, Role.finance, Role.auditor):
        r = await system.client.post(f"{API}/users", json=body, headers=system.headers(role))
        assert r.status_code == 403, role
        assert r.json()["code"] == "wrong_role"
    await post(system, "/users", body)


async def test_user_input_errors(system):
    await make_user(system, username="taken")
    r = await system.client.post(
        f"{API}/users",
        json={"username": "taken", "password": "long enough", "roles": ["finance"]},
        headers=admin(system),
    )
    assert r.status_code == 409 and r.json()["code"] == "username_taken"
    cases = [
        ({"password": "short"}, "password"),
        ({"roles": []}, "roles"),
        ({"roles": ["emperor"]}, "roles.0"),
        ({"roles": ["cadre"]}, "cadre_id"),
        ({"username": "a b"}, "username"),
    ]
    for override, field in cases:
        body = {"username": "fresh", "password": "long enough", "roles": ["finance"]} | override
        r = await system.client.post(f"{API}/users", json=body, headers=admin(system))
        assert r.status_code == 422, (override, r.text)
        assert r.json()["field"] == field
    missing = "00000000-0000-0000-0000-000000000000"
    body = {"username": "fresh", "password": "long enough", "roles": ["finance"]}
    for extra in ({"unit_id": missing}, {"cadre_id": missing}):
        r = await system.client.post(f"{API}/users", json=body | extra, headers=admin(system))
        assert r.status_code == 404, r.text
    assert {u["username"] for u in (await get(system, "/users"))["items"]} == {"admin", "taken"}


async def test_change_own_password(system):
    user = await make_user(system, roles=["inspector"])
    token = (await login(system, user["username"], "correct horse")).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{API}/users/me/password"
    r = await system.client.post(
        url, json={"current_password": "nope", "new_password": "battery staple"}, headers=headers
    )
    assert r.status_code == 422 and r.json()["field"] == "current_password"
    r = await system.client.post(
        url, json={"current_password": "correct horse", "new_password": "x"}, headers=headers
    )
    assert r.status_code == 422 and r.json()["field"] == "new_password"
    r = await system.client.post(
        url,
        json={"current_password": "correct horse", "new_password": "battery staple"},
        headers=headers,
    )
    assert r.status_code == 204
    assert (await login(system, user["username"], "correct horse")).status_code == 401
    assert (await login(system, user["username"], "battery staple")).status_code == 200


async def test_admin_resets_a_password(system):
    user = await make_user(system, roles=["finance"])
    url = f"{API}/users/{user['id']}/password"
    r = await system.client.post(
        url, json={"new_password": "reset by admin"}, headers=system.headers(Role.finance)
    )
    assert r.status_code == 403
    r = await system.client.post(
        url, json={"new_password": "reset by admin"}, headers=admin(system)
    )
    assert r.status_code == 204
    assert (await login(system, user["username"], "reset by admin")).status_code == 200


async def test_deactivated_user_gets_no_token(system):
    user = await make_user(system, roles=["inspector"])
    done = await post(system, f"/users/{user['id']}/deactivate", {}, status=200)
    assert done["active"] is False
    r = await login(system, user["username"], "correct horse")
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    events = [
        e for e in await bus_events(system, "registry.user.upserted") if e["key"] == user["id"]
    ]
    assert [e["active"] for e in events] == [True, False]
    await post(system, f"/users/{user['id']}/activate", {}, status=200)
    assert (await login(system, user["username"], "correct horse")).status_code == 200


async def test_nobody_deactivates_themselves(system):
    me = await get(system, "/users", role="org_admin")
    admin_id = me["items"][0]["id"]
    r = await system.client.post(
        f"{API}/users/{admin_id}/deactivate", headers=admin(system, user_id=admin_id)
    )
    assert r.status_code == 409 and r.json()["code"] == "cannot_deactivate_self"


async def test_update_roles_announces_the_user(system):
    user = await make_user(system, roles=["inspector"])
    r = await system.client.patch(
        f"{API}/users/{user['id']}", json={"roles": ["auditor"]}, headers=admin(system)
    )
    assert r.status_code == 200 and r.json()["roles"] == ["auditor"]
    events = [
        e for e in await bus_events(system, "registry.user.upserted") if e["key"] == user["id"]
    ]
    assert [e["roles"] for e in events] == [["inspector"], ["auditor"]]


async def test_who_reads_users(system):
    user = await make_user(system, roles=["inspector"])
    own = system.headers(Role.inspector, user_id=user["id"])
    assert (await get(system, f"/users/{user['id']}", headers=own))["username"] == user["username"]
    assert (await get(system, "/users/me", headers=own))["id"] == user["id"]
    for role in (Role.org_admin, Role.auditor):
        await get(system, f"/users/{user['id']}", headers=system.headers(role))
        await get(system, "/users", headers=system.headers(role))
    for role in (Role.cadre, Role.inspector, Role.finance):
        await get(system, f"/users/{user['id']}", headers=system.headers(role), status=403)
        await get(system, "/users", headers=system.headers(role), status=403)
    await get(system, "/users/00000000-0000-0000-0000-000000000000", status=404)


async def test_scoped_admin_manages_users_in_the_subtree_only(system):
    t = await make_tree(system)
    scoped = admin(system, unit_id=t["town"]["id"])
    inside = await post(
        system,
        "/users",
        {"username": "clerk", "password": "long enough", "roles": ["org_admin"]},
        headers=scoped,
    )
    assert inside["unit_id"] == t["town"]["id"]  # a scoped admin's users inherit the scope
    r = await system.client.post(
        f"{API}/users",
        json={"username": "helper", "password": "long enough", "roles": ["inspector"]},
        headers=scoped,
    )
    assert (r.status_code, r.json()["code"]) == (403, "role_not_held")  # it holds no inspector
    village_user = await make_user(system, roles=["finance"], unit_id=t["village"]["id"])
    other = await make_user(system, roles=["finance"], unit_id=t["town2"]["id"])
    r = await system.client.post(
        f"{API}/users",
        json={
            "username": "escapee",
            "password": "long enough",
            "roles": ["org_admin"],
            "unit_id": t["county"]["id"],
        },
        headers=scoped,
    )
    assert r.status_code == 403 and r.json()["code"] == "outside_scope"
    listed = await get(system, "/users", headers=scoped)
    assert {u["id"] for u in listed["items"]} == {inside["id"], village_user["id"]}
    subtree = await get(system, "/users", unit_id=t["town2"]["id"])
    assert [u["id"] for u in subtree["items"]] == [other["id"]]
    for path in (f"/users/{other['id']}/deactivate", f"/users/{other['id']}/activate"):
        assert (await system.client.post(f"{API}{path}", headers=scoped)).status_code == 403
    r = await system.client.get(f"{API}/users/{other['id']}", headers=scoped)
    assert r.status_code == 403
    r = await system.client.patch(
        f"{API}/users/{village_user['id']}", json={"unit_id": None}, headers=scoped
    )
    assert r.status_code == 403  # an unscoped user is outside every scope
    cadre = await make_cadre(system, unit_id=t["village"]["id"])
    linked = await make_user(system, roles=["cadre"], cadre_id=cadre["id"])
    assert linked["cadre_id"] == cadre["id"]
    r = await system.client.post(
        f"{API}/users",
        json={
            "username": "twin",
            "password": "long enough",
            "roles": ["cadre"],
            "cadre_id": cadre["id"],
        },
        headers=admin(system),
    )
    assert r.status_code == 409 and r.json()["code"] == "cadre_has_user"
    token = (await login(system, linked["username"], "correct horse")).json()["access_token"]
    assert claims(system, token)["cadre_id"] == cadre["id"]
