"""What the audit chain costs a write on PostgreSQL: a one-row transaction alone, against
the same transaction that also appends its audit row (the advisory lock and the chained
INSERT ... SELECT of shared/audit.py, held until the commit) as two statements
(`append_asyncpg`) or as one call of the kernel's function (`audit.append` on PostgreSQL,
which SessionDep and the inbox use, and the sign-in hot path), 32 in flight over 10
connections. Prints the ratios measured in one run,
then verifies the chain it built. One chain per database serialises appends from the lock
to the commit: the ratio says what that costs where commits are the bottleneck.

  .venv/bin/python bench/audit_append.py [N]
"""

import asyncio
import sys
import time
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy import MetaData

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared import audit  # noqa: E402
from shared.clock import Clock  # noqa: E402
from shared.db import make_engine  # noqa: E402
from tests.infra.postgres import (  # noqa: E402
    _run_sync,
    create_database,
    drop_database,
    postgres_server,
)

IN_FLIGHT = 32


CALL = f"SELECT {audit.PG_FUNCTION}({', '.join(f'${n}' for n in range(1, 13))})"


async def run(pool: asyncpg.Pool, n: int, *, chained: str = "") -> float:
    gate = asyncio.Semaphore(IN_FLIGHT)
    clock = Clock()

    async def one(i: int) -> None:
        async with gate, pool.acquire() as conn, conn.transaction():
            key = uuid.uuid4()
            await conn.execute("INSERT INTO bare VALUES ($1, $2)", key, clock.now())
            if chained:
                entry = audit.Entry(
                    at=clock.now(),
                    kind="request",
                    action="POST /assessment/v1/sign-ins",
                    actor_id=key,
                    actor_name="cadre",
                    roles="cadre",
                    request_id=key.hex,
                    targets=[str(key)],
                    summary={"status": "accepted"},
                )
                if chained == "function":  # lock and append in one round trip
                    await conn.fetchval(CALL, *audit.asyncpg_args(entry))
                else:
                    await audit.append_asyncpg(conn, entry)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - start)


async def main(base: str, n: int) -> None:
    name = f"bench_audit_{uuid.uuid4().hex[:6]}"
    await create_database(base, name)
    url = base.replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        engine = make_engine(f"{url}/{name}")
        metadata = MetaData()
        audit.audit_table(metadata)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        pool = await asyncpg.create_pool(f"{base}/{name}", min_size=10, max_size=10)
        await pool.execute("CREATE TABLE bare (id uuid primary key, t timestamptz)")
        await audit.ensure_pg_function(engine)
        await run(pool, 200, chained="statements")  # warm up
        alone = await run(pool, n)
        chained = await run(pool, n, chained="statements")
        in_one = await run(pool, n, chained="function")
        await pool.close()
        report = await audit.verify(engine)
        await engine.dispose()
    finally:
        await drop_database(base, name)
    print(f"one-row transaction             {alone:8.0f} tx/s")
    print(f"+ audit row (lock, INSERT)      {chained:8.0f} tx/s   ratio: {chained / alone:.2f}")
    print(f"+ audit row (one function call) {in_one:8.0f} tx/s   ratio: {in_one / alone:.2f}")
    print(f"chain after the run: {report.rows} rows, intact: {report.ok}")


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    with postgres_server() as pg:
        _run_sync(main(pg, count))
