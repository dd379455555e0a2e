"""Postings: one at a time per cadre, role fits unit kind, end with reason, replacement."""

from sqlalchemy import delete

from services.registry.models import Posting
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


async def test_open_and_end_announce(system):
    t = await make_tree(system)
    cadre = await make_cadre(system)
    p = await make_posting(system, cadre["id"], t["village"]["id"], role="first_secretary")
    assert p["end_date"] is None and p["end_reason"] is None
    assert (await get(system, f"/cadres/{cadre['id']}"))["unit_id"] == t["village"]["id"]
    ended = await post(
        system,
        f"/postings/{p['id']}/end",
        {"end_date": "2026-11-30", "reason": "recalled"},
        status=200,
    )
    assert ended["end_date"] == "2026-11-30" and ended["end_reason"] == "recalled"
    r = await system.client.post(
        f"{API}/postings/{p['id']}/end",
        json={"end_date": "2026-12-30", "reason": "completed"},
        headers=admin(system),
    )
    assert r.status_code == 409 and r.json()["code"] == "posting_ended"
    events = [e for e in await bus_events(system) if e["type"].startswith("registry.posting")]
    common = {
        "posting_id": p["id"],
        "cadre_id": cadre["id"],
        "unit_id": t["village"]["id"],
        "role": "first_secretary",
        "start_date": "2026-01-01",
        "key": p["id"],  # the entity's id: the topic is compacted by it
    }
    assert events == [
        {"type": "registry.posting.opened", **common, "end_date": None, "entity_version": 1},
        {
            "type": "registry.posting.ended",
            **common,
            "end_date": "2026-11-30",
            "reason": "recalled",
            "entity_version": 2,
        },
    ]


async def test_role_must_fit_the_unit_kind(system):
    t = await make_tree(system)
    cadre = await make_cadre(system)
    fits = {
        "commander": ["town"],
        "first_secretary": ["village", "group"],
        "team_leader": ["village", "group"],
        "member": ["village", "group"],
        "expert": ["village", "group"],
    }
    for role, good in fits.items():
        for where in ("county", "town", "village", "group"):
            body = {
                "cadre_id": cadre["id"],
                "unit_id": t[where]["id"],
                "role": role,
                "start_date": "2026-01-01",
                "end_date": "2026-01-01",
            }
            r = await system.client.post(f"{API}/postings", json=body, headers=admin(system))
            if where in good:
                assert r.status_code == 201, (role, where, r.text)
                await post(
                    system,
                    f"/postings/{r.json()['id']}/end",
                    {"end_date": "2026-01-01", "reason": "completed"},
                    status=200,
                )
                # Free the date again for the next try.
                async with system.transaction("registry") as s:
                    await s.execute(delete(Posting))
            else:
                assert r.status_code == 422, (role, where)
                assert r.json()["field"] == "role" and r.json()["code"] == "role_unit_mismatch"


async def test_one_posting_at_a_time(system):
    t = await make_tree(system)
    cadre = await make_cadre(system)
    first = await make_posting(system, cadre["id"], t["village"]["id"], start_date="2026-01-01")

    async def try_open(start, end=None, unit="village2"):
        body = {
            "cadre_id": cadre["id"],
            "unit_id": t[unit]["id"],
            "role": "member",
            "start_date": start,
        }
        if end:
            body["end_date"] = end
        return await system.client.post(f"{API}/postings", json=body, headers=admin(system))

    r = await try_open("2026-06-01")
    assert r.status_code == 409 and r.json()["code"] == "posting_overlap"
    assert r.json()["existing_id"] == first["id"]
    r = await try_open("2025-01-01", "2026-01-01")
    assert r.status_code == 409
    r = await try_open("2025-01-01", "2025-12-31")
    assert r.status_code == 201
    await post(
        system,
        f"/postings/{first['id']}/end",
        {"end_date": "2026-06-30", "reason": "completed"},
        status=200,
    )
    assert (await try_open("2026-06-30")).status_code == 409
    assert (await try_open("2026-07-01")).status_code == 201
    r = await try_open("2026-09-01", "2026-08-01")
    assert r.status_code == 422 and r.json()["field"] == "end_date"
    history = await get(system, "/postings", cadre_id=cadre["id"])
    assert len(history["items"]) == 3


async def test_end_validation(system):
    t = await make_tree(system)
    cadre = await make_cadre(system)
    p = await make_posting(system, cadre["id"], t["village"]["id"], start_date="2026-03-01")
    for body, field in [
        ({"end_date": "2026-02-28", "reason": "completed"}, "end_date"),
        ({"end_date": "2026-03-31", "reason": "bored"}, "reason"),
        ({"reason": "completed"}, "end_date"),
    ]:
        r = await system.client.post(
            f"{API}/postings/{p['id']}/end", json=body, headers=admin(system)
        )
        assert r.status_code == 422 and r.json()["field"] == field
    r = await system.client.post(
        f"{API}/postings/{MISSING}/end",
        json={"end_date": "2026-03-31", "reason": "completed"},
        headers=admin(system),
    )
    assert r.status_code == 404
    for body in (
        {"cadre_id": MISSING, "unit_id": t["village"]["id"]},
        {"cadre_id": cadre["id"], "unit_id": MISSING},
    ):
        r = await system.client.post(
            f"{API}/postings",
            json=body | {"role": "member", "start_date": "2027-01-01"},
            headers=admin(system),
        )
        assert r.status_code == 404


async def test_replacement_ends_one_and_opens_another(system):
    t = await make_tree(system)
    old_hand, new_hand = await make_cadre(system), await make_cadre(system)
    p = await make_posting(system, old_hand["id"], t["village"]["id"], role="first_secretary")
    # Someone else takes over the post.
    out = await post(
        system,
        f"/postings/{p['id']}/replace",
        {"end_date": "2026-11-30", "cadre_id": new_hand["id"]},
        status=200,
    )
    assert out["ended"]["id"] == p["id"] and out["ended"]["end_reason"] == "adjusted"
    assert out["opened"]["cadre_id"] == new_hand["id"]
    assert (
        out["opened"]["unit_id"] == t["village"]["id"]
        and out["opened"]["role"] == "first_secretary"
    )
    assert out["opened"]["start_date"] == "2026-12-01"
    # The new one moves elsewhere (调整岗位).
    moved = await post(
        system,
        f"/postings/{out['opened']['id']}/replace",
        {"end_date": "2027-03-31", "unit_id": t["village2"]["id"], "role": "team_leader"},
        status=200,
    )
    assert moved["opened"]["cadre_id"] == new_hand["id"]
    assert moved["opened"]["unit_id"] == t["village2"]["id"]
    assert (await get(system, f"/cadres/{new_hand['id']}"))["unit_id"] == t["village2"]["id"]
    kinds = [
        (e["type"].rsplit(".", 1)[1], e["posting_id"])
        for e in await bus_events(system)
        if e["type"].startswith("registry.posting")
    ]
    assert kinds == [
        ("opened", p["id"]),
        ("ended", p["id"]),
        ("opened", out["opened"]["id"]),
        ("ended", out["opened"]["id"]),
        ("opened", moved["opened"]["id"]),
    ]


async def test_failed_replacement_changes_nothing(system):
    t = await make_tree(system)
    a, b = await make_cadre(system), await make_cadre(system)
    p = await make_posting(system, a["id"], t["village"]["id"])
    await make_posting(system, b["id"], t["village2"]["id"])
    before = len(await bus_events(system))
    r = await system.client.post(
        f"{API}/postings/{p['id']}/replace",
        json={"end_date": "2026-11-30", "cadre_id": b["id"]},
        headers=admin(system),
    )
    assert r.status_code == 409 and r.json()["code"] == "posting_overlap"
    r = await system.client.post(
        f"{API}/postings/{p['id']}/replace",
        json={"end_date": "2026-11-30", "unit_id": t["town"]["id"]},
        headers=admin(system),
    )
    assert r.status_code == 422 and r.json()["field"] == "role"
    assert (await get(system, f"/postings/{p['id']}"))["end_date"] is None
    assert len(await bus_events(system)) == before


async def test_posting_lists_and_access(system):
    t = await make_tree(system)
    a, b = await make_cadre(system), await make_cadre(system)
    pa = await make_posting(
        system, a["id"], t["group"]["id"], start_date="2026-01-01", end_date="2026-05-31"
    )
    pb = await make_posting(
        system, b["id"], t["village2"]["id"], role="expert", start_date="2026-04-01"
    )

    async def ids(headers=None, **params):
        return {
            p["id"] for p in (await get(system, "/postings", headers=headers, **params))["items"]
        }

    assert await ids() == {pa["id"], pb["id"]}
    assert await ids(unit_id=t["town"]["id"]) == {pa["id"]}
    assert await ids(unit_id=t["county"]["id"]) == {pa["id"], pb["id"]}
    assert await ids(role="expert") == {pb["id"]}
    assert await ids(posted_on="2026-05-31") == {pa["id"], pb["id"]}
    assert await ids(posted_on="2026-06-01") == {pb["id"]}
    assert await ids(ended=True) == set()
    for role in (Role.org_admin, Role.inspector, Role.finance, Role.auditor):
        scoped = system.headers(role, unit_id=t["town2"]["id"])
        assert await ids(headers=scoped) == {pb["id"]}
        r = await system.client.get(f"{API}/postings/{pa['id']}", headers=scoped)
        assert r.status_code == 403
        assert await ids(headers=system.headers(role)) == {pa["id"], pb["id"]}
    me = system.headers(Role.cadre, cadre_id=a["id"])
    assert await ids(headers=me) == {pa["id"]}
    await get(system, f"/postings/{pa['id']}", headers=me)
    r = await system.client.get(f"{API}/postings/{pb['id']}", headers=me)
    assert r.status_code == 403
    body = {
        "cadre_id": a["id"],
        "unit_id": t["village"]["id"],
        "role": "member",
        "start_date": "2027-01-01",
    }
    for role in (Role.cadre, Role.inspector, Role.finance, Role.auditor):
        r = await system.client.post(
            f"{API}/postings", json=body, headers=system.headers(role, cadre_id=a["id"])
        )
        assert r.status_code == 403
        r = await system.client.post(
            f"{API}/postings/{pa['id']}/end",
            json={"end_date": "2026-05-01", "reason": "completed"},
            headers=system.headers(role),
        )
        assert r.status_code == 403
    scoped_admin = admin(system, unit_id=t["town2"]["id"])
    r = await system.client.post(f"{API}/postings", json=body, headers=scoped_admin)
    assert r.status_code == 403
