"""The whole chain through HTTP: sign-ins → week close → negative list → ladder →
revocation → cancellation, with every event checked on the bus."""

from datetime import date

from shared.contracts.enums import Role
from tests.assessment import factories as f

W47 = "2026-W47"


async def test_sign_ins_to_week_close_to_ladder_to_cancellation(system):
    t = await f.tree(system)
    c = await f.posted_cadre(system, t.group)
    cadre = system.headers(Role.cadre, cadre_id=c)

    # A phone uploads its week: four days and four nights, one day short.
    items = [f.sign_in_body(c, at) for at in f.full_week(date(2026, 11, 16), days=4)]
    r = await system.client.post(
        "/assessment/v1/sign-ins/batch", json={"items": items}, headers=cadre
    )
    assert [x["status"] for x in r.json()["results"]] == ["accepted"] * 8

    # Monday 06:00 has passed: org_admin closes the week.
    assert await f.close(system, W47) == {
        "week": W47,
        "judged": 1,
        "compliant": 0,
        "non_compliant": 1,
    }
    [presence_entry] = await f.negative_list(system, "2026-11", unit_id=t.township)
    assert (presence_entry["reason"], presence_entry["date"], presence_entry["unit_id"]) == (
        "presence_week",
        "2026-11-22",
        str(t.group),
    )

    # Two inspections find the cadre absent: the ladder climbs to a penalty.
    second = await f.finding(system, c, f.local(2026, 11, 23, 15))
    third = await f.finding(system, c, f.local(2026, 11, 24, 15), severity="serious")
    mine = await system.client.get("/assessment/v1/accountability-actions", headers=cadre)
    ladder = mine.json()["items"]
    assert [(a["rung"], a["count"], a["status"]) for a in ladder] == [
        ("study_class", 1, "pending"),
        ("admonition_talk", 2, "pending"),
        ("penalty", 3, "pending"),
    ]

    # The third finding is dismissed: its entry is revoked, its penalty cancelled.
    assert (await f.dismiss(system, third["id"], "wrong person photographed")).status_code == 200
    # The phone then syncs a sign-in from Saturday: the week is re-judged compliant.
    r = await f.sign_in(system, c, f.local(2026, 11, 21, 10))
    assert r.status_code == 201
    assert (await f.presence(system, c, W47))["compliant"] is True
    # The second finding is now the year's first entry: its talk becomes a study class.
    ladder = await f.actions(system, cadre_id=c)
    assert sorted((a["entry_date"], a["rung"], a["status"]) for a in ladder) == [
        ("2026-11-22", "study_class", "cancelled"),
        ("2026-11-23", "admonition_talk", "cancelled"),
        ("2026-11-23", "study_class", "pending"),
        ("2026-11-24", "penalty", "cancelled"),
    ]
    entries = await f.negative_list(system, "2026-11")
    assert [(e["reason"], e["status"]) for e in entries] == [
        ("presence_week", "revoked"),
        ("finding", "active"),
        ("finding", "revoked"),
    ]

    # Every step announced itself, in order, keyed by the cadre.
    events = [e for e in await f.events(system) if e.type != "assessment.signin.recorded"]
    assert all(e.key == str(c) for e in events if e.type != "assessment.week.closed")
    steps = [(e.type.removeprefix("assessment."), _gist(e.payload)) for e in events]
    assert steps == [
        (
            "presence.judged",
            {"week": W47, "days": 4, "nights": 4, "compliant": False, "judged": True, "v": 1},
        ),
        ("negative_entry.recorded", {"reason": "presence_week", "status": "active", "v": 1}),
        ("accountability.opened", {"rung": "study_class", "count": 1, "status": "pending", "v": 1}),
        ("week.closed", {"week": W47, "judged": 1, "compliant": 0, "non_compliant": 1}),
        ("finding.posted", {"status": "posted"}),
        ("negative_entry.recorded", {"reason": "finding", "status": "active", "v": 1}),
        (
            "accountability.opened",
            {"rung": "admonition_talk", "count": 2, "status": "pending", "v": 1},
        ),
        ("finding.posted", {"status": "posted"}),
        ("negative_entry.recorded", {"reason": "finding", "status": "active", "v": 1}),
        ("accountability.opened", {"rung": "penalty", "count": 3, "status": "pending", "v": 1}),
        ("finding.dismissed", {"reason": "wrong person photographed", "status": "dismissed"}),
        ("negative_entry.revoked", {"reason": "finding", "status": "revoked", "v": 2}),
        (
            "accountability.cancelled",
            {"rung": "penalty", "count": 3, "status": "cancelled", "v": 2},
        ),
        (
            "presence.judged",
            {"week": W47, "days": 5, "nights": 4, "compliant": True, "judged": True, "v": 2},
        ),
        ("negative_entry.revoked", {"reason": "presence_week", "status": "revoked", "v": 2}),
        (
            "accountability.cancelled",
            {"rung": "study_class", "count": 1, "status": "cancelled", "v": 2},
        ),
        (
            "accountability.cancelled",
            {"rung": "admonition_talk", "count": 2, "status": "cancelled", "v": 2},
        ),
        ("accountability.opened", {"rung": "study_class", "count": 1, "status": "pending", "v": 1}),
        ("week.closed", {"week": W47, "judged": 1, "compliant": 1, "non_compliant": 0}),
    ]
    by_type = {}
    for e in events:
        by_type.setdefault(e.type, []).append(e.payload)
    revoked = by_type["assessment.negative_entry.revoked"]
    cancelled = by_type["assessment.accountability.cancelled"]
    # Each revoked entry's action is cancelled; the last cancellation re-sequences the talk.
    assert [x["entry_id"] for x in cancelled[:2]] == [x["entry_id"] for x in revoked]
    assert cancelled[2]["note"].startswith("re-sequenced by date")
    assert revoked[0]["source_id"] == third["id"]
    assert by_type["assessment.negative_entry.recorded"][1]["source_id"] == second["id"]


def _gist(payload: dict) -> dict:
    keys = ("week", "days", "nights", "compliant", "judged", "non_compliant", "reason", "rung")
    keys += ("count", "status")
    gist = {k: payload[k] for k in keys if k in payload}
    if "entity_version" in payload:  # each change of a record is its next version
        gist["v"] = payload["entity_version"]
    return gist
