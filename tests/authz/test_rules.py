"""The user-management rules the matrix's one call per route cannot show: links and grants
inside the subtree only, no self-promotion (DESIGN.md §8)."""

import pytest

from shared.contracts.enums import Role
from tests.registry.factories import API, admin, make_cadre, make_tree, make_user

pytestmark = pytest.mark.usefixtures("cheap_password_hashes")


@pytest.fixture
def services():
    return ["registry"]


async def test_a_scoped_admin_links_logins_only_to_cadres_in_its_subtree(system):
    t = await make_tree(system)
    mine = await make_cadre(system, unit_id=t["village"]["id"])
    theirs = await make_cadre(system, unit_id=t["village2"]["id"])
    scoped = admin(system, unit_id=t["town"]["id"])
    body = {"password": "long enough passphrase", "roles": ["cadre"], "unit_id": t["village"]["id"]}
    r = await system.client.post(
        f"{API}/users", json=body | {"username": "theirs", "cadre_id": theirs["id"]}, headers=scoped
    )
    assert (r.status_code, r.json()["code"]) == (403, "outside_scope")
    r = await system.client.post(
        f"{API}/users", json=body | {"username": "mine", "cadre_id": mine["id"]}, headers=scoped
    )
    assert r.status_code == 201, r.text
    # Nor re-linked afterwards to a cadre outside the subtree.
    r = await system.client.patch(
        f"{API}/users/{r.json()['id']}", json={"cadre_id": theirs["id"]}, headers=scoped
    )
    assert (r.status_code, r.json()["code"]) == (403, "outside_scope")


async def test_nobody_grants_a_role_they_do_not_hold(system):
    t = await make_tree(system)
    scoped = admin(system, unit_id=t["town"]["id"])
    body = {"password": "long enough passphrase", "unit_id": t["village"]["id"]}
    for i, role in enumerate(("finance", "auditor", "inspector")):
        r = await system.client.post(
            f"{API}/users", json=body | {"username": f"grantee{i}", "roles": [role]}, headers=scoped
        )
        assert (r.status_code, r.json()["code"]) == (403, "role_not_held"), role
    r = await system.client.post(
        f"{API}/users", json=body | {"username": "peer", "roles": ["org_admin"]}, headers=scoped
    )
    assert r.status_code == 201, r.text
    r = await system.client.patch(
        f"{API}/users/{r.json()['id']}", json={"roles": ["org_admin", "finance"]}, headers=scoped
    )
    assert (r.status_code, r.json()["code"]) == (403, "role_not_held")
    # The county-wide organisation department hands out staff roles.
    staff = await make_user(system, roles=["finance", "auditor"])
    assert staff["roles"] == ["finance", "auditor"]


async def test_nobody_changes_their_own_roles_or_scope(system):
    t = await make_tree(system)
    me = await make_user(system, roles=["org_admin"], unit_id=t["town"]["id"])
    mine = system.headers(Role.org_admin, unit_id=t["town"]["id"], user_id=me["id"])
    for change in (
        {"roles": ["org_admin", "finance", "auditor"]},
        {"unit_id": t["village"]["id"]},
    ):
        r = await system.client.patch(f"{API}/users/{me['id']}", json=change, headers=mine)
        assert (r.status_code, r.json()["code"]) == (403, "own_user"), change
    county = await make_user(system, roles=["org_admin"])
    theirs = system.headers(Role.org_admin, user_id=county["id"])
    r = await system.client.patch(
        f"{API}/users/{county['id']}", json={"roles": ["org_admin", "finance"]}, headers=theirs
    )
    assert (r.status_code, r.json()["code"]) == (403, "own_user")
    r = await system.client.get(f"{API}/users/{me['id']}", headers=admin(system))
    assert r.json()["roles"] == ["org_admin"] and r.json()["unit_id"] == t["town"]["id"]
