"""Pruning: published outbox rows, inbox rows and local-bus rows go after their horizons,
and only those; on SQLite and PostgreSQL.
"""

import asyncio
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from shared.clock import FrozenClock
from shared.outbox import INBOX, OUTBOX
from shared.prune import prune_service
from shared.runtime import build_app, settle
from shared.settings import KernelSettings, ServiceSettings
from shared.transport import BUS, Record
from tests.kernel import toy
from tests.support import DEFAULT_NOW


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def toy_db(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'toy.sqlite'}"
    return request.getfixturevalue("pg_database_url")


@asynccontextmanager
async def running(kernel: KernelSettings, url: str, clock: FrozenClock):
    app = build_app(
        [toy.spec],
        kernel=kernel,
        clock=clock,
        service_settings={"toy": ServiceSettings(database_url=url, migrate_on_start=False)},
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield app, client


async def counts(app) -> dict[str, int]:
    rt = app.state.runtimes["toy"]
    async with rt.sessionmaker() as s:
        out = {
            "published": await s.scalar(
                select(func.count()).select_from(OUTBOX).where(OUTBOX.c.published_at.is_not(None))
            ),
            "unsent": await s.scalar(
                select(func.count()).select_from(OUTBOX).where(OUTBOX.c.published_at.is_(None))
            ),
            "inbox": await s.scalar(select(func.count()).select_from(INBOX)),
        }
    async with app.state.transport.sessionmaker() as s:
        rows = await s.execute(
            select(BUS.c.topic, BUS.c.key).order_by(BUS.c.topic.desc(), BUS.c.offset)
        )
        out["bus"] = [tuple(r) for r in rows]
    return out


async def test_each_kind_of_row_goes_after_its_horizon_and_not_before(tmp_path, toy_db):
    clock = FrozenClock(DEFAULT_NOW)
    kernel = KernelSettings(var_dir=tmp_path, relay_idle_seconds=0.05)
    async with running(kernel, toy_db, clock) as (app, client):
        for seq in (1, 2, 3):
            await client.post("/toy/v1/notes", json={"key": "n", "seq": seq})
        await settle(app)
        rt = app.state.runtimes["toy"]
        # A compacted registry topic the toy does not consume (another namespace's: every
        # service consumes its own registry topic, for users' token versions).
        await app.state.transport.publish(
            [Record("a.frontline.registry", k, b"{}") for k in ("cadre-a", "cadre-b", "cadre-a")]
        )
        assert await counts(app) == {
            "published": 3,
            "unsent": 0,
            "inbox": 3,
            "bus": [("frontline.toy",) + ("n",)] * 3
            + [("a.frontline.registry", k) for k in ("cadre-a", "cadre-b", "cadre-a")],
        }
        # A write not yet published is never pruned, however old (its relay is stopped).
        rt.relay.wake = lambda: None
        for t in rt.tasks:
            if t.get_name().endswith("relay"):
                t.cancel()
        await client.post("/toy/v1/notes", json={"key": "n", "seq": 4})

        day = timedelta(days=1)
        assert await prune_service(rt, DEFAULT_NOW + 7 * day - timedelta(minutes=1)) == {
            "outbox": 0,
            "inbox": 0,
            "bus": 0,
        }
        assert await prune_service(rt, DEFAULT_NOW + 7 * day + timedelta(minutes=1)) == {
            "outbox": 3,
            "inbox": 0,
            "bus": 0,
        }
        assert (await counts(app))["unsent"] == 1
        # 30 days: the bus drops its old rows, on the compacted topic only superseded ones.
        assert (await prune_service(rt, DEFAULT_NOW + 31 * day))["bus"] == 4
        assert (await counts(app))["bus"] == [
            ("a.frontline.registry", "cadre-b"),
            ("a.frontline.registry", "cadre-a"),
        ]
        assert (await counts(app))["inbox"] == 3
        # 45 days: inbox rows go, except the newest (an empty inbox means "rebuild").
        assert (await prune_service(rt, DEFAULT_NOW + 46 * day))["inbox"] == 2
        after = await counts(app)
        assert (after["inbox"], after["unsent"]) == (1, 1)


async def test_the_supervised_job_prunes_on_its_own(tmp_path, toy_db):
    clock = FrozenClock(DEFAULT_NOW)
    kernel = KernelSettings(var_dir=tmp_path, relay_idle_seconds=0.05, prune_interval_seconds=0.05)
    async with running(kernel, toy_db, clock) as (app, client):
        for seq in (1, 2):
            await client.post("/toy/v1/notes", json={"key": "j", "seq": seq})
        await settle(app)
        clock.advance(days=8)
        for _ in range(400):  # the job runs every 50 ms; give up after 20 s
            if (await counts(app))["published"] == 0:
                break
            await asyncio.sleep(0.05)
        assert await counts(app) == {
            "published": 0,
            "unsent": 0,
            "inbox": 2,
            "bus": [("frontline.toy", "j")] * 2,
        }
