"""Self-service and inspection reads, names next to ids, the negative list's `reason` filter.

Regressions of issue #13: finding 6 (a cadre cannot see what they must appeal; inspectors
cannot read the negative list), 8 (no names on the negative list, actions, findings) and
10 (`?reason=` on the negative list is ignored).
"""

from datetime import UTC, datetime, timedelta

import pytest

from services.assessment.service.common import UNITS
from shared.contracts.enums import Role
from tests.assessment import factories as f

A = "/assessment/v1"
W47 = "2026-W47"  # 16–22 November: ended by the fixture clock's Wednesday 25 November


@pytest.fixture
async def t(system):
    return await f.tree(system)


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


async def get(system, path: str, headers: dict, **params) -> dict:
    r = await system.client.get(
        f"{A}{path}", params={k: str(v) for k, v in params.items()}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_cadre_reads_their_findings_entries_actions_and_what_to_appeal(system, t):
    me = await f.posted_cadre(system, t.village)
    other = await f.posted_cadre(system, t.village)
    mine = await f.finding(system, me, f.local(2026, 11, 24, 10))
    await f.finding(system, other, f.local(2026, 11, 24, 11))
    await f.close(system, W47)  # neither signed in: a presence-week entry each, no appeal
    as_me = system.headers(Role.cadre, cadre_id=me)

    [finding] = (await get(system, "/findings", as_me))["items"]
    deadline = moment(finding["posted_at"]) + timedelta(days=7)
    assert finding["id"] == mine["id"]
    assert (moment(finding["appeal_deadline"]), finding["appealable"]) == (deadline, True)

    entries = (await get(system, "/negative-list", as_me, month="2026-11"))["items"]
    assert {(e["subject_id"], e["reason"]) for e in entries} == {
        (str(me), "finding"),
        (str(me), "presence_week"),
    }

    actions = (await get(system, "/accountability-actions", as_me))["items"]
    assert {a["cadre_id"] for a in actions} == {str(me)}
    by_reason = {a["reason"]: a for a in actions}
    from_finding, from_week = by_reason["finding"], by_reason["presence_week"]
    assert (from_finding["finding_id"], from_finding["source_id"]) == (mine["id"], mine["id"])
    assert moment(from_finding["appeal_deadline"]) == deadline
    assert from_finding["appealable"] is True
    assert from_week["finding_id"] is None and from_week["appeal_deadline"] is None
    assert from_week["appealable"] is False
    assert (await get(system, f"/cadres/{me}/presence", as_me, week=W47))["judged"] is True

    # Another's records: 403, whichever list is asked.
    for path, params in (
        ("/findings", {"subject_id": other}),
        ("/negative-list", {"month": "2026-11", "subject_id": other}),
        ("/accountability-actions", {"cadre_id": other}),
        (f"/cadres/{other}/presence", {"week": W47}),
    ):
        r = await system.client.get(f"{A}{path}", params=params, headers=as_me)
        assert r.status_code == 403, (path, r.text)

    # Past the deadline the finding can no longer be appealed, and both reads say so.
    system.clock.set(deadline + timedelta(seconds=1))
    as_me = system.headers(Role.cadre, cadre_id=me)  # a token of that time
    [finding] = (await get(system, "/findings", as_me))["items"]
    assert finding["appealable"] is False
    actions = (await get(system, "/accountability-actions", as_me, status="pending"))["items"]
    assert [a["appealable"] for a in actions if a["reason"] == "finding"] == [False]
    r = await system.client.post(
        f"{A}/findings/{mine['id']}/appeal", json={"reason": "I was there"}, headers=as_me
    )
    assert (r.status_code, r.json()["code"]) == (409, "appeal_window_closed")


async def test_an_appealed_finding_is_no_longer_appealable(system, t):
    me = await f.posted_cadre(system, t.village)
    mine = await f.finding(system, me, f.local(2026, 11, 24, 10))
    as_me = system.headers(Role.cadre, cadre_id=me)
    r = await system.client.post(
        f"{A}/findings/{mine['id']}/appeal", json={"reason": "I was there"}, headers=as_me
    )
    assert r.status_code == 200 and r.json()["appealable"] is False
    [action] = (await get(system, "/accountability-actions", as_me))["items"]
    assert (action["finding_id"], action["appealable"]) == (mine["id"], False)


async def test_inspectors_read_the_negative_list_and_presence_in_their_subtree(system, t):
    here = await f.posted_cadre(system, t.village)
    there = await f.posted_cadre(system, t.other_village)
    await f.finding(system, here, f.local(2026, 11, 20, 10))
    await f.finding(system, there, f.local(2026, 11, 20, 10))
    scoped = system.headers(Role.inspector, unit_id=t.township)
    entries = (await get(system, "/negative-list", scoped, month="2026-11"))["items"]
    assert [e["subject_id"] for e in entries] == [str(here)]
    everyone = await get(system, "/negative-list", system.headers(Role.inspector), month="2026-11")
    assert {e["subject_id"] for e in everyone["items"]} == {str(here), str(there)}
    assert (await get(system, f"/cadres/{here}/presence", scoped, week=W47))["cadre_id"] == str(
        here
    )
    presence = (await get(system, f"/units/{t.township}/presence", scoped, week=W47))["items"]
    assert [p["cadre_id"] for p in presence] == [str(here)]
    for path, params in (
        ("/negative-list", {"month": "2026-11", "unit_id": t.other_township}),
        (f"/cadres/{there}/presence", {"week": W47}),
        (f"/units/{t.other_township}/presence", {"week": W47}),
    ):
        r = await system.client.get(f"{A}{path}", params=params, headers=scoped)
        assert (r.status_code, r.json()["code"]) == (403, "out_of_scope"), path


async def test_lists_carry_the_names_of_cadres_units_and_townships(system, t):
    c = await f.cadre(system, "王小平")
    await f.post(system, c, t.group)
    on_cadre = await f.finding(system, c, f.local(2026, 11, 20, 10))
    await f.finding(system, t.village, f.local(2026, 11, 20, 11), subject_type="unit")
    names = await _unit_names(system)
    group, village, township = names[t.group], names[t.village], names[t.township]

    entries = sorted(await f.negative_list(system, "2026-11"), key=lambda e: e["subject_type"])
    assert [
        (e["subject_name"], e["unit_name"], e["township_id"], e["township_name"]) for e in entries
    ] == [
        ("王小平", group, str(t.township), township),
        (village, village, str(t.township), township),
    ]
    [action] = await f.actions(system)
    assert (action["cadre_name"], action["unit_name"], action["township_name"]) == (
        "王小平",
        group,
        township,
    )
    found = (await get(system, "/findings", system.headers(Role.inspector)))["items"]
    assert {x["subject_name"] for x in found} == {"王小平", village}
    one = await get(system, f"/findings/{on_cadre['id']}", system.headers(Role.inspector))
    assert (one["subject_name"], one["unit_name"], one["township_name"]) == (
        "王小平",
        group,
        township,
    )
    # Names come from the projection: a rename in the registry shows on the next read.
    await f.cadre(system, "王晓平", c)
    [action] = await f.actions(system)
    assert action["cadre_name"] == "王晓平"
    assert (await f.negative_list(system, "2026-11", subject_id=c))[0]["subject_name"] == "王晓平"


async def _unit_names(system) -> dict:
    async with system.transaction("assessment") as s:
        rows = await s.execute(UNITS.select())
        return {r.unit_id: r.name for r in rows}


async def test_the_reason_filter_is_honoured_and_a_bad_reason_is_422(system, t):
    c = await f.posted_cadre(system, t.village)
    await f.finding(system, c, f.local(2026, 11, 24, 10))
    await f.close(system, W47)
    everything = await f.negative_list(system, "2026-11")
    assert sorted(e["reason"] for e in everything) == ["finding", "presence_week"]
    for reason in ("finding", "presence_week"):
        assert [e["reason"] for e in await f.negative_list(system, "2026-11", reason=reason)] == [
            reason
        ]
    assert await f.negative_list(system, "2026-11", reason="duty_missed") == []
    r = await system.client.get(
        f"{A}/negative-list",
        params={"month": "2026-11", "reason": "absent"},
        headers=system.headers(Role.org_admin),
    )
    assert (r.status_code, r.json()["field"]) == (422, "reason")
