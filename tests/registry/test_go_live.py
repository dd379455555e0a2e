"""A county's or township's go-live date (`assessment_start_date`): set on create or PATCH,
kept in the history, carried in the unit's event; other kinds refuse it."""

from tests.registry.factories import bus_events, get, make_tree, make_unit
from tests.registry.factories import post as post_json


async def patch(system, unit_id, body, status=200):
    r = await system.client.patch(
        f"/registry/v1/org-units/{unit_id}",
        json=body,
        headers=system.headers("org_admin"),
    )
    assert r.status_code == status, r.text
    return r.json()


async def test_set_on_create_and_patch_announced_and_kept_in_history(system):
    county = await make_unit(system, "county", assessment_start_date="2026-11-16")
    assert county["assessment_start_date"] == "2026-11-16"
    town = await make_unit(system, "township", county["id"])
    assert town["assessment_start_date"] is None

    assert (await patch(system, town["id"], {"assessment_start_date": "2026-11-23"}))[
        "assessment_start_date"
    ] == "2026-11-23"
    got = await get(system, f"/org-units/{town['id']}")
    assert got["assessment_start_date"] == "2026-11-23"
    # Leaving the field out keeps it; null clears it.
    assert (await patch(system, town["id"], {"name": "Xinglong HQ"}))[
        "assessment_start_date"
    ] == "2026-11-23"
    assert (await patch(system, town["id"], {"assessment_start_date": None}))[
        "assessment_start_date"
    ] is None

    events = [
        e for e in await bus_events(system, "registry.unit.upserted") if e["key"] == town["id"]
    ]
    assert [e["assessment_start_date"] for e in events] == [None, "2026-11-23", "2026-11-23", None]
    first = [
        e for e in await bus_events(system, "registry.unit.upserted") if e["key"] == county["id"]
    ]
    assert [e["assessment_start_date"] for e in first] == ["2026-11-16"]

    history = (await get(system, f"/org-units/{town['id']}/history"))["items"]
    # The frozen clock gives both changes one time, so their order in the history is by id.
    go_live = [h for h in history if h["change"] == "go_live"]
    changes = {
        (h["before"]["assessment_start_date"], h["after"]["assessment_start_date"]) for h in go_live
    }
    assert len(go_live) == 2 and changes == {(None, "2026-11-23"), ("2026-11-23", None)}


async def test_only_a_county_or_township_has_a_go_live(system):
    tree = await make_tree(system)
    body = {"code": "V-GL-1", "name": "v", "kind": "village", "parent_id": tree["town"]["id"]}
    r = await post_json(
        system, "/org-units", body | {"assessment_start_date": "2026-11-16"}, status=422
    )
    assert (r["code"], r["field"]) == ("unit_shape", "assessment_start_date")
    r = await patch(
        system, tree["village"]["id"], {"assessment_start_date": "2026-11-16"}, status=422
    )
    assert (r["code"], r["field"]) == ("unit_shape", "assessment_start_date")
    for bad in ("2026-13-01", "1999-12-31", "soon"):
        r = await patch(system, tree["county"]["id"], {"assessment_start_date": bad}, status=422)
        assert r["field"] == "assessment_start_date"
    assert (await get(system, f"/org-units/{tree['county']['id']}"))[
        "assessment_start_date"
    ] is None
