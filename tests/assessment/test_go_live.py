"""Go-live (`assessment_start_date` on a county or township): before it nothing is judged
and nothing is overdue; a week counts only if it starts on or after it."""

import uuid
from datetime import UTC, date

from sqlalchemy import select

from services.assessment.models import Week
from services.assessment.service.scheduler import tick
from services.assessment.settings import policy_of
from shared.contracts.enums import Role, UnitKind
from shared.contracts.registry import Geofence, UnitUpserted
from tests.assessment import factories as f
from tests.support import next_version

W46, W47, W48 = "2026-W46", "2026-W47", "2026-W48"


async def go_live(system, unit_id, kind, ancestors, start, *, fence=None) -> uuid.UUID:
    """A unit (new or again) with its go-live date, as the registry announces it."""
    await system.emit(
        UnitUpserted(
            unit_id=unit_id,
            code=f"{kind.value}-{unit_id.hex[:6]}",
            name=f"{kind.value} {unit_id.hex[:6]}",
            kind=kind,
            parent_id=ancestors[-1] if ancestors else None,
            ancestors=ancestors,
            geofence=Geofence(lat=fence[0], lon=fence[1], radius_m=fence[2]) if fence else None,
            assessment_start_date=start,
            entity_version=next_version(),
        ),
        key=unit_id,
    )
    return unit_id


async def live_tree(system, county_start, township_start=None, other_start=None) -> f.Tree:
    t = await f.tree(system)
    await go_live(system, t.county, UnitKind.county, [], county_start)
    if township_start:
        await go_live(system, t.township, UnitKind.township, [t.county], township_start)
    if other_start:
        await go_live(system, t.other_township, UnitKind.township, [t.county], other_start)
    return t


async def close(system, week):
    return await system.client.post(
        f"/assessment/v1/weeks/{week}/close", headers=system.headers(Role.org_admin)
    )


async def roster(system, unit_id, duties):
    r = await system.client.post(
        "/assessment/v1/duty-rosters",
        json={
            "unit_id": str(unit_id),
            "duties": [{"cadre_id": str(c), "duty_date": d.isoformat()} for c, d in duties],
        },
        headers=system.headers(Role.org_admin),
    )
    assert r.status_code == 201, r.text


async def task(system, unit_id, cadre_id, deadline):
    r = await system.client.post(
        "/assessment/v1/tasks",
        json={
            "unit_id": str(unit_id),
            "quarter": "2026-Q4",
            "title": "visit every household",
            "assignee_id": str(cadre_id),
            "deadline": deadline.isoformat(),
        },
        headers=system.headers(Role.org_admin),
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def leave(system, cadre_id, start, end):
    r = await system.client.post(
        "/assessment/v1/leave-requests",
        json={
            "cadre_id": str(cadre_id),
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "kind": "personal",
            "reason": "harvest",
        },
        headers=system.headers(Role.cadre, cadre_id=cadre_id),
    )
    assert r.status_code == 201, r.text
    r = await system.client.post(
        f"/assessment/v1/leave-requests/{r.json()['id']}/approve",
        headers=system.headers(Role.org_admin),
    )
    assert r.status_code == 200, r.text
    return r.json()["id"]


async def test_a_week_ending_before_go_live_is_409_and_one_straddling_it_judges_nobody(system):
    t = await live_tree(system, date(2026, 11, 18))  # a Wednesday, inside W47
    c = await f.posted_cadre(system, t.village, start=date(2026, 11, 1))

    r = await close(system, W46)  # Sunday 15 November, before go-live
    assert r.status_code == 409, r.text
    body = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (body["code"], body["assessment_start_date"]) == ("before_go_live", "2026-11-18")

    # W47 starts before go-live: nobody is judged on presence, though nobody signed in.
    assert (await close(system, W47)).json() == {
        "week": W47,
        "judged": 0,
        "compliant": 0,
        "non_compliant": 0,
    }
    assert (await f.presence(system, c, W47))["judged"] is False
    assert await f.negative_list(system, "2026-11") == []
    assert await f.actions(system) == []
    async with system.transaction("assessment") as s:
        assert (await s.execute(select(Week.week))).scalars().all() == [W47]

    # The first week that starts on or after go-live is judged.
    system.clock.set(f.local(2026, 11, 30, 7).astimezone(UTC))
    assert (await close(system, W48)).json()["non_compliant"] == 1
    [entry] = await f.negative_list(system, "2026-11")
    assert (entry["subject_id"], entry["reason"], entry["date"]) == (
        str(c),
        "presence_week",
        "2026-11-29",
    )


async def test_no_violation_is_raised_for_a_date_before_go_live(system):
    t = await live_tree(system, date(2026, 11, 18))
    c, on_leave = [await f.posted_cadre(system, t.village, start=date(2026, 11, 1)) for _ in "ab"]
    system.clock.set(f.local(2026, 11, 10, 10).astimezone(UTC))
    early_leave = await leave(system, on_leave, date(2026, 11, 12), date(2026, 11, 15))
    late_leave = await leave(system, on_leave, date(2026, 11, 17), date(2026, 11, 18))
    system.clock.set(f.local(2026, 11, 25, 10).astimezone(UTC))
    await roster(system, t.village, [(c, date(2026, 11, 17)), (c, date(2026, 11, 19))])
    early_task = await task(system, t.village, c, date(2026, 11, 16))  # overdue from the 17th
    late_task = await task(system, t.village, c, date(2026, 11, 18))  # overdue from the 19th

    assert (await close(system, W47)).status_code == 200
    found = sorted((e["reason"], e["date"]) for e in await f.negative_list(system, "2026-11"))
    assert found == [
        ("duty_missed", "2026-11-19"),
        ("not_returned", "2026-11-19"),
        ("task_overdue", "2026-11-19"),
    ]
    sources = {e["source_id"] for e in await f.negative_list(system, "2026-11")}
    assert late_leave in sources and late_task in sources
    assert early_leave not in sources and early_task not in sources


async def test_a_township_that_starts_later_holds_its_cadres_back(system):
    # County from Monday 16 November; the first township only from Monday 23 November; the
    # other township says 9 November, but the county's later date holds (the latest wins).
    t = await live_tree(
        system, date(2026, 11, 16), township_start=date(2026, 11, 23), other_start=date(2026, 11, 9)
    )
    late = await f.posted_cadre(system, t.village, start=date(2026, 11, 1))
    early = await f.cadre(system)
    await f.post(system, early, t.other_village, start=date(2026, 11, 1))

    assert (await close(system, W46)).json()["code"] == "before_go_live"
    assert (await close(system, W47)).json()["judged"] == 1
    assert (await f.presence(system, late, W47))["judged"] is False
    assert (await f.presence(system, early, W47))["judged"] is True

    system.clock.set(f.local(2026, 11, 30, 7).astimezone(UTC))
    assert (await close(system, W48)).json()["judged"] == 2


async def test_go_live_cleared_means_no_restriction(system):
    t = await live_tree(system, date(2026, 11, 23))
    await f.posted_cadre(system, t.village, start=date(2026, 11, 1))
    assert (await close(system, W47)).status_code == 409
    await go_live(system, t.county, UnitKind.county, [], None)
    assert (await close(system, W47)).json()["judged"] == 1


async def test_the_scheduler_closes_no_week_before_go_live_nor_before_any_county(system):
    runtime = system.runtime("assessment")
    policy = policy_of(runtime.settings)

    async def closed() -> list[str]:
        async with system.transaction("assessment") as s:
            return list((await s.execute(select(Week.week).order_by(Week.week))).scalars())

    await tick(runtime, policy)  # a fresh start: nothing in the tree, nothing to close
    assert await closed() == []
    t = await live_tree(system, date(2026, 11, 23))
    c = await f.posted_cadre(system, t.village, start=date(2026, 11, 1))
    await tick(runtime, policy)  # W47 ended before go-live
    assert await closed() == []
    system.clock.set(f.local(2026, 11, 30, 7).astimezone(UTC))
    await tick(runtime, policy)
    assert await closed() == [W48]
    assert (await f.presence(system, c, W48))["judged"] is True
