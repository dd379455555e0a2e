"""`frontline seed` through the services' own HTTP write paths, against an embedded app."""

from collections import Counter

import httpx

from services import seed
from services.client import Api
from tests.cli.conftest import ADMIN, PASSWORD


async def run(system, profile: str, **kwargs):
    return await seed.run(
        profile,
        base_url="http://frontline",
        username=ADMIN,
        password=PASSWORD,
        now=system.clock.now(),
        transport=httpx.ASGITransport(app=system.app),
        **kwargs,
    )


async def registry_counts(system) -> tuple[Counter, Counter]:
    api = Api(system.client, {"": ""})
    api.headers = await api.login(ADMIN, PASSWORD)
    units = Counter(u["kind"] for u in await api.all("/registry/v1/org-units"))
    cadres = Counter(c["category"] for c in await api.all("/registry/v1/cadres"))
    return units, cadres


async def test_anlong_at_a_fiftieth_has_the_seeds_shape_and_reruns_safely(system):
    first = await run(system, "anlong", scale=0.02)
    units, cadres = await registry_counts(system)
    assert units == {"county": 1, "township": 1, "village": 4, "group": 38}
    assert first["units"] == sum(units.values())
    assert cadres["front_group_member"] == 92 and cadres["responsible_person"] == 152
    assert cadres["village_cadre"] == 4  # a party secretary per village
    assert sum(cadres.values()) == first["cadres"]
    await run(system, "anlong", scale=0.02)  # a second run adds nothing
    assert await registry_counts(system) == (units, cadres)
    api = Api(system.client, {"": ""})
    api.headers = await api.login(ADMIN, PASSWORD)
    assert len(await api.all("/registry/v1/training-sessions")) == 3
    assert {h["level"] for h in await api.all("/registry/v1/honors")} == {"province"}


async def test_demo_is_alive_signins_findings_a_closed_week_and_a_draft_batch(system):
    result = await run(system, "demo")
    assert result["cadres"] == 40 and result["flagged_sign_ins"] >= 2
    assert result["closed_week"]["week"] == "2026-W47"
    week = result["closed_week"]
    assert week["non_compliant"] >= 1 and week["compliant"] > week["non_compliant"]  # a few miss
    await system.settle()
    headers = system.headers("finance")
    batch = (
        await system.client.get(
            f"/incentives/v1/stipend-batches/{result['batch_id']}", headers=headers
        )
    ).json()
    assert batch["status"] == "draft" and batch["month"] == "2026-11"
    again = await run(system, "demo")  # re-run: same county, same batch
    assert again["batch_id"] == result["batch_id"]
    units, cadres = await registry_counts(system)
    assert sum(units.values()) == 11 and sum(cadres.values()) == 40
