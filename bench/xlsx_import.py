"""XLSX imports do not freeze the services (issue #9).

Prints, for the embedded app on SQLite in this one process (ASGI, no network hop):
- how long the 50,000 rows x 40 columns workbook takes to be refused (target: under 2 s);
- /registry/health latency, polled every 25 ms while an allowed import runs (target: every
  answer under 100 ms), and how long that import took.

  .venv/bin/python bench/xlsx_import.py [ROWS_OF_THE_ALLOWED_IMPORT]
"""

import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from openpyxl import Workbook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.main import specs  # noqa: E402
from shared.clock import FrozenClock  # noqa: E402
from shared.contracts.enums import Role  # noqa: E402
from shared.runtime import build_app  # noqa: E402
from shared.settings import KernelSettings  # noqa: E402
from tests.support import DEFAULT_NOW, System  # noqa: E402

CADRE_COLUMNS = ["name", "phone", "category"]


def workbook(header: list[str], rows) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def main(allowed_rows: int) -> None:
    print("building the workbooks ...", flush=True)
    wide = workbook(
        [f"c{i}" for i in range(40)], ([c % 10 for c in range(40)] for _ in range(50_000))
    )
    allowed = workbook(
        CADRE_COLUMNS,
        ([f"Cadre {r}", f"139{r:08d}", "resident_cadre"] for r in range(allowed_rows)),
    )
    kib = len(wide) / 1024, len(allowed) / 1024
    print(f"50,000 x 40: {kib[0]:.0f} KiB; {allowed_rows} x 3: {kib[1]:.0f} KiB")
    with tempfile.TemporaryDirectory() as tmp:
        kernel = KernelSettings(var_dir=Path(tmp), run_scheduler=False)
        clock = FrozenClock(DEFAULT_NOW)
        app = build_app(specs(), kernel=kernel, clock=clock)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://frontline", timeout=600
            ) as client:
                system = System(app, client, clock)
                h = system.headers(Role.org_admin)
                url = "/registry/v1/imports/cadres"

                start = time.perf_counter()
                r = await client.post(url, files={"file": ("w.xlsx", wide)}, headers=h)
                refused = time.perf_counter() - start
                detail = r.json()["detail"]
                print(f"50,000 x 40 refused: {r.status_code} {detail!r} in {refused:.2f} s")

                latencies: list[float] = []
                done = asyncio.Event()
                for _ in range(40):
                    t0 = time.perf_counter()
                    await client.get("/registry/health")
                    latencies.append(time.perf_counter() - t0)
                    await asyncio.sleep(0.025)
                print(
                    f"/registry/health idle: median {statistics.median(latencies) * 1000:.1f} ms, "
                    f"max {max(latencies) * 1000:.1f} ms"
                )
                latencies.clear()

                async def poll() -> None:
                    while not done.is_set():
                        t0 = time.perf_counter()
                        assert (await client.get("/registry/health")).status_code == 200
                        latencies.append(time.perf_counter() - t0)
                        await asyncio.sleep(0.025)

                poller = asyncio.create_task(poll())
                start = time.perf_counter()
                r = await client.post(
                    url, files={"file": ("a.xlsx", allowed)}, params={"dry_run": "true"}, headers=h
                )
                took = time.perf_counter() - start
                done.set()
                await poller
                print(f"{allowed_rows}-row import (dry run): {r.status_code} in {took:.2f} s")
                print(
                    f"/registry/health meanwhile: {len(latencies)} answers, "
                    f"median {statistics.median(latencies) * 1000:.1f} ms, "
                    f"max {max(latencies) * 1000:.1f} ms"
                )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
