"""CPU per sign-in, in process: the whole app (kernel, lane, relay, local bus, consumers)
against the bare reference, both driven through ASGI without a server or a network.

Throughput on a shared 2-core machine moves with everyone else's load; the CPU a process
spends per request moves much less, so this is the figure to compare changes by while
others are busy (bench/README.md). It leaves out what both pay alike: uvicorn's HTTP
parsing and the kernel's network stack. The county is built by `frontline run` on fresh
PostgreSQL databases, which the in-process app then opens.

  .venv/bin/python bench/signin_cpu.py [REQUESTS]
"""

import asyncio
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

from harness import ADMIN, JWT_PRIVATE_KEY, Table, databases, frontline, sqlalchemy_url
from signin_ratio import county, singles

IN_FLIGHT = 32
WARM_UP = 300


def scope_of(path: str, token: str, body: bytes) -> dict:
    headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def drive(app, requests: list[tuple[str, str, bytes]]) -> tuple[float, dict[int, int]]:
    """CPU milliseconds per request over `requests`, IN_FLIGHT at a time; status counts."""
    statuses: dict[int, int] = {}

    async def one(path: str, token: str, body: bytes) -> None:
        given = False

        async def receive() -> dict:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # never disconnects
            return {}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        await app(scope_of(path, token, body), receive, send)

    queue = iter(requests)

    async def worker() -> None:
        for r in queue:
            await one(*r)

    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return 1000 * (time.process_time() - start) / len(requests), statuses


async def measured(app, warm_up: list, requests: list) -> tuple[float, dict[int, int]]:
    async with app.router.lifespan_context(app):
        await drive(app, warm_up)
        return await drive(app, requests)


def main(n: int) -> None:
    import uvloop

    with databases("registry", "assessment", "incentives", "ref") as dsns:
        with tempfile.TemporaryDirectory() as tmp:
            services = {k: dsns[k] for k in ("registry", "assessment", "incentives")}
            with frontline(services, Path(tmp)) as (url, _):
                phones = county(url, 25).phones
            requests = singles(phones, n + WARM_UP)
            warm_up, requests = requests[:WARM_UP], requests[WARM_UP:]
            os.environ.update(
                {
                    "FRONTLINE_VAR_DIR": str(Path(tmp) / "var"),
                    "FRONTLINE_JWT_PRIVATE_KEY": JWT_PRIVATE_KEY,
                    "FRONTLINE_BOOTSTRAP_ADMIN_USERNAME": ADMIN[0],
                    "FRONTLINE_BOOTSTRAP_ADMIN_PASSWORD": ADMIN[1],
                    "FRONTLINE_RUN_SCHEDULER": "false",
                    "REF_DSN": dsns["ref"],
                    **{
                        f"FRONTLINE_{k.upper()}_DATABASE_URL": sqlalchemy_url(v)
                        for k, v in services.items()
                    },
                }
            )
            uvloop.install()  # as uvicorn runs the app
            from services.main import embedded_app
            from shared import logs

            logs.configure()
            app = embedded_app()
            ours, ours_status = asyncio.run(measured(app, warm_up, requests))
            reference = importlib.import_module("bench.reference_app").app
            ref, ref_status = asyncio.run(measured(reference, warm_up, requests))
    table = Table(f"CPU per sign-in in process ({n:,} requests, {IN_FLIGHT} in flight)")
    # The ratio of CPU per request is the throughput ratio of two CPU-bound processes.
    table.ratio(
        "sign-in, PostgreSQL (embedded app)",
        1000 / ours,
        1000 / ref,
        0.6,
        "req per CPU-s",
        "bare FastAPI+asyncpg",
    )
    table.info("CPU per request", f"{ours:.3f} ms", f"{ref:.3f} ms")
    table.info("statuses", str(ours_status), str(ref_status))
    table.print()


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))
