"""Every service's migrations are reversible: head, down to base, and head again."""

import pytest
from sqlalchemy import inspect

from services.main import SERVICES, specs
from shared.db import make_engine
from shared.migrate import downgrade, upgrade


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite'}"
    return request.getfixturevalue("pg_database_url")


async def tables(engine) -> set[str]:
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
    return set(names) - {"alembic_version"}


@pytest.mark.parametrize("name", SERVICES)
async def test_migrations_go_down_to_nothing_and_up_again(name, empty_db):
    [spec] = specs([name])
    engine = make_engine(empty_db)
    try:
        await upgrade(engine, spec.migrations)
        at_head = await tables(engine)
        assert at_head == set(spec.metadata.tables)
        await downgrade(engine, spec.migrations)
        assert await tables(engine) == set()
        await upgrade(engine, spec.migrations)
        assert await tables(engine) == at_head
    finally:
        await engine.dispose()


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_has_one_head_of_its_own_and_the_kernels(name):
    """Two revisions on one parent (engineers branching at once) make two heads: an upgrade
    still runs both, but their order is no longer defined."""
    from alembic.script import ScriptDirectory

    from shared.migrate import alembic_config

    [spec] = specs([name])
    heads = ScriptDirectory.from_config(alembic_config(spec.migrations)).get_heads()
    assert len(heads) == 2, heads
