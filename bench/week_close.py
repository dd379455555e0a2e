"""Week closing at county and province scale: set-based, so time grows with cadres, not
with queries per cadre.

Seeds N cadres posted to 181 villages with a week of sign-ins (a quarter of them one day
short), closes the week, closes it again on the same data, and prints ratios measured in
one run: the larger county against the smaller one (about the cadre ratio when closing
is linear), and a re-close against the first close.

  .venv/bin/python bench/week_close.py [SMALL] [LARGE]      (default 12700 50800)
"""

import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.assessment.app import spec  # noqa: E402
from services.assessment.models import Cadre, Posting, SignIn, Unit, UnitPath  # noqa: E402
from services.assessment.service import presence  # noqa: E402
from services.assessment.settings import AssessmentSettings  # noqa: E402
from shared.clock import LOCAL_TZ, FrozenClock  # noqa: E402
from shared.runtime import build_app  # noqa: E402
from shared.settings import KernelSettings  # noqa: E402
from tests.infra.postgres import (  # noqa: E402
    _run_sync,
    create_database,
    drop_database,
    postgres_server,
)

MONDAY = date(2026, 11, 16)  # ISO week 2026-W47
VILLAGES = 181


def unit(unit_id: uuid.UUID, kind: str, **fence) -> dict:
    code = uuid.uuid4().hex[:8]
    return {"unit_id": unit_id, "code": code, "name": code, "kind": kind,
            "special_difficulty": False, "active": True, **fence}  # fmt: skip


def sign_in(cadre: uuid.UUID, day: date, hour: int, key: str) -> dict:
    at = datetime(day.year, day.month, day.day, hour, tzinfo=LOCAL_TZ).astimezone(UTC)
    return {
        "id": uuid.uuid4(), "cadre_id": cadre, "idempotency_key": key, "device_time": at,
        "received_at": at, "lat": 25.0, "lon": 105.5, "accuracy_m": 10, "device_id": "p",
        "mock_location": False, "status": "accepted", "reasons": "", "counted": True,
        "local_date": day, "day_date": day if hour < 20 else None,
        "night_date": day if hour >= 20 else None,
    }  # fmt: skip


async def seed(rt, n: int) -> None:
    """Projections and sign-ins written directly: the bench measures closing, not ingest."""
    county, town = uuid.uuid4(), uuid.uuid4()
    villages = [uuid.uuid4() for _ in range(VILLAGES)]
    fence = {"fence_lat": 25.0, "fence_lon": 105.5, "fence_radius_m": 500}
    paths = [(county, county, 0), (town, town, 0), (town, county, 1)]
    paths += [p for v in villages for p in ((v, v, 0), (v, town, 1), (v, county, 2))]
    cadres = [uuid.uuid4() for _ in range(n)]
    async with rt.transaction() as s:
        await s.execute(
            Unit.__table__.insert(),
            [unit(county, "county"), unit(town, "township")]
            + [unit(v, "village", **fence) for v in villages],
        )
        await s.execute(
            UnitPath.__table__.insert(),
            [{"unit_id": u, "ancestor_id": a, "depth": d} for u, a, d in paths],
        )
        await s.execute(
            Cadre.__table__.insert(),
            [{"cadre_id": c, "name": "x", "category": "resident_cadre", "active": True}
             for c in cadres],
        )  # fmt: skip
        await s.execute(
            Posting.__table__.insert(),
            [{"posting_id": uuid.uuid4(), "cadre_id": c, "unit_id": villages[i % VILLAGES],
              "role": "member", "start_date": date(2026, 1, 1)} for i, c in enumerate(cadres)],
        )  # fmt: skip
    rows = []
    for i, c in enumerate(cadres):
        for d in range(5 if i % 4 else 4):
            rows.append(sign_in(c, MONDAY + timedelta(days=d), 10, f"d{d}"))
        for d in range(4):
            rows.append(sign_in(c, MONDAY + timedelta(days=d), 21, f"n{d}"))
    for i in range(0, len(rows), 5000):
        async with rt.transaction() as s:
            await s.execute(SignIn.__table__.insert(), rows[i : i + 5000])


async def close_twice(n: int, url: str) -> tuple[float, float, dict]:
    clock = FrozenClock(datetime(2026, 11, 25, 2, 0, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        settings = {"assessment": AssessmentSettings(database_url=url)} if url else {}
        kernel = KernelSettings(var_dir=Path(tmp), run_scheduler=False)
        app = build_app(
            [spec], kernel=kernel, clock=clock, service_settings=settings, workers=False
        )
        async with app.router.lifespan_context(app):
            rt = app.state.runtimes["assessment"]
            await seed(rt, n)
            times = []
            for _ in range(2):
                start = time.perf_counter()
                async with rt.transaction() as s:
                    out = await presence.close_week(
                        s, "2026-W47", now=clock.now(), policy=rt.settings
                    )
                times.append(time.perf_counter() - start)
            return times[0], times[1], out


async def main(pg: str, small: int, large: int) -> None:
    from harness import Table

    table = Table(f"Week close (presence) at {small:,} and {large:,} cadres")
    for backend in ("sqlite", "postgresql"):
        results = {}
        for n in (small, large):
            name = f"bench_close_{uuid.uuid4().hex[:8]}"
            url = ""
            if backend == "postgresql":
                await create_database(pg, name)
                url = pg.replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}"
            try:
                results[n] = await close_twice(n, url)
            finally:
                if url:
                    await drop_database(pg, name)
            first, again, out = results[n]
            print(
                f"{backend:<10} {n:>7} cadres: close {first:6.2f} s, re-close {again:6.2f} s  {out}"
            )
        (f1, a1, _), (f2, _, _) = results[small], results[large]
        print(
            f"{backend:<10} {large / small:.1f}x cadres took {f2 / f1:.1f}x the time;"
            f" re-close / first close {a1 / f1:.2f}"
        )
        growth = (f2 / f1) / (large / small)
        table.rows.append(
            (f"{backend}: close {large:,} cadres", f"{f2:.2f} s", f"{small:,} cadres {f1:.2f} s",
             f"{growth:.2f}x linear", "<= 1.25x linear", "PASS" if growth <= 1.25 else "MISS")
        )  # fmt: skip
        if backend == "postgresql":
            table.limit(f"postgresql: close at {large:,} cadres (30 s at 100k)",
                        f2 * 100_000 / large, 30, "s", "scaled linearly to 100k")  # fmt: skip
    table.print()


if __name__ == "__main__":
    small = int(sys.argv[1]) if len(sys.argv) > 1 else 12_700
    large = int(sys.argv[2]) if len(sys.argv) > 2 else 50_800
    with postgres_server() as server:
        _run_sync(main(server, small, large))
