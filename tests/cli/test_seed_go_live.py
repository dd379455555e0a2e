"""`frontline seed --profile anlong` sets the county's go-live, and a re-run never moves it."""

from datetime import date

from tests.cli.test_seed import run


async def county(system) -> dict:
    r = await system.client.get(
        "/registry/v1/org-units", params={"kind": "county"}, headers=system.headers("org_admin")
    )
    [found] = r.json()["items"]
    return found


async def test_anlong_goes_live_the_monday_after_seeding_once(system):
    # The clock says Wednesday 25 November 2026: the county goes live on Monday the 30th.
    first = await run(system, "anlong", scale=0.01)
    assert first["assessment_start_date"] == "2026-11-30"
    assert (await county(system))["assessment_start_date"] == "2026-11-30"
    system.clock.advance(days=14)
    again = await run(system, "anlong", scale=0.01)
    assert again["assessment_start_date"] == "2026-11-30"
    # Given explicitly, it is set; assessment hears of it and refuses an earlier week.
    await run(system, "anlong", scale=0.01, go_live=date(2026, 11, 23))
    assert (await county(system))["assessment_start_date"] == "2026-11-23"
    # Three seedings' events (a few thousand) through SQLite: 15 s was too close (CI, 20:25).
    await system.settle(timeout=60)
    r = await system.client.post(
        "/assessment/v1/weeks/2026-W47/close", headers=system.headers("org_admin")
    )
    assert (r.status_code, r.json()["assessment_start_date"]) == (409, "2026-11-23")
