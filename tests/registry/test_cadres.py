"""Cadres: category and position, unique phone, status, events, lists and who sees whom."""

from shared.contracts.enums import Role
from tests.registry.factories import (
    API,
    admin,
    bus_events,
    get,
    make_cadre,
    make_posting,
    make_tree,
    post,
)

MISSING = "00000000-0000-0000-0000-000000000000"


async def test_create_announces_the_cadre(system):
    cadre = await make_cadre(system, category="village_cadre", position="party_secretary")
    assert cadre["active"] is True and cadre["position"] == "party_secretary"
    assert await get(system, f"/cadres/{cadre['id']}") == cadre
    events = await bus_events(system, "registry.cadre.upserted")
    assert events == [
        {
            "type": "registry.cadre.upserted",
            "key": cadre["id"],
            "cadre_id": cadre["id"],
            "name": cadre["name"],
            "category": "village_cadre",
            "position": "party_secretary",
            "active": True,
            "effective_date": "2026-11-25",
            "unit_id": cadre["unit_id"],
            "entity_version": 1,
            "position_since": "2026-11-25",
            "id_card_no_enc": None,
            "bank_name": None,
            "bank_account_enc": None,
        }
    ]


async def test_cadre_input_errors(system):
    taken = await make_cadre(system)
    base = {"name": "张三", "phone": "13800000000", "category": "first_secretary"}
    r = await system.client.post(
        f"{API}/cadres", json=base | {"phone": taken["phone"]}, headers=admin(system)
    )
    assert r.status_code == 409 and r.json()["code"] == "phone_taken"
    cases = [
        ({"category": "village_cadre"}, "position"),
        ({"position": "deputy_director"}, "position"),
        ({"category": "wizard"}, "category"),
        ({"phone": "call me"}, "phone"),
        ({"name": ""}, "name"),
        ({"surname": "x"}, "surname"),
    ]
    for override, field in cases:
        r = await system.client.post(f"{API}/cadres", json=base | override, headers=admin(system))
        assert r.status_code == 422, override
        assert r.json()["field"] == field
    r = await system.client.post(
        f"{API}/cadres", json=base | {"unit_id": MISSING}, headers=admin(system)
    )
    assert r.status_code == 404
    assert len((await get(system, "/cadres"))["items"]) == 1


async def test_position_change_is_dated(system):
    cadre = await make_cadre(system, category="village_cadre", position="committee_member")
    r = await system.client.patch(
        f"{API}/cadres/{cadre['id']}",
        json={"position": "committee_director", "effective_date": "2026-12-01"},
        headers=admin(system),
    )
    assert r.status_code == 200 and r.json()["position"] == "committee_director"
    r = await system.client.patch(
        f"{API}/cadres/{cadre['id']}", json={"position": None}, headers=admin(system)
    )
    assert r.status_code == 422 and r.json()["field"] == "position"
    r = await system.client.patch(
        f"{API}/cadres/{cadre['id']}", json={"category": "resident_cadre"}, headers=admin(system)
    )
    assert r.status_code == 200 and r.json()["position"] is None
    other = await make_cadre(system)
    r = await system.client.patch(
        f"{API}/cadres/{cadre['id']}", json={"phone": other["phone"]}, headers=admin(system)
    )
    assert r.status_code == 409
    events = [
        e for e in await bus_events(system, "registry.cadre.upserted") if e["key"] == cadre["id"]
    ]
    assert [(e["position"], e["effective_date"], e["entity_version"]) for e in events] == [
        ("committee_member", "2026-11-25", 1),
        ("committee_director", "2026-12-01", 2),
        (None, "2026-11-25", 3),
    ]


async def test_deactivate_needs_postings_ended(system):
    t = await make_tree(system)
    cadre = await make_cadre(system)
    posting = await make_posting(system, cadre["id"], t["village"]["id"])
    r = await system.client.post(f"{API}/cadres/{cadre['id']}/deactivate", headers=admin(system))
    assert r.status_code == 409 and r.json()["code"] == "cadre_has_open_posting"
    await post(
        system,
        f"/postings/{posting['id']}/end",
        {"end_date": "2026-11-30", "reason": "completed"},
        status=200,
    )
    done = await post(
        system, f"/cadres/{cadre['id']}/deactivate", {"effective_date": "2026-12-01"}, status=200
    )
    assert done["active"] is False
    r = await system.client.post(
        f"{API}/postings",
        json={
            "cadre_id": cadre["id"],
            "unit_id": t["village"]["id"],
            "role": "member",
            "start_date": "2027-01-01",
        },
        headers=admin(system),
    )
    assert r.status_code == 409 and r.json()["code"] == "cadre_inactive"
    events = [
        e for e in await bus_events(system, "registry.cadre.upserted") if e["key"] == cadre["id"]
    ]
    assert [(e["active"], e["effective_date"], e["entity_version"]) for e in events] == [
        (True, "2026-11-25", 1),
        (False, "2026-12-01", 2),
    ]
    again = await post(system, f"/cadres/{cadre['id']}/activate", {}, status=200)
    assert again["active"] is True


async def test_filters_unit_category_and_posted_on(system):
    t = await make_tree(system)
    a = await make_cadre(system, category="first_secretary")
    b = await make_cadre(system, category="front_group_member")
    c = await make_cadre(system, category="front_group_member", unit_id=t["village2"]["id"])
    await make_posting(
        system,
        a["id"],
        t["village"]["id"],
        role="first_secretary",
        start_date="2026-01-01",
        end_date="2026-06-30",
    )
    await make_posting(system, b["id"], t["group"]["id"], start_date="2026-03-01")

    async def ids(**params):
        return {x["id"] for x in (await get(system, "/cadres", **params))["items"]}

    assert await ids() == {a["id"], b["id"], c["id"]}
    assert await ids(category="front_group_member") == {b["id"], c["id"]}
    assert await ids(unit_id=t["town"]["id"]) == {a["id"], b["id"]}
    assert await ids(unit_id=t["town2"]["id"]) == {c["id"]}
    assert await ids(posted_on="2026-02-01") == {a["id"]}
    assert await ids(posted_on="2026-06-30") == {a["id"], b["id"]}
    assert await ids(posted_on="2026-07-01") == {b["id"]}
    assert await ids(posted_on="2026-07-01", unit_id=t["village"]["id"]) == {b["id"]}
    assert await ids(posted_on="2026-07-01", unit_id=t["town2"]["id"]) == set()
    assert await ids(posted_on="2025-12-31") == set()
    assert await ids(posted_on="2026-04-01", category="first_secretary") == {a["id"]}
    r = await system.client.get(
        f"{API}/cadres", params={"posted_on": "soon"}, headers=admin(system)
    )
    assert r.status_code == 422 and r.json()["field"] == "posted_on"


async def test_who_sees_which_cadre(system):
    t = await make_tree(system)
    mine = await make_cadre(system, unit_id=t["village"]["id"])
    theirs = await make_cadre(system, unit_id=t["village2"]["id"])
    homeless = await make_cadre(system)
    everyone = {mine["id"], theirs["id"], homeless["id"]}
    for role in (Role.org_admin, Role.inspector, Role.finance, Role.auditor):
        listed = await get(system, "/cadres", headers=system.headers(role))
        assert {c["id"] for c in listed["items"]} == everyone, role
        scoped = system.headers(role, unit_id=t["town"]["id"])
        listed = await get(system, "/cadres", headers=scoped)
        assert {c["id"] for c in listed["items"]} == {mine["id"]}, role
        await get(system, f"/cadres/{mine['id']}", headers=scoped)
        for other in (theirs, homeless):
            r = await system.client.get(f"{API}/cadres/{other['id']}", headers=scoped)
            assert r.status_code == 403 and r.json()["code"] == "outside_scope"
    me = system.headers(Role.cadre, cadre_id=mine["id"])
    assert [c["id"] for c in (await get(system, "/cadres", headers=me))["items"]] == [mine["id"]]
    await get(system, f"/cadres/{mine['id']}", headers=me)
    r = await system.client.get(f"{API}/cadres/{theirs['id']}", headers=me)
    assert r.status_code == 403 and r.json()["code"] == "not_own_record"
    nobody = system.headers(Role.cadre)
    assert (await get(system, "/cadres", headers=nobody))["items"] == []
    assert (await system.client.get(f"{API}/cadres")).status_code == 401
    await get(system, f"/cadres/{MISSING}", status=404)


async def test_only_org_admin_writes_cadres(system):
    t = await make_tree(system)
    cadre = await make_cadre(system, unit_id=t["village"]["id"])
    body = {"name": "李四", "phone": "13900000001", "category": "resident_cadre"}
    for role in (Role.cadre, Role.inspector, Role.finance, Role.auditor):
        h = system.headers(role, cadre_id=cadre["id"])
        assert (await system.client.post(f"{API}/cadres", json=body, headers=h)).status_code == 403
        r = await system.client.patch(f"{API}/cadres/{cadre['id']}", json={"name": "x"}, headers=h)
        assert r.status_code == 403
    scoped = admin(system, unit_id=t["town2"]["id"])
    r = await system.client.patch(f"{API}/cadres/{cadre['id']}", json={"name": "x"}, headers=scoped)
    assert r.status_code == 403
    created = await post(system, "/cadres", body, headers=scoped)
    assert created["unit_id"] == t["town2"]["id"]
    r = await system.client.post(
        f"{API}/cadres",
        json=body | {"phone": "13900000002", "unit_id": t["village"]["id"]},
        headers=scoped,
    )
    assert r.status_code == 403
