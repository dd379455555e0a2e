"""Promotion channel lists: sustained top monthly scores, no active negative entry in the
window, the cadre categories of the channel; thresholds are policy versions."""

from datetime import date

from shared.contracts.enums import Role
from tests.incentives.factories import BASE, cadre, enact, entry, revoke_entry, score

WINDOW = ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11"]


async def scored(system, name, *, category="resident_cadre", months=WINDOW, rank=2, worst=None):
    cid, _ = await cadre(
        system,
        name=name,
        category=category,
        position="committee_member" if category == "village_cadre" else None,
    )
    for i, month in enumerate(months):
        r = worst if worst and i == 2 else rank
        await score(system, cid, month=month, score=f"{95 - i}.5", rank=r)
    return cid


async def listed(system, channel, month="2026-11", role=Role.org_admin) -> list[str]:
    r = await system.client.get(
        f"{BASE}/promotion-candidates",
        params={"channel": channel, "month": month},
        headers=system.headers(role),
    )
    assert r.status_code == 200, r.text
    return sorted(i["cadre_name"] for i in r.json()["items"])


async def test_sustained_top_scores_without_active_entries(system):
    steady = await scored(system, "Steady")
    await scored(system, "Short", months=WINDOW[1:])
    await scored(system, "Dip", worst=11)
    flagged = await scored(system, "Flagged")
    entry_id, _ = await entry(system, flagged, day=date(2026, 9, 14))
    await scored(system, "Village", category="village_cadre")
    assert await listed(system, "priority_promotion") == ["Steady"]
    assert await listed(system, "targeted_recruitment") == ["Village"]
    await revoke_entry(system, flagged, entry_id, day=date(2026, 9, 14))
    assert await listed(system, "priority_promotion", role=Role.auditor) == ["Flagged", "Steady"]

    r = await system.client.get(
        f"{BASE}/promotion-candidates",
        params={"channel": "priority_promotion", "month": "2026-11", "limit": 1},
        headers=system.headers(Role.org_admin),
    )
    page = r.json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    item = next(
        i for i in (await system.client.get(
            f"{BASE}/promotion-candidates",
            params={"channel": "priority_promotion", "month": "2026-11"},
            headers=system.headers(Role.org_admin),
        )).json()["items"] if i["cadre_id"] == str(steady)
    )  # fmt: skip
    assert [m["month"] for m in item["months"]] == WINDOW
    assert item["months"][0] == {"month": "2026-06", "score": "95.5", "rank": 2}
    assert item["average_score"] == "93.00"
    assert item["policy_version"] == "priority_promotion@2018-01-01"


async def test_thresholds_are_policy(system):
    await scored(system, "Short", months=WINDOW[3:])
    assert await listed(system, "priority_promotion") == []
    r = await enact(
        system,
        {
            "kind": "priority_promotion",
            "effective_from": "2026-11-01",
            "params": {
                "window_months": 3,
                "max_rank": 2,
                "min_score": "90",
                "categories": ["resident_cadre"],
            },
        },
        Role.org_admin,
    )
    assert r.status_code == 200, r.text
    assert await listed(system, "priority_promotion") == ["Short"]
    assert await listed(system, "priority_promotion", month="2026-10") == []  # older version


async def test_who_and_what(system):
    q = {"channel": "priority_promotion", "month": "2026-11"}
    url = f"{BASE}/promotion-candidates"
    for role in (Role.cadre, Role.finance, Role.inspector):
        assert (
            await system.client.get(url, params=q, headers=system.headers(role))
        ).status_code == 403
    h = system.headers(Role.org_admin)
    bad = await system.client.get(url, params=q | {"month": "2026-00"}, headers=h)
    assert bad.status_code == 422 and bad.json()["field"] == "month"
    bad = await system.client.get(url, params=q | {"channel": "lottery"}, headers=h)
    assert bad.status_code == 422 and bad.json()["field"] == "channel"
