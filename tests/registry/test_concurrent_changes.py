"""Two concurrent changes of one cadre reach every consumer as the database applied them:
each takes the row's lock before it writes its event, and the event carries the version
and the state the database holds under that lock (shared.versions)."""

import asyncio
import uuid

import pytest
from sqlalchemy import select, text, update

from services.assessment.models import Cadre as AssessmentCadre
from services.incentives.models import cadres as incentives_cadres
from services.registry.models import Cadre
from shared.db import is_postgres
from tests.registry.factories import API, admin, make_cadre


@pytest.fixture
def services():
    return ["registry", "assessment", "incentives"]


async def waiting_on_locks(system) -> int:
    async with system.transaction("registry") as s:
        return await s.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )


async def test_set_active_and_update_converge_on_the_database_state(system):
    cadre = await make_cadre(system)
    cadre_id = uuid.UUID(cadre["id"])
    rename = system.client.patch(
        f"{API}/cadres/{cadre_id}", json={"name": "张永芳"}, headers=admin(system)
    )
    deactivate = system.client.post(
        f"{API}/cadres/{cadre_id}/deactivate", json={}, headers=admin(system)
    )
    async with system.transaction("registry") as holder:
        pg = is_postgres(holder)
        if pg:
            # Hold the row's lock until both requests have read the cadre and wait on it:
            # whichever the database lets through second must see the first one's change.
            await holder.execute(
                update(Cadre).where(Cadre.id == cadre_id).values(updated_at=Cadre.updated_at)
            )
        requests = asyncio.gather(rename, deactivate)
        if pg:
            while await waiting_on_locks(system) < 2:  # noqa: ASYNC110 (the database's state)
                await asyncio.sleep(0.01)
    # SQLite has one writer at a time: the two requests run one after the other there.
    renamed, deactivated = await requests
    assert renamed.status_code == 200 and deactivated.status_code == 200
    await system.settle()

    async with system.transaction("registry") as s:
        row = (await s.execute(select(Cadre).where(Cadre.id == cadre_id))).scalar_one()
        truth = (row.name, row.active, row.version)
    assert truth == ("张永芳", False, 3)
    async with system.transaction("assessment") as s:
        mine = AssessmentCadre.__table__
        got = (
            await s.execute(select(mine.c.name, mine.c.active).where(mine.c.cadre_id == cadre_id))
        ).one()
        assert tuple(got) == truth[:2]
    async with system.transaction("incentives") as s:
        got = (
            await s.execute(
                select(incentives_cadres.c.name, incentives_cadres.c.active).where(
                    incentives_cadres.c.cadre_id == cadre_id
                )
            )
        ).one()
        assert tuple(got) == truth[:2]
