"""Regressions of issue 13 through the HTTP API, registry to incentives:

- finding 3: closing a week from before the county started judged everyone non-compliant,
  opened ladder actions and deductions; the scheduler closed an empty week at start-up;
- finding 7: nobody could review suspect sign-ins (`mock_location`, `implausible_travel`).
"""

from datetime import UTC

import pytest
from sqlalchemy import select

from services.assessment.models import Week
from services.assessment.service.scheduler import tick
from services.assessment.settings import policy_of
from shared.contracts.enums import Role
from tests.assessment import factories as f
from tests.registry.factories import make_cadre, make_posting, make_unit

A = "/assessment/v1"


@pytest.fixture
def services() -> list[str]:
    return ["registry", "assessment", "incentives"]


async def county_with_a_cadre(system, *, go_live: str | None = None):
    extra = {"assessment_start_date": go_live} if go_live else {}
    county = await make_unit(system, "county", **extra)
    town = await make_unit(system, "township", county["id"])
    village = await make_unit(
        system,
        "village",
        town["id"],
        geofence={"lat": f.VILLAGE_LAT, "lon": f.VILLAGE_LON, "radius_m": f.RADIUS_M},
    )
    cadre = await make_cadre(system, category="first_secretary")
    await make_posting(
        system, cadre["id"], village["id"], role="first_secretary", start_date="2026-11-01"
    )
    await system.settle()
    return county, town, village, cadre


async def weeks_closed(system) -> list[str]:
    async with system.transaction("assessment") as s:
        return list((await s.execute(select(Week.week).order_by(Week.week))).scalars())


async def test_finding_3_nothing_before_go_live_is_judged_and_the_scheduler_waits(system):
    runtime = system.runtime("assessment")
    policy = policy_of(runtime.settings)
    admin = system.headers(Role.org_admin)
    # The scheduler's first tick on an empty system closes nothing (it closed W47 empty).
    await tick(runtime, policy)
    assert await weeks_closed(system) == []

    county, town, village, cadre = await county_with_a_cadre(system)
    # The county starts on Monday 23 November: set by the org department on the county.
    r = await system.client.patch(
        f"/registry/v1/org-units/{county['id']}",
        json={"assessment_start_date": "2026-11-23"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    await system.settle()
    # A duty and a task from before the start, never kept.
    r = await system.client.post(
        f"{A}/duty-rosters",
        json={
            "unit_id": village["id"],
            "duties": [{"cadre_id": cadre["id"], "duty_date": "2026-11-18"}],
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    r = await system.client.post(
        f"{A}/tasks",
        json={
            "unit_id": village["id"],
            "quarter": "2026-Q4",
            "title": "visit every household",
            "assignee_id": cadre["id"],
            "deadline": "2026-11-17",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text

    r = await system.client.post(f"{A}/weeks/2026-W47/close", headers=admin)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (r.json()["code"], r.json()["assessment_start_date"]) == (
        "before_go_live",
        "2026-11-23",
    )
    await tick(runtime, policy)  # W47 is the latest ended week: before go-live, left alone
    assert await weeks_closed(system) == []
    await system.settle()
    assert await f.negative_list(system, "2026-11") == []
    assert await f.actions(system) == []
    r = await system.client.get(
        f"/incentives/v1/eligibility/{cadre['id']}",
        params={"month": "2026-11"},
        headers=system.headers(Role.finance),
    )
    assert r.status_code == 200, r.text
    assert r.json()["deductions"] == []

    # From the first week that starts on go-live, the cadre is judged as before.
    system.clock.set(f.local(2026, 11, 30, 7).astimezone(UTC))
    await tick(runtime, policy)
    assert await weeks_closed(system) == ["2026-W48"]
    assert (await f.presence(system, cadre["id"], "2026-W48"))["judged"] is True
    await system.settle()
    assert [e["reason"] for e in await f.negative_list(system, "2026-11")] == ["presence_week"]


async def test_finding_7_suspect_sign_ins_are_reviewed_and_cited(system):
    county, town, village, cadre = await county_with_a_cadre(system)
    c = cadre["id"]
    assert (await f.sign_in(system, c, f.local(2026, 11, 24, 9))).status_code == 201
    far = await f.sign_in(system, c, f.local(2026, 11, 24, 10), lat=27.0)  # 220 km in an hour
    mock = await f.sign_in(system, c, f.local(2026, 11, 24, 21), mock_location=True)
    assert far.json()["reasons"] == ["outside_geofence", "implausible_travel"]
    assert mock.json()["reasons"] == ["mock_location"]

    inspector = system.headers(Role.inspector, unit_id=town["id"])
    found = {}
    for reason in ("mock_location", "implausible_travel"):
        r = await system.client.get(
            f"{A}/sign-ins",
            params={"reason": reason, "unit_id": town["id"], "from": "2026-11-24"},
            headers=inspector,
        )
        assert r.status_code == 200, r.text
        [item] = r.json()["items"]
        assert (item["cadre_id"], item["status"]) == (c, "flagged")
        found[reason] = item["id"]
    assert found == {"mock_location": mock.json()["id"], "implausible_travel": far.json()["id"]}

    r = await system.client.post(
        f"{A}/findings",
        json={
            "subject_type": "cadre",
            "subject_id": c,
            "kind": "false_sign_in",
            "severity": "serious",
            "observed_at": f.local(2026, 11, 25, 9).isoformat(),
            "description": "a mock location, and a jump of 220 km in an hour",
            "sign_in_ids": [found["mock_location"], found["implausible_travel"]],
        },
        headers=inspector,
    )
    assert r.status_code == 201, r.text
    assert r.json()["sign_in_ids"] == [found["mock_location"], found["implausible_travel"]]
    # Auditors and the cadre read them too; finance does not.
    r = await system.client.get(
        f"{A}/sign-ins", params={"status": "flagged"}, headers=system.headers(Role.auditor)
    )
    assert {x["id"] for x in r.json()["items"]} == set(found.values())
    r = await system.client.get(f"{A}/sign-ins", headers=system.headers(Role.cadre, cadre_id=c))
    assert len(r.json()["items"]) == 3
    r = await system.client.get(f"{A}/sign-ins", headers=system.headers(Role.finance))
    assert r.status_code == 403
