"""The composed app: health per service, problem+json for unknown paths and bad tokens."""

import gc

import pytest

from shared.runtime import build_app
from shared.settings import KernelSettings, ServiceSettings
from tests.kernel import toy

SERVICES = ["registry", "assessment", "incentives"]


@pytest.mark.parametrize("name", SERVICES)
async def test_health_reports_database_and_outbox(system, name):
    r = await system.client.get(f"/{name}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["database"] == "ok"
    assert body["outbox"] == {"unsent": 0, "oldest_age_seconds": 0.0}


async def test_unknown_path_is_problem_json(system):
    r = await system.client.get("/registry/v1/no-such-thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "not_found"


async def test_asyncapi_lists_every_event_type(system):
    doc = (await system.client.get("/assessment/asyncapi.json")).json()
    assert "assessment.finding.posted" in doc["components"]["messages"]
    assert "frontline.registry" in doc["channels"]


@pytest.mark.parametrize("name", SERVICES)
async def test_liveness_and_version(system, name):
    assert (await system.client.get(f"/{name}/health/live")).json() == {"status": "ok"}
    body = (await system.client.get(f"/{name}/version")).json()
    assert body["service"] == name and body["version"] == "0.1.0"
    assert len(body["git_sha"]) == 40  # the tests run in a git checkout
    # The service's own head and the kernel branch's.
    assert len(body["schema"]) == 2


async def test_the_migrate_command_brings_every_database_to_the_schema_heads(tmp_path):
    from services.cli import _migrate
    from services.main import specs
    from shared.db import make_engine
    from shared.settings import KernelSettings

    await _migrate(KernelSettings(var_dir=tmp_path), list(SERVICES))
    for spec in specs(SERVICES):
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / f'{spec.name}.sqlite'}")
        async with engine.connect() as conn:
            names = await conn.run_sync(
                lambda c: set(c.dialect.get_table_names(c)) - {"alembic_version"}
            )
        await engine.dispose()
        assert names == set(spec.metadata.tables)


@pytest.mark.parametrize("freeze", [False, True])
async def test_only_a_server_freezes_start_ups_objects_out_of_the_cycle_collector(tmp_path, freeze):
    """`frontline run`/`serve` pass freeze_gc: the full collections stop scanning what
    start-up built; tests (an app per test) do not, or each would keep the last's garbage."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'toy.sqlite'}"
    app = build_app(
        [toy.spec],
        kernel=KernelSettings(var_dir=tmp_path),
        service_settings={"toy": ServiceSettings(database_url=url, migrate_on_start=False)},
        workers=False,
        freeze_gc=freeze,
    )
    gc.unfreeze()
    try:
        async with app.router.lifespan_context(app):
            assert (gc.get_freeze_count() > 0) == freeze
    finally:
        gc.unfreeze()
