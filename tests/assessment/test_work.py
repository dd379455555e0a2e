"""Duty rosters with `duty_missed`, quarterly tasks with `task_overdue`, daily work logs."""

from datetime import UTC, date

import pytest

from shared.contracts.enums import Role
from tests.assessment import factories as f

W47 = "2026-W47"


@pytest.fixture
async def t(system):
    return await f.tree(system)


async def roster(system, unit_id, duties, headers=None):
    return await system.client.post(
        "/assessment/v1/duty-rosters",
        json={
            "unit_id": str(unit_id),
            "title": "值班表",
            "duties": [{"cadre_id": str(c), "duty_date": d.isoformat()} for c, d in duties],
        },
        headers=headers or system.headers(Role.org_admin),
    )


def by_reason(entries, reason):
    return [e for e in entries if e["reason"] == reason]


async def test_no_counted_sign_in_on_a_duty_date_is_duty_missed(system, t):
    absent, present, on_leave, flagged = [await f.posted_cadre(system, t.village) for _ in range(4)]
    duty_day = date(2026, 11, 18)
    r = await roster(
        system, t.village, [(c, duty_day) for c in (absent, present, on_leave, flagged)]
    )
    assert r.status_code == 201 and len(r.json()["duties"]) == 4
    await f.attend(system, present, [f.local(2026, 11, 18, 23, 30)])  # any hour of the date
    await f.sign_in(system, flagged, f.local(2026, 11, 18, 10), mock_location=True)
    system.clock.set(f.local(2026, 11, 17, 10).astimezone(UTC))
    leave = await system.client.post(
        "/assessment/v1/leave-requests",
        json={
            "cadre_id": str(on_leave),
            "start_date": "2026-11-18",
            "end_date": "2026-11-18",
            "kind": "official",
        },
        headers=system.headers(),
    )
    await system.client.post(
        f"/assessment/v1/leave-requests/{leave.json()['id']}/approve", headers=system.headers()
    )
    system.clock.set(f.local(2026, 11, 19, 12).astimezone(UTC))  # back the day after
    await system.client.post(
        f"/assessment/v1/leave-requests/{leave.json()['id']}/return",
        headers=system.headers(Role.cadre, cadre_id=on_leave),
    )
    system.clock.set(f.local(2026, 11, 25, 10).astimezone(UTC))
    await f.close(system, W47)
    missed = by_reason(await f.negative_list(system, "2026-11"), "duty_missed")
    assert sorted((e["subject_id"], e["date"]) for e in missed) == sorted(
        [(str(absent), "2026-11-18"), (str(flagged), "2026-11-18")]
    )
    assert {e["unit_id"] for e in missed} == {str(t.village)}
    # The absent cadre's phone syncs a sign-in from the duty date: the entry is revoked.
    await f.attend(system, absent, [f.local(2026, 11, 18, 9)])
    missed = by_reason(await f.negative_list(system, "2026-11"), "duty_missed")
    assert {e["subject_id"]: e["status"] for e in missed} == {
        str(absent): "revoked",
        str(flagged): "active",
    }


async def test_a_roster_needs_known_units_and_cadres(system, t):
    c = await f.posted_cadre(system, t.village)
    day = date(2026, 11, 30)
    assert (await roster(system, f.uuid.uuid4(), [(c, day)])).status_code == 404
    assert (await roster(system, t.village, [(f.uuid.uuid4(), day)])).status_code == 404
    r = await roster(system, t.village, [(c, day), (c, day)])
    assert (r.status_code, r.json()["field"]) == (422, "duties")
    r = await roster(system, t.village, [(c, day)], headers=system.headers(Role.cadre, cadre_id=c))
    assert r.status_code == 403
    r = await roster(system, t.village, [])
    assert (r.status_code, r.json()["field"]) == (422, "duties")
    created = await roster(system, t.village, [(c, day)])
    got = await system.client.get(
        f"/assessment/v1/duty-rosters/{created.json()['id']}", headers=system.headers(Role.auditor)
    )
    assert got.json() == created.json()


async def task(system, unit_id, assignee, deadline: date, quarter="2026-Q4"):
    r = await system.client.post(
        "/assessment/v1/tasks",
        json={
            "unit_id": str(unit_id),
            "quarter": quarter,
            "title": "repair the road to the group",
            "assignee_id": str(assignee),
            "deadline": deadline.isoformat(),
        },
        headers=system.headers(Role.org_admin),
    )
    return r


async def complete(system, task_id, cadre_id):
    return await system.client.post(
        f"/assessment/v1/tasks/{task_id}/complete",
        headers=system.headers(Role.cadre, cadre_id=cadre_id),
    )


async def test_a_task_open_past_its_deadline_is_overdue_once(system, t):
    c = await f.posted_cadre(system, t.village)
    system.clock.set(f.local(2026, 11, 1, 10).astimezone(UTC))
    late = (await task(system, t.village, c, date(2026, 11, 17))).json()
    done_late = (await task(system, t.village, c, date(2026, 11, 17))).json()
    on_time = (await task(system, t.village, c, date(2026, 11, 17))).json()
    due_sunday = (await task(system, t.village, c, date(2026, 11, 22))).json()
    system.clock.set(f.local(2026, 11, 17, 23).astimezone(UTC))
    assert (await complete(system, on_time["id"], c)).json()["status"] == "done"
    system.clock.set(f.local(2026, 11, 18, 9).astimezone(UTC))
    assert (await complete(system, done_late["id"], c)).json()["done_on"] == "2026-11-18"
    system.clock.set(f.local(2026, 11, 25, 10).astimezone(UTC))
    await f.close(system, W47)
    overdue = by_reason(await f.negative_list(system, "2026-11"), "task_overdue")
    assert sorted((e["source_id"], e["date"]) for e in overdue) == sorted(
        [(late["id"], "2026-11-18"), (done_late["id"], "2026-11-18")]
    )
    assert due_sunday["id"] not in {e["source_id"] for e in overdue}  # found in W48
    await f.close(system, W47)
    assert len(by_reason(await f.negative_list(system, "2026-11"), "task_overdue")) == 2
    r = await system.client.get(
        "/assessment/v1/tasks", params={"assignee_id": str(c)}, headers=system.headers()
    )
    flagged = {x["id"] for x in r.json()["items"] if x["overdue_entry_id"]}
    assert flagged == {late["id"], done_late["id"]}


async def test_tasks_are_created_and_completed_by_the_right_people(system, t):
    c = await f.posted_cadre(system, t.village)
    other = await f.posted_cadre(system, t.village)
    assert (await task(system, f.uuid.uuid4(), c, date(2026, 12, 1))).status_code == 404
    assert (await task(system, t.village, f.uuid.uuid4(), date(2026, 12, 1))).status_code == 404
    r = await task(system, t.village, c, date(2026, 12, 1), quarter="2026-Q5")
    assert (r.status_code, r.json()["field"]) == (422, "quarter")
    created = (await task(system, t.village, c, date(2026, 12, 1))).json()
    assert (await complete(system, created["id"], other)).status_code == 403
    assert (await complete(system, created["id"], c)).status_code == 200
    again = await complete(system, created["id"], c)
    assert (again.status_code, again.json()["code"]) == (409, "task_done")
    mine = await system.client.get(
        "/assessment/v1/tasks", headers=system.headers(Role.cadre, cadre_id=other)
    )
    assert mine.json()["items"] == []
    in_unit = await system.client.get(
        "/assessment/v1/tasks",
        params={"unit_id": str(t.county), "status": "done"},
        headers=system.headers(),
    )
    assert [x["id"] for x in in_unit.json()["items"]] == [created["id"]]


async def log(system, cadre_id, day: date, headers=None):
    return await system.client.post(
        "/assessment/v1/work-logs",
        json={
            "cadre_id": str(cadre_id),
            "log_date": day.isoformat(),
            "text": "走访农户，核对产业补助",
            "households_visited": 6,
        },
        headers=headers or system.headers(Role.cadre, cadre_id=cadre_id),
    )


async def test_a_daily_work_log(system, t):
    c = await f.posted_cadre(system, t.village)
    r = await log(system, c, date(2026, 11, 25))
    assert (r.status_code, r.json()["households_visited"]) == (201, 6)
    again = await log(system, c, date(2026, 11, 25))
    assert (again.status_code, again.json()["code"]) == (409, "work_log_exists")
    tomorrow = await log(system, c, date(2026, 11, 26))
    assert (tomorrow.status_code, tomorrow.json()["field"]) == (422, "log_date")
    other = system.headers(Role.cadre, cadre_id=await f.cadre(system))
    assert (await log(system, c, date(2026, 11, 24), headers=other)).status_code == 403
    await log(system, c, date(2026, 11, 23))
    r = await system.client.get(
        "/assessment/v1/work-logs",
        params={"cadre_id": str(c), "from": "2026-11-24"},
        headers=system.headers(),
    )
    assert [x["log_date"] for x in r.json()["items"]] == ["2026-11-25"]
    r = await system.client.get(
        "/assessment/v1/work-logs", headers=system.headers(Role.cadre, cadre_id=c)
    )
    assert [x["log_date"] for x in r.json()["items"]] == ["2026-11-23", "2026-11-25"]
