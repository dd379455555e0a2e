"""Leave (请销假): request → approve / reject → cancel → return, and `not_returned`."""

from datetime import UTC, date

import pytest

from shared.contracts.enums import Role
from tests.assessment import factories as f

W47 = "2026-W47"


@pytest.fixture
async def cadre(system):
    return await f.posted_cadre(system, (await f.tree(system)).village)


async def ask(system, cadre_id, start, end, *, headers=None, kind="personal"):
    return await system.client.post(
        "/assessment/v1/leave-requests",
        json={
            "cadre_id": str(cadre_id),
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "kind": kind,
            "reason": "harvest at home",
        },
        headers=headers or system.headers(Role.cadre, cadre_id=cadre_id),
    )


async def act(system, leave_id, action, headers=None, **body):
    return await system.client.post(
        f"/assessment/v1/leave-requests/{leave_id}/{action}",
        json=body or None,
        headers=headers or system.headers(Role.org_admin),
    )


async def approved(system, cadre_id, start, end) -> dict:
    r = await ask(system, cadre_id, start, end)
    assert r.status_code == 201, r.text
    r = await act(system, r.json()["id"], "approve")
    assert r.status_code == 200, r.text
    return r.json()


async def test_request_approve_return_with_events(system, cadre):
    r = await ask(system, cadre, date(2026, 11, 23), date(2026, 11, 27), kind="sick")
    assert r.status_code == 201
    leave = r.json()
    assert (leave["status"], leave["kind"], leave["returned_on"]) == ("requested", "sick", None)
    assert (await act(system, leave["id"], "approve")).json()["status"] == "approved"
    mine = system.headers(Role.cadre, cadre_id=cadre)
    back = await act(system, leave["id"], "return", mine)
    assert (back.status_code, back.json()["status"], back.json()["returned_on"]) == (
        200,
        "returned",
        "2026-11-25",
    )
    changes = await f.events(system, "assessment.leave.changed")
    assert [e.payload["status"] for e in changes] == ["requested", "approved", "returned"]
    # Back on Wednesday: Monday and Tuesday stay leave days, the rest of the week does not.
    p = await f.presence(system, cadre, "2026-W48")
    assert (p["leave_days"], p["days"], p["nights"]) == (2, 2, 2)


async def test_who_may_do_what(system, cadre):
    other = system.headers(Role.cadre, cadre_id=await f.cadre(system))
    assert (
        await ask(system, cadre, date(2026, 12, 1), date(2026, 12, 2), headers=other)
    ).status_code == 403
    r = await ask(system, cadre, date(2026, 12, 1), date(2026, 12, 2), headers=system.headers())
    assert r.status_code == 201  # org_admin on the cadre's behalf
    leave_id = r.json()["id"]
    mine = system.headers(Role.cadre, cadre_id=cadre)
    assert (await act(system, leave_id, "approve", mine)).status_code == 403
    assert (await act(system, leave_id, "reject", mine)).status_code == 403
    assert (await act(system, leave_id, "cancel", other, reason="x")).status_code == 403
    assert (
        await system.client.get(f"/assessment/v1/leave-requests/{leave_id}", headers=other)
    ).status_code == 403
    assert (
        await system.client.get(f"/assessment/v1/leave-requests/{leave_id}", headers=mine)
    ).status_code == 200


async def test_bad_requests(system, cadre):
    r = await ask(system, cadre, date(2026, 12, 3), date(2026, 12, 2))
    assert (r.status_code, r.json()["field"]) == (422, "end_date")
    r = await ask(system, cadre, date(2026, 12, 1), date(2026, 12, 2), kind="holiday")
    assert (r.status_code, r.json()["field"]) == (422, "kind")
    stranger = f.uuid.uuid4()
    r = await ask(system, stranger, date(2026, 12, 1), date(2026, 12, 2), headers=system.headers())
    assert r.status_code == 404
    assert (await ask(system, cadre, date(2026, 12, 1), date(2026, 12, 4))).status_code == 201
    r = await ask(system, cadre, date(2026, 12, 4), date(2026, 12, 6))
    assert (r.status_code, r.json()["code"]) == (409, "leave_overlaps")
    assert (await act(system, f.uuid.uuid4(), "approve")).status_code == 404


async def test_each_step_only_from_its_state(system, cadre):
    leave = (await ask(system, cadre, date(2026, 11, 27), date(2026, 11, 28))).json()
    mine = system.headers(Role.cadre, cadre_id=cadre)
    assert (await act(system, leave["id"], "return", mine)).json()["code"] == "leave_not_started"
    assert (await act(system, leave["id"], "reject")).json()["status"] == "rejected"
    for action in ("approve", "reject"):
        r = await act(system, leave["id"], action)
        assert (r.status_code, r.json()["code"]) == (409, "leave_state")
    r = await act(system, leave["id"], "cancel", mine, reason="no longer needed")
    assert r.status_code == 409
    started = (await ask(system, cadre, date(2026, 11, 24), date(2026, 11, 24))).json()
    r = await act(system, started["id"], "return", mine)
    assert (r.status_code, r.json()["code"]) == (409, "leave_state")  # never approved


async def test_cancel_before_the_start_with_a_reason(system, cadre):
    mine = system.headers(Role.cadre, cadre_id=cadre)
    leave = await approved(system, cadre, date(2026, 11, 26), date(2026, 11, 27))
    r = await act(system, leave["id"], "cancel", mine)
    assert r.status_code == 422  # no body at all
    r = await act(system, leave["id"], "cancel", mine, reason="")
    assert (r.status_code, r.json()["field"]) == (422, "reason")
    r = await act(system, leave["id"], "cancel", mine, reason="the harvest is in")
    assert (r.status_code, r.json()["status"], r.json()["cancel_reason"]) == (
        200,
        "cancelled",
        "the harvest is in",
    )
    assert (await f.presence(system, cadre, "2026-W48"))["leave_days"] == 0
    today = await approved(system, cadre, date(2026, 11, 25), date(2026, 11, 26))
    r = await act(system, today["id"], "cancel", mine, reason="too late")
    assert (r.status_code, r.json()["code"]) == (409, "leave_started")


async def test_not_reporting_back_within_a_day_is_not_returned(system):
    village = (await f.tree(system)).village
    never, next_day, two_days = [await f.posted_cadre(system, village) for _ in range(3)]
    system.clock.set(f.local(2026, 11, 15, 10).astimezone(UTC))
    leaves = {
        c: await approved(system, c, date(2026, 11, 16), date(2026, 11, 18))
        for c in (never, next_day, two_days)
    }
    for c, day in ((next_day, 19), (two_days, 20)):
        system.clock.set(f.local(2026, 11, day, 22).astimezone(UTC))
        r = await act(system, leaves[c]["id"], "return", system.headers(Role.cadre, cadre_id=c))
        assert r.json()["returned_on"] == f"2026-11-{day}"
    system.clock.set(f.local(2026, 11, 25, 10).astimezone(UTC))
    await f.close(system, W47)
    entries = [e for e in await f.negative_list(system, "2026-11") if e["reason"] == "not_returned"]
    assert sorted((e["subject_id"], e["date"], e["source_id"]) for e in entries) == sorted(
        (str(c), "2026-11-19", leaves[c]["id"]) for c in (never, two_days)
    )
    ladder = {a["entry_id"] for a in await f.actions(system)}
    assert {e["id"] for e in entries} <= ladder
    before = len(await f.events(system))
    await f.close(system, W47)
    assert len(await f.events(system)) == before


async def test_leave_ending_on_sunday_is_due_back_in_the_next_week(system, cadre):
    system.clock.set(f.local(2026, 11, 15, 10).astimezone(UTC))
    await approved(system, cadre, date(2026, 11, 20), date(2026, 11, 22))
    system.clock.set(f.local(2026, 11, 25, 10).astimezone(UTC))
    await f.close(system, W47)
    assert [e["reason"] for e in await f.negative_list(system, "2026-11")] == ["presence_week"]


async def test_listing_leave(system, cadre):
    other = await f.posted_cadre(system, (await f.tree(system)).village)
    await ask(system, cadre, date(2026, 12, 1), date(2026, 12, 2))
    await approved(system, cadre, date(2026, 12, 5), date(2026, 12, 6))
    await ask(system, other, date(2026, 12, 1), date(2026, 12, 2))
    r = await system.client.get(
        "/assessment/v1/leave-requests", params={"status": "approved"}, headers=system.headers()
    )
    assert [x["start_date"] for x in r.json()["items"]] == ["2026-12-05"]
    r = await system.client.get(
        "/assessment/v1/leave-requests", headers=system.headers(Role.cadre, cadre_id=cadre)
    )
    assert {x["cadre_id"] for x in r.json()["items"]} == {str(cadre)}
    assert len(r.json()["items"]) == 2
