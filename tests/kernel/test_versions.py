"""Entity versions (shared.versions): a consumer applies a version only when it is newer
than every version it applied for that entity; a producer's bump follows commit order."""

import uuid

import pytest
from sqlalchemy import select

from shared.versions import advance, applied, bump


@pytest.fixture
def services():
    return ["registry"]


async def test_only_a_newer_version_advances(system):
    cadre = uuid.uuid4()
    async with system.transaction("registry") as s:
        assert await applied(s, "cadre", cadre) is None
        assert await advance(s, "cadre", cadre, 2) is True
        assert await advance(s, "cadre", cadre, 2) is False  # the same version again
        assert await advance(s, "cadre", cadre, 1) is False  # an older one, late
        assert await advance(s, "cadre", cadre, 3) is True
        # Entities of another kind or id are counted apart.
        assert await advance(s, "posting", cadre, 1) is True
        assert await advance(s, "cadre", uuid.uuid4(), 1) is True
    async with system.transaction("registry") as s:
        assert await applied(s, "cadre", cadre) == 3
        assert await advance(s, "cadre", cadre, 3) is False


async def test_bump_increments_and_returns_the_new_versions(system):
    from services.registry.models import Cadre

    cadres = Cadre.__table__
    made = [uuid.uuid4(), uuid.uuid4()]
    async with system.transaction("registry") as s:
        for i, cid in enumerate(made):
            await s.execute(
                cadres.insert().values(
                    id=cid,
                    name=f"c{i}",
                    phone=f"1380000000{i}",
                    category="resident_cadre",
                    active=True,
                    created_at=system.clock.now(),
                    updated_at=system.clock.now(),
                )
            )
    async with system.transaction("registry") as s:
        assert await bump(s, cadres, cadres.c.id == made[0]) == {made[0]: 2}
        assert await bump(s, cadres, cadres.c.id.in_(made)) == {made[0]: 3, made[1]: 2}
        assert await bump(s, cadres, cadres.c.id == uuid.uuid4()) == {}
    async with system.transaction("registry") as s:
        got = dict((await s.execute(select(cadres.c.id, cadres.c.version))).all())
    assert got == {made[0]: 3, made[1]: 2}
