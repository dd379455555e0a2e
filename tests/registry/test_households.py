"""Households of a village and pairings (包保) with responsible persons."""

from shared.contracts.enums import Role
from tests.registry.factories import API, admin, bus_events, get, make_cadre, make_tree, post


async def make_household(system, village_id, code="H-001", **extra):
    body = {"village_id": village_id, "code": code, "head_name": "韦某", "members": 4} | extra
    return await post(system, "/households", body)


async def test_household_belongs_to_a_village(system):
    t = await make_tree(system)
    h = await make_household(system, t["village"]["id"])
    assert h["village_id"] == t["village"]["id"] and h["members"] == 4
    r = await system.client.post(
        f"{API}/households",
        json={"village_id": t["village"]["id"], "code": "H-001", "head_name": "x"},
        headers=admin(system),
    )
    assert r.status_code == 409 and r.json()["code"] == "household_exists"
    await make_household(system, t["village2"]["id"])  # same code, another village
    for where in ("group", "town"):
        r = await system.client.post(
            f"{API}/households",
            json={"village_id": t[where]["id"], "code": "H-9", "head_name": "x"},
            headers=admin(system),
        )
        assert r.status_code == 422 and r.json()["field"] == "village_id"


async def test_pairing_is_announced_and_exclusive(system):
    t = await make_tree(system)
    h = await make_household(system, t["village"]["id"])
    a = await make_cadre(system, category="responsible_person")
    b = await make_cadre(system, category="responsible_person")
    body = {"cadre_id": a["id"], "household_id": h["id"], "start_date": "2026-01-01"}
    p = await post(system, "/pairings", body)
    assert p["village_id"] == t["village"]["id"]
    r = await system.client.post(
        f"{API}/pairings",
        json=body | {"cadre_id": b["id"], "start_date": "2026-06-01"},
        headers=admin(system),
    )
    assert r.status_code == 409 and r.json()["code"] == "pairing_overlap"
    r = await system.client.post(
        f"{API}/pairings/{p['id']}/end", json={"end_date": "2025-12-31"}, headers=admin(system)
    )
    assert r.status_code == 422 and r.json()["field"] == "end_date"
    ended = await post(system, f"/pairings/{p['id']}/end", {"end_date": "2026-05-31"}, status=200)
    assert ended["end_date"] == "2026-05-31"
    r = await system.client.post(
        f"{API}/pairings/{p['id']}/end", json={"end_date": "2026-06-30"}, headers=admin(system)
    )
    assert r.status_code == 409
    q = await post(system, "/pairings", body | {"cadre_id": b["id"], "start_date": "2026-06-01"})
    events = await bus_events(system, "registry.pairing.changed")
    assert [
        (e["pairing_id"], e["cadre_id"], e["end_date"], e["entity_version"]) for e in events
    ] == [
        (p["id"], a["id"], None, 1),
        (p["id"], a["id"], "2026-05-31", 2),
        (q["id"], b["id"], None, 1),
    ]
    assert events[0]["household_id"] == h["id"] and events[0]["village_id"] == t["village"]["id"]
    on = await get(system, "/pairings", active_on="2026-03-01")
    assert [x["id"] for x in on["items"]] == [p["id"]]
    mine = await get(system, "/pairings", headers=system.headers(Role.cadre, cadre_id=b["id"]))
    assert [x["id"] for x in mine["items"]] == [q["id"]]
    r = await system.client.get(
        f"{API}/pairings/{p['id']}", headers=system.headers(Role.cadre, cadre_id=b["id"])
    )
    assert r.status_code == 403
    missing = "00000000-0000-0000-0000-000000000000"
    for override in ({"cadre_id": missing}, {"household_id": missing}):
        r = await system.client.post(
            f"{API}/pairings",
            json=body | override | {"start_date": "2030-01-01"},
            headers=admin(system),
        )
        assert r.status_code == 404


async def test_household_and_pairing_access(system):
    t = await make_tree(system)
    h1 = await make_household(system, t["village"]["id"])
    h2 = await make_household(system, t["village2"]["id"])
    c = await make_cadre(system)
    p2 = await post(
        system,
        "/pairings",
        {"cadre_id": c["id"], "household_id": h2["id"], "start_date": "2026-01-01"},
    )
    for role in (Role.org_admin, Role.inspector, Role.finance, Role.auditor):
        scoped = system.headers(role, unit_id=t["town"]["id"])
        listed = await get(system, "/households", headers=scoped)
        assert [h["id"] for h in listed["items"]] == [h1["id"]]
        assert (
            await system.client.get(f"{API}/households/{h2['id']}", headers=scoped)
        ).status_code == 403
        assert (await get(system, "/pairings", headers=scoped))["items"] == []
        assert (
            await system.client.get(f"{API}/pairings/{p2['id']}", headers=scoped)
        ).status_code == 403
        every = await get(system, "/households", headers=system.headers(role))
        assert len(every["items"]) == 2
    assert (
        await system.client.get(f"{API}/households", headers=system.headers(Role.cadre))
    ).status_code == 403
    for role in (Role.cadre, Role.inspector, Role.finance, Role.auditor):
        r = await system.client.post(
            f"{API}/households",
            json={"village_id": t["village"]["id"], "code": "Z", "head_name": "x"},
            headers=system.headers(role),
        )
        assert r.status_code == 403
    scoped_admin = admin(system, unit_id=t["town"]["id"])
    r = await system.client.post(
        f"{API}/pairings",
        json={"cadre_id": c["id"], "household_id": h2["id"], "start_date": "2027-01-01"},
        headers=scoped_admin,
    )
    assert r.status_code == 403
