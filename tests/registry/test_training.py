"""Training sessions, attendees, and the sessions / participant-times statistics."""

from shared.contracts.enums import Role
from tests.registry.factories import API, admin, get, make_cadre, make_tree, post


async def test_sessions_attendees_and_statistics(system):
    t = await make_tree(system)
    cadres = [await make_cadre(system) for _ in range(4)]
    ids = [c["id"] for c in cadres]
    s1 = await post(
        system,
        "/training-sessions",
        {
            "kind": "concentrated",
            "title": "短期集中培训",
            "unit_id": t["county"]["id"],
            "start_date": "2018-03-05",
            "end_date": "2018-03-07",
            "attendee_ids": ids,
        },
    )
    assert s1["attendee_count"] == 4 and s1["end_date"] == "2018-03-07"
    s2 = await post(
        system,
        "/training-sessions",
        {
            "kind": "on_site_observation",
            "title": "示范点现场观摩",
            "unit_id": t["town"]["id"],
            "start_date": "2018-03-20",
            "attendee_ids": ids[:2],
        },
    )
    assert s2["end_date"] == "2018-03-20"
    s3 = await post(
        system,
        "/training-sessions",
        {
            "kind": "field_teaching",
            "title": "田间地头",
            "unit_id": t["village2"]["id"],
            "start_date": "2018-07-01",
        },
    )
    added = await post(
        system,
        f"/training-sessions/{s3['id']}/attendees",
        {"cadre_ids": [ids[0], ids[1], ids[0]]},
        status=200,
    )
    assert added["attendee_count"] == 2
    again = await post(
        system,
        f"/training-sessions/{s3['id']}/attendees",
        {"cadre_ids": [ids[1], ids[2]]},
        status=200,
    )
    assert again["attendee_count"] == 3
    await post(
        system,
        "/training-sessions",
        {
            "kind": "concentrated",
            "title": "next year",
            "unit_id": t["county"]["id"],
            "start_date": "2019-01-02",
        },
    )
    stats = await get(system, "/training-stats", **{"from": "2018-01-01", "to": "2018-12-31"})
    assert stats["from"] == "2018-01-01" and stats["to"] == "2018-12-31"
    assert (stats["sessions"], stats["participant_times"]) == (3, 9)
    assert stats["periods"] == [
        {"period": "2018-03", "sessions": 2, "participant_times": 6},
        {"period": "2018-07", "sessions": 1, "participant_times": 3},
    ]
    assert stats["by_kind"] == [
        {"kind": "concentrated", "sessions": 1, "participant_times": 4},
        {"kind": "field_teaching", "sessions": 1, "participant_times": 3},
        {"kind": "on_site_observation", "sessions": 1, "participant_times": 2},
    ]
    town = await get(
        system,
        "/training-stats",
        **{"from": "2018-01-01", "to": "2018-12-31", "unit_id": t["town"]["id"], "period": "year"},
    )
    assert town["periods"] == [{"period": "2018", "sessions": 1, "participant_times": 2}]
    quarters = await get(
        system, "/training-stats", **{"from": "2018-01-01", "to": "2019-12-31", "period": "quarter"}
    )
    assert [p["period"] for p in quarters["periods"]] == ["2018-Q1", "2018-Q3", "2019-Q1"]
    r = await system.client.get(
        f"{API}/training-stats", params={"period": "decade"}, headers=admin(system)
    )
    assert r.status_code == 422 and r.json()["field"] == "period"
    listed = await get(system, "/training-sessions", **{"from": "2018-03-01", "to": "2018-03-31"})
    assert [s["id"] for s in listed["items"]] == [s1["id"], s2["id"]]
    people = await get(system, f"/training-sessions/{s3['id']}/attendees", limit=2)
    assert len(people["items"]) == 2 and people["next_cursor"]
    r = await system.client.delete(
        f"{API}/training-sessions/{s3['id']}/attendees/{ids[2]}", headers=admin(system)
    )
    assert r.status_code == 204
    assert (await get(system, f"/training-sessions/{s3['id']}"))["attendee_count"] == 2


async def test_training_input_errors_and_access(system):
    t = await make_tree(system)
    body = {
        "kind": "concentrated",
        "title": "x",
        "unit_id": t["town"]["id"],
        "start_date": "2018-03-05",
    }
    for override, field in [
        ({"kind": "lecture"}, "kind"),
        ({"end_date": "2018-03-01"}, "end_date"),
    ]:
        r = await system.client.post(
            f"{API}/training-sessions", json=body | override, headers=admin(system)
        )
        assert r.status_code == 422 and r.json()["field"] == field
    missing = "00000000-0000-0000-0000-000000000000"
    r = await system.client.post(
        f"{API}/training-sessions", json=body | {"attendee_ids": [missing]}, headers=admin(system)
    )
    assert r.status_code == 404 and r.json()["ids"] == [missing]
    assert (await get(system, "/training-sessions"))["items"] == []
    s = await post(system, "/training-sessions", body)
    other = await post(system, "/training-sessions", body | {"unit_id": t["town2"]["id"]})
    for role in (Role.org_admin, Role.inspector, Role.finance, Role.auditor):
        scoped = system.headers(role, unit_id=t["town"]["id"])
        assert [
            x["id"] for x in (await get(system, "/training-sessions", headers=scoped))["items"]
        ] == [s["id"]]
        r = await system.client.get(f"{API}/training-sessions/{other['id']}", headers=scoped)
        assert r.status_code == 403
        stats = await get(
            system, "/training-stats", headers=scoped, **{"from": "2018-01-01", "to": "2018-12-31"}
        )
        assert stats["sessions"] == 1
    r = await system.client.get(f"{API}/training-sessions", headers=system.headers(Role.cadre))
    assert r.status_code == 403
    for role in (Role.cadre, Role.inspector, Role.finance, Role.auditor):
        r = await system.client.post(
            f"{API}/training-sessions", json=body, headers=system.headers(role)
        )
        assert r.status_code == 403
