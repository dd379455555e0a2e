"""Findings: effect at once, dismissal, appeal within the window, the appeal's decision."""

from datetime import UTC, timedelta

import pytest

from shared.contracts.enums import Role
from tests.assessment import factories as f

NOW = f.local(2026, 11, 25, 10)
EARLIER = f.local(2026, 11, 10, 10)  # room for a week after it before real time


@pytest.fixture
async def t(system):
    return await f.tree(system)


@pytest.fixture
async def cadre(system, t):
    return await f.posted_cadre(system, t.village)


async def appeal(system, finding_id, headers, reason="I was at the household visit"):
    return await system.client.post(
        f"/assessment/v1/findings/{finding_id}/appeal", json={"reason": reason}, headers=headers
    )


async def decide(system, finding_id, upheld: bool):
    return await system.client.post(
        f"/assessment/v1/findings/{finding_id}/appeal/decide",
        json={"upheld": upheld, "note": "checked the log"},
        headers=system.headers(Role.org_admin),
    )


async def test_a_finding_on_a_cadre_takes_effect_at_once(system, cadre):
    # 17:30 UTC on 31 October is 01:30 on 1 November in Shanghai: a November entry.
    observed = f.local(2026, 10, 31, 17, 30).replace(tzinfo=UTC)
    system.clock.set(observed + timedelta(hours=1))
    posted = await f.finding(system, cadre, observed, severity="serious")
    assert (posted["status"], posted["subject_id"]) == ("posted", str(cadre))
    assert await f.negative_list(system, "2026-10") == []
    [entry] = await f.negative_list(system, "2026-11")
    assert (entry["reason"], entry["source_id"], entry["date"], entry["status"]) == (
        "finding",
        posted["id"],
        "2026-11-01",
        "active",
    )
    assert entry["severity"] == "serious" and entry["id"] == posted["entry_id"]
    [action] = await f.actions(system, cadre_id=cadre)
    assert (action["entry_id"], action["rung"]) == (entry["id"], "study_class")
    types = [e.type for e in await f.events(system)]
    assert types == [
        "assessment.finding.posted",
        "assessment.negative_entry.recorded",
        "assessment.accountability.opened",
    ]


async def test_a_finding_on_a_unit_files_a_unit_entry(system, t):
    posted = await f.finding(system, t.group, NOW, subject_type="unit", kind="work_style")
    [entry] = await f.negative_list(system, "2026-11", subject_type="unit")
    assert (entry["subject_id"], entry["unit_id"]) == (str(t.group), str(t.group))
    assert posted["unit_id"] == str(t.group)
    [recorded] = await f.events(system, "assessment.negative_entry.recorded")
    assert recorded.key == str(t.group)


async def test_bad_findings(system, t, cadre):
    await f.finding(system, f.uuid.uuid4(), NOW, expect=404)
    await f.finding(system, f.uuid.uuid4(), NOW, subject_type="unit", expect=404)
    body = {
        "subject_type": "cadre",
        "subject_id": str(cadre),
        "kind": "absent_from_post",
        "severity": "major",
        "observed_at": NOW.isoformat(),
        "description": "x",
    }
    for field, value in (
        ("kind", "sleeping"),
        ("severity", "fatal"),
        ("subject_type", "household"),
        ("observed_at", "2026-11-25T10:00:00"),
        ("description", ""),
    ):
        r = await system.client.post(
            "/assessment/v1/findings",
            json=body | {field: value},
            headers=system.headers(Role.inspector),
        )
        assert (r.status_code, r.json()["field"]) == (422, field)
    future = body | {"observed_at": (NOW + timedelta(hours=1)).isoformat()}
    r = await system.client.post(
        "/assessment/v1/findings", json=future, headers=system.headers(Role.inspector)
    )
    assert (r.status_code, r.json()["field"]) == (422, "observed_at")
    for role in (Role.cadre, Role.auditor, Role.finance):
        r = await system.client.post(
            "/assessment/v1/findings", json=body, headers=system.headers(role)
        )
        assert r.status_code == 403
    assert await f.negative_list(system, "2026-11") == []


async def test_dismissal_revokes_the_entry_and_cancels_the_pending_action(system, cadre):
    posted = await f.finding(system, cadre, NOW)
    r = await f.dismiss(system, posted["id"], "the inspector checked the wrong village")
    assert (r.status_code, r.json()["status"]) == (200, "dismissed")
    [entry] = await f.negative_list(system, "2026-11")
    assert entry["status"] == "revoked"  # still listed: revocation is never a delete
    [action] = await f.actions(system, cadre_id=cadre)
    assert action["status"] == "cancelled"
    again = await f.dismiss(system, posted["id"])
    assert (again.status_code, again.json()["code"]) == (409, "finding_dismissed")
    types = [e.type for e in await f.events(system)][3:]
    assert types == [
        "assessment.finding.dismissed",
        "assessment.negative_entry.revoked",
        "assessment.accountability.cancelled",
    ]
    r = await system.client.post(
        f"/assessment/v1/findings/{posted['id']}/dismiss",
        json={"reason": "x"},
        headers=system.headers(Role.inspector),
    )
    assert r.status_code == 403
    assert (await f.dismiss(system, f.uuid.uuid4())).status_code == 404
    r = await system.client.post(
        f"/assessment/v1/findings/{posted['id']}/dismiss", json={}, headers=system.headers()
    )
    assert (r.status_code, r.json()["field"]) == (422, "reason")


async def test_the_subject_appeals_within_7_days_of_posting(system, cadre):
    system.clock.set(EARLIER.astimezone(UTC))
    posted = await f.finding(system, cadre, EARLIER - timedelta(days=3))
    other = system.headers(Role.cadre, cadre_id=await f.cadre(system))
    assert (await appeal(system, posted["id"], other)).status_code == 403
    assert (await appeal(system, posted["id"], system.headers(Role.org_admin))).status_code == 403
    system.clock.advance(days=7)  # exactly 7 days after posting: still in time
    r = await appeal(system, posted["id"], system.headers(Role.cadre, cadre_id=cadre))
    assert (r.status_code, r.json()["status"]) == (200, "appealed")
    again = await appeal(system, posted["id"], system.headers(Role.cadre, cadre_id=cadre))
    assert (again.status_code, again.json()["code"]) == (409, "appeal_exists")
    [appealed] = await f.events(system, "assessment.finding.appealed")
    assert appealed.payload["reason"] == "I was at the household visit"


async def test_an_appeal_after_the_window_is_409(system, cadre):
    system.clock.set(EARLIER.astimezone(UTC))
    posted = await f.finding(system, cadre, EARLIER)
    system.clock.advance(days=7, seconds=1)
    r = await appeal(system, posted["id"], system.headers(Role.cadre, cadre_id=cadre))
    assert (r.status_code, r.json()["code"]) == (409, "appeal_window_closed")


async def test_a_unit_appeals_through_a_user_scoped_to_it(system, t):
    posted = await f.finding(system, t.village, NOW, subject_type="unit")
    r = await appeal(system, posted["id"], system.headers(Role.org_admin, unit_id=t.township))
    assert r.status_code == 403
    r = await appeal(system, posted["id"], system.headers(Role.cadre, unit_id=t.village))
    assert r.status_code == 200


async def test_an_upheld_appeal_dismisses_the_finding(system, cadre):
    posted = await f.finding(system, cadre, NOW)
    await appeal(system, posted["id"], system.headers(Role.cadre, cadre_id=cadre))
    r = await decide(system, posted["id"], upheld=True)
    assert (r.status_code, r.json()["status"], r.json()["appeal_upheld"]) == (
        200,
        "dismissed",
        True,
    )
    assert [e["status"] for e in await f.negative_list(system, "2026-11")] == ["revoked"]
    assert [a["status"] for a in await f.actions(system)] == ["cancelled"]
    again = await decide(system, posted["id"], upheld=False)
    assert (again.status_code, again.json()["code"]) == (409, "finding_dismissed")
    dismissed = await f.dismiss(system, posted["id"])
    assert dismissed.status_code == 409
    late = await appeal(system, posted["id"], system.headers(Role.cadre, cadre_id=cadre))
    assert (late.status_code, late.json()["code"]) == (409, "finding_dismissed")


async def test_a_rejected_appeal_leaves_the_finding_in_force(system, cadre):
    posted = await f.finding(system, cadre, NOW)
    not_yet = await decide(system, posted["id"], upheld=True)
    assert (not_yet.status_code, not_yet.json()["code"]) == (409, "no_appeal")
    await appeal(system, posted["id"], system.headers(Role.cadre, cadre_id=cadre))
    r = await decide(system, posted["id"], upheld=False)
    assert (r.status_code, r.json()["status"], r.json()["appeal_upheld"]) == (200, "posted", False)
    assert [e["status"] for e in await f.negative_list(system, "2026-11")] == ["active"]
    assert [a["status"] for a in await f.actions(system)] == ["pending"]
    [decided] = await f.events(system, "assessment.finding.appeal_decided")
    assert decided.payload["upheld"] is False
    # org_admin may still dismiss it afterwards.
    assert (await f.dismiss(system, posted["id"])).status_code == 200


async def test_reading_findings(system, t, cadre):
    posted = await f.finding(system, cadre, NOW)
    await f.finding(system, t.other_village, NOW, subject_type="unit")
    for headers, status in (
        (system.headers(Role.auditor), 200),
        (system.headers(Role.cadre, cadre_id=cadre), 200),
        (system.headers(Role.cadre, cadre_id=await f.cadre(system)), 403),
    ):
        r = await system.client.get(f"/assessment/v1/findings/{posted['id']}", headers=headers)
        assert r.status_code == status
    r = await system.client.get(
        "/assessment/v1/findings",
        params={"unit_id": str(t.township)},
        headers=system.headers(Role.inspector),
    )
    assert [x["id"] for x in r.json()["items"]] == [posted["id"]]
    r = await system.client.get(
        "/assessment/v1/findings", params={"status": "dismissed"}, headers=system.headers()
    )
    assert r.json()["items"] == []
    # A cadre lists the findings about themself (#13 finding 6), not another's.
    r = await system.client.get(
        "/assessment/v1/findings", headers=system.headers(Role.cadre, cadre_id=cadre)
    )
    assert [x["id"] for x in r.json()["items"]] == [posted["id"]]
    r = await system.client.get(
        "/assessment/v1/findings",
        params={"subject_id": str(t.other_village)},
        headers=system.headers(Role.cadre, cadre_id=cadre),
    )
    assert (r.status_code, r.json()["code"]) == (403, "not_own_record")
    assert (
        await system.client.get(
            f"/assessment/v1/findings/{f.uuid.uuid4()}", headers=system.headers()
        )
    ).status_code == 404


async def test_a_scoped_reader_lists_findings_of_its_subtree(system, t, cadre):
    here = await f.finding(system, cadre, NOW)
    await f.finding(system, t.other_village, NOW, subject_type="unit")
    r = await system.client.get(
        "/assessment/v1/findings", headers=system.headers(Role.inspector, unit_id=t.township)
    )
    assert [x["id"] for x in r.json()["items"]] == [here["id"]]
    r = await system.client.get(
        "/assessment/v1/findings",
        params={"unit_id": str(t.other_village)},
        headers=system.headers(Role.org_admin, unit_id=t.township),
    )
    assert r.status_code == 403
