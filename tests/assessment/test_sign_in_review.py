"""Reviewing sign-ins: `GET /assessment/v1/sign-ins` with its filters, scope and pages, and
findings that cite sign-ins of their subject (`sign_in_ids`)."""

import uuid
from datetime import date

from shared.contracts.enums import Role
from tests.assessment import factories as f

A = "/assessment/v1"


async def review(system, headers=None, expect=200, **params):
    r = await system.client.get(
        f"{A}/sign-ins",
        params={k: str(v) for k, v in params.items()},
        headers=headers or system.headers(Role.inspector),
    )
    assert r.status_code == expect, r.text
    return r.json()


async def signed(system, cadre_id, at, **kwargs) -> dict:
    r = await f.sign_in(system, cadre_id, at, **kwargs)
    assert r.status_code == 201, r.text
    return r.json()


async def scene(system):
    """Two townships: a cadre in each, a fourth cadre never posted but of the first village."""
    t = await f.tree(system)
    here = await f.posted_cadre(system, t.village, start=date(2026, 11, 1))
    there = await f.cadre(system, "王二")
    await f.post(system, there, t.other_village, start=date(2026, 11, 1))
    home = await f.cadre(system, "李村", unit_id=t.village)  # a village cadre, not posted
    s = {
        "ok": await signed(system, here, f.local(2026, 11, 23, 9)),
        # An hour later, 220 km away: implausible travel, and outside the fence.
        "far": await signed(system, here, f.local(2026, 11, 23, 10), lat=27.0, lon=105.5),
        "mock": await signed(system, here, f.local(2026, 11, 24, 21), mock_location=True),
        "there": await signed(
            system, there, f.local(2026, 11, 24, 9), lat=f.OTHER_LAT, lon=f.OTHER_LON
        ),
        "home": await signed(system, home, f.local(2026, 11, 25, 8)),
    }
    return t, here, there, home, s


def ids(page) -> list[str]:
    return [x["id"] for x in page["items"]]


async def test_filters_by_cadre_unit_dates_status_and_reason(system):
    t, here, there, home, s = await scene(system)
    everything = await review(system)
    assert ids(everything) == [s[k]["id"] for k in ("ok", "far", "there", "mock", "home")]
    far = everything["items"][1]
    assert far["status"] == "flagged"
    assert far["reasons"] == ["outside_geofence", "implausible_travel"]
    assert (far["lat"], far["lon"], far["device_id"], far["counted"]) == (
        27.0,
        105.5,
        "phone-1",
        False,
    )
    assert (far["unit_id"], far["local_date"], far["cadre_name"]) == (
        str(t.village),
        "2026-11-23",
        "张永方",
    )

    assert ids(await review(system, cadre_id=here)) == [s[k]["id"] for k in ("ok", "far", "mock")]
    # The township subtree: the posted cadre's and the unposted village cadre's sign-ins.
    assert ids(await review(system, unit_id=t.township)) == [
        s[k]["id"] for k in ("ok", "far", "mock", "home")
    ]
    assert ids(await review(system, unit_id=t.other_township)) == [s["there"]["id"]]
    # Local dates: 24 November 21:00 in Shanghai is 13:00 UTC, still the 24th.
    assert ids(await review(system, **{"from": "2026-11-24", "to": "2026-11-24"})) == [
        s["there"]["id"],
        s["mock"]["id"],
    ]
    assert ids(await review(system, **{"from": "2026-11-25"})) == [s["home"]["id"]]
    assert ids(await review(system, status="flagged", unit_id=t.township)) == [
        s[k]["id"] for k in ("far", "mock", "home")
    ]
    assert ids(await review(system, status="accepted")) == [s["ok"]["id"], s["there"]["id"]]
    assert ids(await review(system, reason="mock_location")) == [s["mock"]["id"]]
    assert ids(await review(system, reason="implausible_travel")) == [s["far"]["id"]]
    assert ids(await review(system, reason="not_posted")) == [s["home"]["id"]]
    assert ids(await review(system, reason="late_sync")) == []


async def test_pages_follow_the_device_time(system):
    *_, s = await scene(system)
    seen, cursor = [], None
    while True:
        page = await review(system, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += ids(page)
        if not (cursor := page["next_cursor"]):
            break
    assert seen == ids(await review(system))
    assert len(seen) == 5


async def test_bad_filters_are_422_naming_the_field(system):
    await scene(system)
    for params, field in (
        ({"from": "2026-11-25", "to": "2026-11-24"}, "to"),
        ({"from": "yesterday"}, "from"),
        ({"to": "1999-01-01"}, "to"),
        ({"status": "rejected!"}, "status"),
        ({"reason": "teleported"}, "reason"),
        ({"unit_id": "nope"}, "unit_id"),
        ({"cursor": "made-up"}, "cursor"),
        ({"reasons": "mock_location"}, "reasons"),
    ):
        body = await review(system, expect=422, **params)
        assert body["field"] == field, (params, body)


async def test_scope_inspector_of_a_township_and_a_cadre_for_themself(system):
    t, here, there, home, s = await scene(system)
    t1 = system.headers(Role.inspector, unit_id=t.township)
    assert set(ids(await review(system, t1))) == {s[k]["id"] for k in ("ok", "far", "mock", "home")}
    assert ids(await review(system, t1, cadre_id=there)) == []
    await review(system, t1, expect=403, unit_id=t.other_township)
    auditor_t2 = system.headers(Role.auditor, unit_id=t.other_township)
    assert ids(await review(system, auditor_t2)) == [s["there"]["id"]]

    mine = system.headers(Role.cadre, cadre_id=there)
    assert ids(await review(system, mine)) == [s["there"]["id"]]
    assert ids(await review(system, mine, cadre_id=there)) == [s["there"]["id"]]
    assert (await review(system, mine, expect=403, cadre_id=here))["code"] == "not_own_record"
    assert (await review(system, system.headers(Role.finance), expect=403))["code"] == "wrong_role"


async def finding(system, subject_type, subject_id, sign_in_ids, headers=None):
    return await system.client.post(
        f"{A}/findings",
        json={
            "subject_type": subject_type,
            "subject_id": str(subject_id),
            "kind": "false_sign_in",
            "severity": "major",
            "observed_at": f.local(2026, 11, 24, 22).isoformat(),
            "description": "signed in from a mock location",
            "sign_in_ids": [str(i) for i in sign_in_ids],
        },
        headers=headers or system.headers(Role.inspector),
    )


async def test_a_finding_cites_its_subjects_sign_ins(system):
    t, here, there, home, s = await scene(system)
    r = await finding(system, "cadre", here, [s["mock"]["id"], s["far"]["id"]])
    assert r.status_code == 201, r.text
    posted = r.json()
    assert posted["sign_in_ids"] == [s["mock"]["id"], s["far"]["id"]]
    got = await system.client.get(
        f"{A}/findings/{posted['id']}", headers=system.headers(Role.org_admin)
    )
    assert got.json()["sign_in_ids"] == posted["sign_in_ids"]
    [event] = [
        e
        for e in await f.events(system, "assessment.finding.posted")
        if e.payload["finding_id"] == posted["id"]
    ]
    assert event.payload["sign_in_ids"] == posted["sign_in_ids"]

    # On a unit: sign-ins of cadres posted (or belonging) in its subtree.
    r = await finding(system, "unit", t.township, [s["mock"]["id"], s["home"]["id"]])
    assert r.status_code == 201, r.text
    # Without any: an empty list, as before the field existed.
    r = await finding(system, "cadre", here, [])
    assert (r.status_code, r.json()["sign_in_ids"]) == (201, [])


async def test_citing_a_sign_in_not_of_the_subject_is_422_and_writes_nothing(system):
    t, here, there, home, s = await scene(system)
    before = len(await f.events(system))
    for subject_type, subject, cited in (
        ("cadre", here, [s["there"]["id"]]),  # another cadre's
        ("cadre", here, [str(uuid.uuid4())]),  # no such sign-in
        ("cadre", here, [s["mock"]["id"], s["mock"]["id"]]),  # twice
        ("unit", t.township, [s["there"]["id"]]),  # a cadre of the other township
        ("unit", t.village, ["not-a-uuid"]),
        ("cadre", here, [s["mock"]["id"]] * 21),  # more than 20
    ):
        r = await finding(system, subject_type, subject, cited)
        assert r.status_code == 422, (subject_type, cited, r.text)
        assert r.json()["field"].startswith("sign_in_ids"), r.json()
    assert len(await f.events(system)) == before
    r = await system.client.get(f"{A}/findings", headers=system.headers(Role.org_admin))
    assert r.json()["items"] == []
