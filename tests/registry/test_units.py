"""Org units: the tree's shape rules, geofence and flag, rename/move with history, events."""

from shared.contracts.enums import Role
from tests.registry.factories import (
    API,
    admin,
    bus_events,
    get,
    make_tree,
    make_unit,
    post,
)

MISSING = "00000000-0000-0000-0000-000000000000"


async def test_tree_announces_each_unit_with_its_ancestors(system):
    t = await make_tree(system)
    events = {e["unit_id"]: e for e in await bus_events(system, "registry.unit.upserted")}
    county, town, village, group = (t[k]["id"] for k in ("county", "town", "village", "group"))
    assert events[county]["ancestors"] == [] and events[county]["parent_id"] is None
    assert events[town]["ancestors"] == [county]
    assert events[village]["ancestors"] == [county, town]
    assert events[group]["ancestors"] == [county, town, village]
    assert events[village]["geofence"] == {"lat": 25.1, "lon": 105.4, "radius_m": 800.0}
    assert events[village]["key"] == village and events[village]["kind"] == "village"
    detail = await get(system, f"/org-units/{group}")
    assert detail["ancestors"] == [county, town, village]
    assert detail["kind"] == "group" and detail["parent_id"] == village


async def test_kind_must_fit_the_parent(system):
    t = await make_tree(system)
    cases = [
        ("township", None, {}, "kind"),
        ("county", t["county"]["id"], {}, "parent_id"),
        ("village", t["county"]["id"], {}, "kind"),
        ("group", t["town"]["id"], {}, "kind"),
        ("township", t["village"]["id"], {}, "kind"),
        (
            "township",
            t["county"]["id"],
            {"geofence": {"lat": 1, "lon": 2, "radius_m": 3}},
            "geofence",
        ),
        ("village", t["town"]["id"], {"special_difficulty": True}, "special_difficulty"),
        (
            "village",
            t["town"]["id"],
            {"geofence": {"lat": 91, "lon": 2, "radius_m": 3}},
            "geofence.lat",
        ),
        (
            "village",
            t["town"]["id"],
            {"geofence": {"lat": 1, "lon": 2, "radius_m": 0}},
            "geofence.radius_m",
        ),
    ]
    for kind, parent, extra, field in cases:
        body = {"code": "X-1", "name": "x", "kind": kind, "parent_id": parent} | extra
        r = await system.client.post(f"{API}/org-units", json=body, headers=admin(system))
        assert r.status_code == 422, (kind, extra, r.text)
        assert r.json()["field"] == field
        assert r.headers["content-type"].startswith("application/problem+json")
    units = await get(system, "/org-units")
    assert len(units["items"]) == 6


async def test_duplicate_code_unknown_parent_and_roles(system):
    t = await make_tree(system)
    body = {
        "code": t["town"]["code"],
        "name": "again",
        "kind": "township",
        "parent_id": t["county"]["id"],
    }
    r = await system.client.post(f"{API}/org-units", json=body, headers=admin(system))
    assert r.status_code == 409 and r.json()["code"] == "duplicate_code"
    body = {"code": "NEW", "name": "x", "kind": "township", "parent_id": MISSING}
    r = await system.client.post(f"{API}/org-units", json=body, headers=admin(system))
    assert r.status_code == 404
    body["parent_id"] = t["county"]["id"]
    for role in (Role.cadre, Role.inspector, Role.finance, Role.auditor):
        r = await system.client.post(f"{API}/org-units", json=body, headers=system.headers(role))
        assert r.status_code == 403
    assert (await system.client.post(f"{API}/org-units", json=body)).status_code == 401
    await get(system, f"/org-units/{MISSING}", status=404)


async def test_special_difficulty_group(system):
    t = await make_tree(system)
    flagged = await make_unit(system, "group", t["village"]["id"], special_difficulty=True)
    assert flagged["special_difficulty"] is True
    listed = await get(system, "/org-units", special_difficulty="true")
    assert [u["id"] for u in listed["items"]] == [flagged["id"]]
    events = await bus_events(system, "registry.unit.upserted")
    assert [e["special_difficulty"] for e in events if e["unit_id"] == flagged["id"]] == [True]
    r = await system.client.patch(
        f"{API}/org-units/{t['group']['id']}",
        json={"special_difficulty": True},
        headers=admin(system),
    )
    assert r.status_code == 200 and r.json()["special_difficulty"] is True
    r = await system.client.patch(
        f"{API}/org-units/{t['village']['id']}",
        json={"special_difficulty": True},
        headers=admin(system),
    )
    assert r.status_code == 422 and r.json()["field"] == "special_difficulty"


async def test_rename_refence_and_history(system):
    t = await make_tree(system)
    village = t["village"]["id"]
    system.clock.advance(minutes=1)
    r = await system.client.patch(
        f"{API}/org-units/{village}",
        json={"name": "坡老村", "geofence": {"lat": 25.2, "lon": 105.5, "radius_m": 500}},
        headers=admin(system),
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "坡老村"
    assert r.json()["geofence"] == {"lat": 25.2, "lon": 105.5, "radius_m": 500.0}
    system.clock.advance(minutes=1)
    r = await system.client.patch(
        f"{API}/org-units/{village}", json={"code": t["town"]["code"]}, headers=admin(system)
    )
    assert r.status_code == 409
    r = await system.client.patch(
        f"{API}/org-units/{t['town']['id']}",
        json={"geofence": {"lat": 1, "lon": 1, "radius_m": 9}},
        headers=admin(system),
    )
    assert r.status_code == 422
    history = (await get(system, f"/org-units/{village}/history"))["items"]
    assert [h["change"] for h in history][0] == "created"
    assert sorted(h["change"] for h in history[1:]) == ["geofence", "renamed"]
    renamed = next(h for h in history if h["change"] == "renamed")
    assert renamed["before"] == {"name": t["village"]["name"]} and renamed["after"] == {
        "name": "坡老村"
    }
    events = [e for e in await bus_events(system, "registry.unit.upserted") if e["key"] == village]
    assert [(e["name"], e["entity_version"]) for e in events] == [
        (t["village"]["name"], 1),
        ("坡老村", 2),
    ]
    assert events[-1]["geofence"]["radius_m"] == 500.0
    # Clearing the fence is a change too.
    r = await system.client.patch(
        f"{API}/org-units/{village}", json={"geofence": None}, headers=admin(system)
    )
    assert r.json()["geofence"] is None


async def test_move_reannounces_the_subtree(system):
    t = await make_tree(system)
    village, group = t["village"]["id"], t["group"]["id"]
    county, town2 = t["county"]["id"], t["town2"]["id"]
    r = await system.client.post(
        f"{API}/org-units/{group}/move", json={"parent_id": town2}, headers=admin(system)
    )
    assert r.status_code == 422 and r.json()["field"] == "kind"
    before = len(await bus_events(system, "registry.unit.upserted"))
    system.clock.advance(minutes=1)
    moved = await post(system, f"/org-units/{village}/move", {"parent_id": town2}, status=200)
    assert moved["parent_id"] == town2
    events = (await bus_events(system, "registry.unit.upserted"))[before:]
    assert {e["unit_id"]: e["ancestors"] for e in events} == {
        village: [county, town2],
        group: [county, town2, village],
    }
    # Each re-announced unit carries a new version of itself.
    assert {e["unit_id"]: e["entity_version"] for e in events} == {village: 2, group: 2}
    under_town2 = await get(system, "/org-units", unit_id=town2)
    assert {u["id"] for u in under_town2["items"]} == {town2, village, group, t["village2"]["id"]}
    under_town = await get(system, "/org-units", unit_id=t["town"]["id"])
    assert {u["id"] for u in under_town["items"]} == {t["town"]["id"]}
    assert (await get(system, f"/org-units/{group}"))["ancestors"] == [county, town2, village]
    history = (await get(system, f"/org-units/{village}/history"))["items"]
    assert history[-1]["change"] == "moved"
    assert history[-1]["before"] == {"parent_id": t["town"]["id"]}
    assert history[-1]["after"] == {"parent_id": town2}


async def test_list_filters_and_pages(system):
    t = await make_tree(system)
    kinds = await get(system, "/org-units", kind="village")
    assert {u["id"] for u in kinds["items"]} == {t["village"]["id"], t["village2"]["id"]}
    children = await get(system, "/org-units", parent_id=t["county"]["id"])
    assert {u["id"] for u in children["items"]} == {t["town"]["id"], t["town2"]["id"]}
    seen, cursor = [], None
    while True:
        params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        page = await get(system, "/org-units", **params)
        assert len(page["items"]) <= 4
        seen += [u["code"] for u in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(seen) and len(seen) == 6
    r = await system.client.get(
        f"{API}/org-units", params={"cursor": "garbage"}, headers=admin(system)
    )
    assert r.status_code == 422 and r.json()["field"] == "cursor"
    r = await system.client.get(f"{API}/org-units", params={"limit": 501}, headers=admin(system))
    assert r.status_code == 422 and r.json()["field"] == "limit"


async def test_scoped_users_see_their_subtree(system):
    t = await make_tree(system)
    for role in (Role.cadre, Role.inspector, Role.finance, Role.auditor, Role.org_admin):
        scoped = system.headers(role, unit_id=t["town"]["id"])
        listed = await get(system, "/org-units", headers=scoped)
        assert {u["id"] for u in listed["items"]} == {
            t["town"]["id"],
            t["village"]["id"],
            t["group"]["id"],
        }, role
        await get(system, f"/org-units/{t['group']['id']}", headers=scoped)
        for outside in ("county", "town2", "village2"):
            r = await system.client.get(f"{API}/org-units/{t[outside]['id']}", headers=scoped)
            assert r.status_code == 403 and r.json()["code"] == "outside_scope"
        unscoped = await get(system, "/org-units", headers=system.headers(role))
        assert len(unscoped["items"]) == 6


async def test_scoped_admin_writes_only_inside(system):
    t = await make_tree(system)
    scoped = admin(system, unit_id=t["town"]["id"])
    inside = {"code": "IN-1", "name": "in", "kind": "village", "parent_id": t["town"]["id"]}
    await post(system, "/org-units", inside, headers=scoped)
    outside = {"code": "OUT-1", "name": "out", "kind": "village", "parent_id": t["town2"]["id"]}
    r = await system.client.post(f"{API}/org-units", json=outside, headers=scoped)
    assert r.status_code == 403
    county = {"code": "C-2", "name": "c", "kind": "county"}
    assert (
        await system.client.post(f"{API}/org-units", json=county, headers=scoped)
    ).status_code == 403
    r = await system.client.post(
        f"{API}/org-units/{t['village']['id']}/move",
        json={"parent_id": t["town2"]["id"]},
        headers=scoped,
    )
    assert r.status_code == 403
    r = await system.client.patch(
        f"{API}/org-units/{t['village2']['id']}", json={"name": "x"}, headers=scoped
    )
    assert r.status_code == 403
