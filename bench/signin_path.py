"""Sign-in hot path on PostgreSQL: how close it comes to a bare asyncpg INSERT.

Prints ratios measured in one run (DESIGN.md §9): single sign-ins (32 in flight, from 50
cadres of one village, each at its own minute) against a bare one-row INSERT over a pool
with as many in flight, and the offline batch (500 items) per item against single
sign-ins. Everything runs in this one process through the ASGI app: HTTP parsing, auth,
validation, the idempotency guard and the outbox row are in the measured path, and the
relay and consumers run beside it; a network hop is not.

  .venv/bin/python bench/signin_path.py [N]
"""

import asyncio
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.main import specs  # noqa: E402
from shared.clock import Clock  # noqa: E402
from shared.runtime import build_app, settle  # noqa: E402
from shared.settings import KernelSettings, ServiceSettings  # noqa: E402
from tests.e2e.api import VILLAGE, sign_in  # noqa: E402
from tests.infra.postgres import (  # noqa: E402
    _run_sync,
    create_database,
    drop_database,
    postgres_server,
)
from tests.support import System  # noqa: E402

CADRES = 50
IN_FLIGHT = 32
SERVICES = ("registry", "assessment", "incentives")


async def concurrently(n: int, one) -> float:
    """Run one(i) for i in range(n), IN_FLIGHT at a time; returns calls per second."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def gated(i: int) -> None:
        async with gate:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(gated(i) for i in range(n)))
    return n / (time.perf_counter() - start)


async def bare_inserts(dsn: str, n: int) -> float:
    pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
    await pool.execute("CREATE TABLE bare (id uuid primary key, k text unique, t timestamptz)")

    async def one(i: int) -> None:
        await pool.execute("INSERT INTO bare VALUES ($1, $2, now())", uuid.uuid4(), f"k{i}")

    rate = await concurrently(n, one)
    await pool.close()
    return rate


async def village(client: httpx.AsyncClient, admin: dict, start: str) -> list[str]:
    """A county, a township, a fenced village and CADRES cadres posted there."""
    units: dict[str, str] = {}
    for kind, parent, extra in (
        ("county", None, {}),
        ("township", "county", {}),
        ("village", "township", {"geofence": VILLAGE}),
    ):
        body = {"code": kind, "name": kind, "kind": kind, "parent_id": units.get(parent)}
        r = await client.post("/registry/v1/org-units", json=body | extra, headers=admin)
        units[kind] = r.json()["id"]
    cadres = []
    for i in range(CADRES):
        body = {"name": f"bench {i}", "phone": f"139{i:08d}", "category": "first_secretary"}
        cadre = (await client.post("/registry/v1/cadres", json=body, headers=admin)).json()["id"]
        posting = {"cadre_id": cadre, "unit_id": units["village"], "role": "member"}
        await client.post(
            "/registry/v1/postings", json=posting | {"start_date": start}, headers=admin
        )
        cadres.append(cadre)
    return cadres


async def main(base: str, n: int) -> None:
    names = {s: f"bench_{s}_{uuid.uuid4().hex[:6]}" for s in (*SERVICES, "bare")}
    for name in names.values():
        await create_database(base, name)
    url = base.replace("postgresql://", "postgresql+asyncpg://", 1)
    settings = {s: ServiceSettings(database_url=f"{url}/{names[s]}") for s in SERVICES}
    clock = Clock()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            kernel = KernelSettings(var_dir=Path(tmp), run_scheduler=False)
            app = build_app(specs(), kernel=kernel, clock=clock, service_settings=settings)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
                    system = System(app, client, clock)  # type: ignore[arg-type]
                    today = clock.today()
                    start = (today - timedelta(days=30)).isoformat()
                    cadres = await village(client, system.headers("org_admin"), start)
                    await settle(app)
                    phones = {c: system.headers("cadre", cadre_id=c) for c in cadres}
                    day = today - timedelta(days=3)

                    async def single(i: int) -> None:
                        cadre, minute = cadres[i % CADRES], (i // CADRES) % (14 * 60)
                        item = sign_in(cadre, day, 6 + minute // 60, minute % 60)
                        item["idempotency_key"] = f"s{i}"
                        r = await client.post(
                            "/assessment/v1/sign-ins", json=item, headers=phones[cadre]
                        )
                        assert r.status_code == 201, r.text

                    async def batch(j: int) -> None:
                        # One phone's offline queue: its own cadre, a minute apart, days back.
                        cadre = cadres[j % CADRES]
                        items = []
                        for i in range(500):
                            when = day - timedelta(days=1 + i // (14 * 60))
                            minute = i % (14 * 60)
                            item = sign_in(cadre, when, 6 + minute // 60, minute % 60)
                            items.append(item | {"idempotency_key": f"b{j}-{i}"})
                        r = await client.post(
                            "/assessment/v1/sign-ins/batch",
                            json={"items": items},
                            headers=phones[cadre],
                        )
                        assert r.status_code == 200, r.text

                    singles = await concurrently(n, single)
                    batches = max(2, n // 500)
                    batched = 500 * await concurrently(batches, batch)
        bare = await bare_inserts(f"{base}/{names['bare']}", n)
    finally:
        for name in names.values():
            await drop_database(base, name)
    print(f"bare asyncpg INSERT        {bare:8.0f} rows/s")
    print(f"POST /sign-ins (one each)  {singles:8.0f} req/s   ratio to bare: {singles / bare:.2f}")
    ratio = batched / singles
    print(f"POST /sign-ins/batch (500) {batched:8.0f} items/s ratio to single: {ratio:.1f}")


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with postgres_server() as pg:
        _run_sync(main(pg, count))
