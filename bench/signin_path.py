"""Sign-in hot path on PostgreSQL: how close it comes to a bare asyncpg INSERT.

Prints ratios measured in one run (DESIGN.md §9): single sign-ins (32 in flight, 50
cadres) vs a bare INSERT of one row over a pool with as many in flight, and the offline
batch (500 items) per item vs single sign-ins. Both go through the ASGI app in-process,
so HTTP parsing, auth, validation, the idempotency guard and the outbox row are in the
measured path, and the relay and consumers run beside it; a network hop is not.

  .venv/bin/python bench/signin_path.py [N]
"""

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
from tests.infra.postgres import _run_sync, create_database, postgres_server  # noqa: E402
from tests.support import System  # noqa: E402


async def bare_inserts(dsn: str, n: int) -> float:
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE bare (id uuid primary key, k text unique, t timestamptz)")
    start = time.perf_counter()
    for i in range(n):
        await conn.execute("INSERT INTO bare VALUES ($1, $2, now())", uuid.uuid4(), f"k{i}")
    elapsed = time.perf_counter() - start
    await conn.close()
    return n / elapsed


async def main(base: str, n: int) -> None:
    names = {
        s: f"bench_{s}_{uuid.uuid4().hex[:6]}"
        for s in ("registry", "assessment", "incentives", "bare")
    }
    for name in names.values():
        await create_database(base, name)
    url = base.replace("postgresql://", "postgresql+asyncpg://", 1)
    settings = {
        s: ServiceSettings(database_url=f"{url}/{names[s]}")
        for s in ("registry", "assessment", "incentives")
    }
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        kernel = KernelSettings(var_dir=Path(tmp), run_scheduler=False, relay_idle_seconds=0.05)
        app = build_app(specs(), kernel=kernel, clock=clock, service_settings=settings)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://b"
            ) as client:
                system = System(app, client, clock)  # type: ignore[arg-type]
                admin = system.headers("org_admin")
                post = client.post
                units = {}
                for kind, parent, extra in (
                    ("county", None, {}),
                    ("township", "county", {}),
                    ("village", "township", {"geofence": VILLAGE}),
                ):
                    body = {
                        "code": kind,
                        "name": kind,
                        "kind": kind,
                        "parent_id": units.get(parent),
                        **extra,
                    }
                    units[kind] = (
                        await post("/registry/v1/org-units", json=body, headers=admin)
                    ).json()["id"]
                cadre = (
                    await post(
                        "/registry/v1/cadres",
                        headers=admin,
                        json={
                            "name": "bench",
                            "phone": "13900000000",
                            "category": "first_secretary",
                        },
                    )
                ).json()["id"]
                today = clock.today()
                await post(
                    "/registry/v1/postings",
                    headers=admin,
                    json={
                        "cadre_id": cadre,
                        "unit_id": units["village"],
                        "role": "first_secretary",
                        "start_date": (today - timedelta(days=30)).isoformat(),
                    },
                )
                await settle(app)
                me = system.headers("cadre", cadre_id=cadre)
                day = today - timedelta(days=1)
                items = [sign_in(cadre, day, 10) | {"idempotency_key": f"s{i}"} for i in range(n)]
                start = time.perf_counter()
                for item in items:
                    r = await post("/assessment/v1/sign-ins", json=item, headers=me)
                    assert r.status_code == 201, r.text
                single = n / (time.perf_counter() - start)
                batches = [
                    [sign_in(cadre, day, 11) | {"idempotency_key": f"b{j}-{i}"} for i in range(500)]
                    for j in range(max(1, n // 500))
                ]
                start = time.perf_counter()
                for batch in batches:
                    r = await post(
                        "/assessment/v1/sign-ins/batch", json={"items": batch}, headers=me
                    )
                    assert r.status_code == 200, r.text
                batched = sum(map(len, batches)) / (time.perf_counter() - start)
    bare = await bare_inserts(f"{base}/{names['bare']}", n)
    print(f"bare asyncpg INSERT        {bare:8.0f} rows/s")
    print(f"POST /sign-ins (one each)  {single:8.0f} req/s   ratio to bare: {single / bare:.2f}")
    print(
        f"POST /sign-ins/batch (500) {batched:8.0f} items/s ratio to single: {batched / single:.1f}"
    )


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with postgres_server() as pg:
        _run_sync(main(pg, count))
