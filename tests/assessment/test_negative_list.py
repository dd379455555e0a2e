"""The negative list (dates, months, units, revocation) and the accountability ladder."""

from datetime import UTC, date

import pytest

from shared.contracts.enums import Role
from tests.assessment import factories as f


@pytest.fixture
async def t(system):
    return await f.tree(system)


async def test_an_entry_is_filed_under_the_unit_of_the_posting_on_its_date(system, t):
    c = await f.cadre(system)
    first = await f.post(system, c, t.group)
    await f.end_posting(system, first, c, t.group, date(2026, 11, 10))
    await f.post(system, c, t.other_village, start=date(2026, 11, 11))
    await f.finding(system, c, f.local(2026, 11, 10, 15))
    await f.finding(system, c, f.local(2026, 11, 11, 9))
    entries = await f.negative_list(system, "2026-11")
    assert [(e["date"], e["unit_id"]) for e in entries] == [
        ("2026-11-10", str(t.group)),
        ("2026-11-11", str(t.other_village)),
    ]
    # unit_id means the subtree: the township holds the group's entry, not the other's.
    in_township = await f.negative_list(system, "2026-11", unit_id=t.township)
    assert [e["date"] for e in in_township] == ["2026-11-10"]
    in_other = await f.negative_list(system, "2026-11", unit_id=t.other_township)
    assert [e["date"] for e in in_other] == ["2026-11-11"]
    assert len(await f.negative_list(system, "2026-11", unit_id=t.county)) == 2


async def test_a_cadre_never_posted_files_under_their_own_unit(system, t):
    village_cadre = await f.cadre(system, category=f.CadreCategory.village_cadre, unit_id=t.village)
    await f.finding(system, village_cadre, f.local(2026, 11, 10, 15))
    [entry] = await f.negative_list(system, "2026-11", unit_id=t.township)
    assert (entry["subject_id"], entry["unit_id"]) == (str(village_cadre), str(t.village))


async def test_the_list_is_per_month_by_entry_date(system, t):
    c = await f.posted_cadre(system, t.village)
    await f.finding(system, c, f.local(2026, 10, 31, 23, 59))
    await f.finding(system, c, f.local(2026, 11, 1, 0, 0))
    assert [e["date"] for e in await f.negative_list(system, "2026-10")] == ["2026-10-31"]
    assert [e["date"] for e in await f.negative_list(system, "2026-11")] == ["2026-11-01"]
    assert [e["month"] for e in await f.negative_list(system, "2026-11")] == ["2026-11"]


async def test_filters_and_the_wire_shape(system, t):
    c = await f.posted_cadre(system, t.village)
    on_cadre = await f.finding(system, c, f.local(2026, 11, 20, 10))
    await f.finding(system, t.village, f.local(2026, 11, 20, 11), subject_type="unit")
    await f.dismiss(system, on_cadre["id"])
    everything = await f.negative_list(system, "2026-11")
    assert {k for e in everything for k in e} >= {
        "id",
        "subject_type",
        "subject_id",
        "reason",
        "source_id",
        "date",
        "month",
        "status",
    }
    assert {e["subject_type"]: e["status"] for e in everything} == {
        "cadre": "revoked",
        "unit": "active",
    }
    assert [
        e["subject_type"] for e in await f.negative_list(system, "2026-11", subject_type="unit")
    ] == ["unit"]
    assert [
        e["subject_id"] for e in await f.negative_list(system, "2026-11", status="revoked")
    ] == [str(c)]
    assert [e["source_id"] for e in await f.negative_list(system, "2026-11", subject_id=c)] == [
        on_cadre["id"]
    ]


async def test_the_list_pages_by_cursor(system, t):
    c = await f.posted_cadre(system, t.village)
    for day in range(1, 8):
        await f.finding(system, c, f.local(2026, 11, day, 10))
    seen, cursor = [], None
    while True:
        r = await system.client.get(
            "/assessment/v1/negative-list",
            params={"month": "2026-11", "limit": 3} | ({"cursor": cursor} if cursor else {}),
            headers=system.headers(Role.auditor),
        )
        seen += [e["date"] for e in r.json()["items"]]
        if not (cursor := r.json()["next_cursor"]):
            break
    assert seen == [f"2026-11-0{d}" for d in range(1, 8)]
    r = await system.client.get(
        "/assessment/v1/negative-list",
        params={"month": "2026-11", "cursor": "garbage"},
        headers=system.headers(Role.auditor),
    )
    assert (r.status_code, r.json()["field"]) == (422, "cursor")


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "november", ""])
async def test_a_bad_month_is_422(system, month):
    r = await system.client.get(
        "/assessment/v1/negative-list", params={"month": month}, headers=system.headers()
    )
    assert (r.status_code, r.json()["field"]) == (422, "month")


async def test_who_reads_the_negative_list(system, t):
    for role, status in (
        (Role.org_admin, 200),
        (Role.auditor, 200),
        (Role.inspector, 200),
        (Role.cadre, 200),  # their own entries only (none: this login is linked to no cadre)
        (Role.finance, 403),
    ):
        r = await system.client.get(
            "/assessment/v1/negative-list",
            params={"month": "2026-11"},
            headers=system.headers(role),
        )
        assert r.status_code == status
    scoped = system.headers(Role.org_admin, unit_id=t.township)
    r = await system.client.get(
        "/assessment/v1/negative-list",
        params={"month": "2026-11", "unit_id": str(t.other_township)},
        headers=scoped,
    )
    assert r.status_code == 403


async def test_the_scope_of_a_scoped_org_admin_is_its_subtree(system, t):
    here = await f.posted_cadre(system, t.village)
    there = await f.posted_cadre(system, t.other_village)
    await f.finding(system, here, f.local(2026, 11, 20, 10))
    await f.finding(system, there, f.local(2026, 11, 20, 10))
    r = await system.client.get(
        "/assessment/v1/negative-list",
        params={"month": "2026-11"},
        headers=system.headers(Role.org_admin, unit_id=t.township),
    )
    assert [e["subject_id"] for e in r.json()["items"]] == [str(here)]


# --- the ladder --------------------------------------------------------------------------


async def test_one_two_three_entries_in_the_year_climb_the_ladder(system, t):
    c = await f.posted_cadre(system, t.village)
    for day in (3, 4, 5, 6):
        await f.finding(system, c, f.local(2026, 11, day, 10))
    ladder = await f.actions(system, cadre_id=c)
    assert [(a["rung"], a["count"], a["status"]) for a in ladder] == [
        ("study_class", 1, "pending"),
        ("admonition_talk", 2, "pending"),
        ("penalty", 3, "pending"),
        ("penalty", 4, "pending"),
    ]
    opened = await f.events(system, "assessment.accountability.opened")
    assert [e.payload["rung"] for e in opened] == [a["rung"] for a in ladder]
    assert all(e.key == str(c) for e in opened)


async def test_the_ladder_counts_within_the_calendar_year_of_the_entry(system, t):
    system.clock.set(f.local(2026, 1, 2, 10).astimezone(UTC))
    c = await f.posted_cadre(system, t.village, start=date(2025, 1, 1))
    await f.finding(system, c, f.local(2025, 12, 31, 23, 59))
    await f.finding(system, c, f.local(2025, 12, 31, 23, 0))
    await f.finding(system, c, f.local(2026, 1, 1, 0, 0))
    ladder = await f.actions(system, cadre_id=c)
    assert sorted((a["entry_date"], a["count"], a["rung"]) for a in ladder) == [
        ("2025-12-31", 1, "study_class"),
        ("2025-12-31", 2, "admonition_talk"),
        ("2026-01-01", 1, "study_class"),
    ]


async def test_revoked_entries_do_not_count(system, t):
    c = await f.posted_cadre(system, t.village)
    first = await f.finding(system, c, f.local(2026, 11, 3, 10))
    assert (await f.dismiss(system, first["id"])).status_code == 200
    await f.finding(system, c, f.local(2026, 11, 4, 10))
    assert [(a["count"], a["status"]) for a in await f.actions(system, cadre_id=c)] == [
        (1, "cancelled"),
        (1, "pending"),
    ]


async def test_a_unit_entry_opens_no_action(system, t):
    await f.finding(system, t.village, f.local(2026, 11, 3, 10), subject_type="unit")
    assert await f.actions(system) == []


async def carry_out(system, action_id, body):
    return await system.client.post(
        f"/assessment/v1/accountability-actions/{action_id}/carry-out",
        json=body,
        headers=system.headers(Role.org_admin),
    )


async def test_carrying_out_a_penalty_needs_its_measure(system, t):
    c = await f.posted_cadre(system, t.village)
    for day in (3, 4, 5):
        await f.finding(system, c, f.local(2026, 11, day, 10))
    study, talk, penalty = await f.actions(system, cadre_id=c)
    r = await carry_out(system, penalty["id"], {"note": "decided"})
    assert (r.status_code, r.json()["field"]) == (422, "measure")
    r = await carry_out(system, study["id"], {"measure": "dismissal", "note": "x"})
    assert (r.status_code, r.json()["field"]) == (422, "measure")
    r = await carry_out(system, penalty["id"], {"measure": "nonsense", "note": "x"})
    assert (r.status_code, r.json()["field"]) == (422, "measure")
    r = await carry_out(
        system, penalty["id"], {"measure": "suspension_for_inspection", "note": "停职检查"}
    )
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["measure"]) == ("carried_out", "suspension_for_inspection")
    r = await carry_out(system, study["id"], {"note": "attended the class"})
    assert (r.status_code, r.json()["status"], r.json()["measure"]) == (200, "carried_out", None)
    again = await carry_out(system, study["id"], {"note": "twice"})
    assert (again.status_code, again.json()["code"]) == (409, "action_not_pending")
    done = await f.events(system, "assessment.accountability.carried_out")
    assert [e.payload["measure"] for e in done] == ["suspension_for_inspection", None]
    missing = await carry_out(system, f.uuid.uuid4(), {"note": "x"})
    assert missing.status_code == 404
    r = await system.client.post(
        f"/assessment/v1/accountability-actions/{talk['id']}/carry-out",
        json={"note": "x"},
        headers=system.headers(Role.auditor),
    )
    assert r.status_code == 403


async def test_revoking_the_entry_cancels_a_pending_action_not_a_carried_out_one(system, t):
    c = await f.posted_cadre(system, t.village)
    first = await f.finding(system, c, f.local(2026, 11, 3, 10))
    second = await f.finding(system, c, f.local(2026, 11, 4, 10))
    study, talk = await f.actions(system, cadre_id=c)
    assert (await carry_out(system, study["id"], {"note": "done"})).status_code == 200
    await f.dismiss(system, first["id"])
    # The second entry is now the first of the year: its talk is re-sequenced to a study class.
    now = {a["id"]: a for a in await f.actions(system, cadre_id=c)}
    assert (now.pop(study["id"])["status"], now.pop(talk["id"])["status"]) == (
        "carried_out",
        "cancelled",
    )
    [studying] = now.values()
    assert (studying["entry_id"], studying["rung"], studying["status"]) == (
        talk["entry_id"],
        "study_class",
        "pending",
    )
    await f.dismiss(system, second["id"])
    assert [a["status"] for a in await f.actions(system, cadre_id=c)] == [
        "carried_out",
        "cancelled",
        "cancelled",
    ]
    cancelled = await f.events(system, "assessment.accountability.cancelled")
    assert [e.payload["action_id"] for e in cancelled] == [talk["id"], studying["id"]]
    cancel = await carry_out(system, talk["id"], {"note": "too late"})
    assert cancel.status_code == 409


async def test_actions_are_listed_by_cadre_and_status(system, t):
    c = await f.posted_cadre(system, t.village)
    other = await f.posted_cadre(system, t.village)
    first = await f.finding(system, c, f.local(2026, 11, 3, 10))
    await f.finding(system, c, f.local(2026, 11, 4, 10))
    await f.finding(system, other, f.local(2026, 11, 4, 10))
    await f.dismiss(system, first["id"])
    # The dismissal cancels the first's study class, and the second's talk is re-sequenced
    # to a study class (cancelled, re-opened).
    assert len(await f.actions(system)) == 4
    assert sorted(a["status"] for a in await f.actions(system, cadre_id=c)) == [
        "cancelled",
        "cancelled",
        "pending",
    ]
    assert len(await f.actions(system, status="pending")) == 2
    assert len(await f.actions(system, cadre_id=c, status="cancelled")) == 2
    own = await system.client.get(
        "/assessment/v1/accountability-actions", headers=system.headers(Role.cadre, cadre_id=c)
    )
    assert {a["cadre_id"] for a in own.json()["items"]} == {str(c)}
    theirs = await system.client.get(
        "/assessment/v1/accountability-actions",
        params={"cadre_id": str(other)},
        headers=system.headers(Role.cadre, cadre_id=c),
    )
    assert theirs.status_code == 403
