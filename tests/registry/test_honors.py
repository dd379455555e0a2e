"""Honors: awarded and revoked by event, listed by cadre, level, year and unit."""

from shared.contracts.enums import Role
from tests.registry.factories import API, admin, bus_events, get, make_cadre, make_tree, post


async def test_award_and_revoke(system):
    t = await make_tree(system)
    cadre = await make_cadre(
        system, category="village_cadre", position="party_secretary", unit_id=t["village"]["id"]
    )
    body = {
        "cadre_id": cadre["id"],
        "level": "province",
        "year": 2018,
        "title": "全省脱贫攻坚优秀共产党员",
    }
    honor = await post(system, "/honors", body)
    r = await system.client.post(f"{API}/honors", json=body, headers=admin(system))
    assert r.status_code == 409 and r.json()["code"] == "honor_exists"
    for override, field in [
        ({"level": "galactic"}, "level"),
        ({"year": 1800}, "year"),
        ({"title": ""}, "title"),
    ]:
        r = await system.client.post(f"{API}/honors", json=body | override, headers=admin(system))
        assert r.status_code == 422 and r.json()["field"] == field
    r = await system.client.post(
        f"{API}/honors",
        json=body | {"cadre_id": "00000000-0000-0000-0000-000000000000"},
        headers=admin(system),
    )
    assert r.status_code == 404
    revoked = await post(
        system, f"/honors/{honor['id']}/revoke", {"reason": "wrong person"}, status=200
    )
    assert revoked["revoked_at"] is not None
    r = await system.client.post(
        f"{API}/honors/{honor['id']}/revoke", json={"reason": "again"}, headers=admin(system)
    )
    assert r.status_code == 409
    events = [e for e in await bus_events(system) if e["type"].startswith("registry.honor")]
    assert events == [
        {
            "type": "registry.honor.awarded",
            "key": honor["id"],  # the entity's id: the topic is compacted by it
            "honor_id": honor["id"],
            "cadre_id": cadre["id"],
            "level": "province",
            "year": 2018,
            "title": "全省脱贫攻坚优秀共产党员",
            "entity_version": 1,
        },
        {
            "type": "registry.honor.revoked",
            "key": honor["id"],
            "honor_id": honor["id"],
            "cadre_id": cadre["id"],
            "level": "province",
            "year": 2018,
            "title": "全省脱贫攻坚优秀共产党员",
            "entity_version": 2,
        },
    ]
    # Revoked, it can be awarded again.
    await post(system, "/honors", body)


async def test_honor_lists_and_access(system):
    t = await make_tree(system)
    a = await make_cadre(system, unit_id=t["village"]["id"])
    b = await make_cadre(system, unit_id=t["village2"]["id"])
    ha = await post(
        system, "/honors", {"cadre_id": a["id"], "level": "county", "year": 2017, "title": "t"}
    )
    hb = await post(
        system, "/honors", {"cadre_id": b["id"], "level": "prefecture", "year": 2018, "title": "t"}
    )

    async def ids(headers=None, **params):
        return {h["id"] for h in (await get(system, "/honors", headers=headers, **params))["items"]}

    assert await ids() == {ha["id"], hb["id"]}
    assert await ids(level="county") == {ha["id"]}
    assert await ids(year=2018) == {hb["id"]}
    assert await ids(cadre_id=a["id"]) == {ha["id"]}
    assert await ids(unit_id=t["town2"]["id"]) == {hb["id"]}
    for role in (Role.org_admin, Role.inspector, Role.finance, Role.auditor):
        scoped = system.headers(role, unit_id=t["town"]["id"])
        assert await ids(headers=scoped) == {ha["id"]}
        assert (
            await system.client.get(f"{API}/honors/{hb['id']}", headers=scoped)
        ).status_code == 403
    me = system.headers(Role.cadre, cadre_id=b["id"])
    assert await ids(headers=me) == {hb["id"]}
    assert (await system.client.get(f"{API}/honors/{ha['id']}", headers=me)).status_code == 403
    for role in (Role.cadre, Role.inspector, Role.finance, Role.auditor):
        r = await system.client.post(
            f"{API}/honors",
            json={"cadre_id": a["id"], "level": "county", "year": 2019, "title": "x"},
            headers=system.headers(role),
        )
        assert r.status_code == 403
