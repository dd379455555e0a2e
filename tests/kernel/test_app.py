"""The composed app: health per service, problem+json for unknown paths and bad tokens."""

import pytest

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
