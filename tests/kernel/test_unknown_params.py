"""Filters are honoured or refused (#13, finding 10): a query parameter a route does not
declare is a 422 `unknown_parameter` naming it, on every route of every service, embedded
and distributed, before anything is read or written. Parameters declared inside a
dependency (`Paging`'s `limit` and `cursor`) and aliases (`format`) are declared ones.
"""

import re
import uuid

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from services.main import SERVICES, embedded_app, service_app
from shared.contracts.enums import Role
from shared.types import KNOWN_QUERY
from tests.support import System

R, A, I = "/registry/v1", "/assessment/v1", "/incentives/v1"  # noqa: E741
# Read by probes, scrapers and doc viewers, which may add parameters of their own (as
# FastAPI's own /openapi.json and /docs take any); they take no filter.
OPERATIONAL = {
    "/openapi.json",
    "/.well-known/jwks.json",
    "/health",
    "/health/live",
    "/metrics",
    "/version",
    "/asyncapi.json",
}
_PARAM = re.compile(r"{[^}]+}")


def unknown(r: httpx.Response, name: str) -> None:
    assert r.status_code == 422, (r.request.method, r.request.url, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert (body["code"], body["field"]) == ("unknown_parameter", name), body


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    found = []
    for ctx in iter_route_contexts(app.routes):
        if isinstance(ctx.original_route, APIRoute):
            found += [(m, ctx.path) for m in sorted(ctx.methods)]
    return found


async def refused_everywhere(app: FastAPI) -> int:
    """Every route but the operational ones answers 422 to a stray parameter, token or not
    (the parameter is checked before the route's policy, body and path are)."""
    checked = 0
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://frontline") as client:
        for method, path in api_routes(app):
            if "/" + path.split("/", 2)[2] in OPERATIONAL:
                continue
            url = _PARAM.sub(str(uuid.uuid4()), path)
            unknown(await client.request(method, url, params={"not_a_filter": "1"}), "not_a_filter")
            checked += 1
    return checked


async def test_every_route_of_the_embedded_app_refuses_an_unknown_parameter():
    assert await refused_everywhere(embedded_app()) > 80


async def test_every_route_of_each_distributed_app_refuses_an_unknown_parameter():
    for name in SERVICES:
        assert await refused_everywhere(service_app(name)) > 5, name


def test_declared_names_include_dependencies_and_aliases():
    app = embedded_app()
    known = {}
    for ctx in iter_route_contexts(app.routes):
        if isinstance(ctx.original_route, APIRoute):
            known[(tuple(sorted(ctx.methods)), ctx.path)] = getattr(ctx.original_route, KNOWN_QUERY)
    assert known[(("GET",), f"{I}/policies")] == {"kind", "on", "status", "limit", "cursor"}
    assert known[(("GET",), f"{I}/stipend-batches/{{batch_id}}/export")] == {"format"}
    assert known[(("GET",), f"{A}/negative-list")] >= {"month", "limit", "cursor"}
    assert known[(("POST",), f"{A}/sign-ins")] == frozenset()


async def test_operational_routes_take_what_probes_add():
    transport = httpx.ASGITransport(app=embedded_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://frontline") as client:
        r = await client.get("/registry/health/live", params={"probe": "kubelet"})
        assert r.status_code == 200, r.text


LISTS = [(f"{A}/negative-list", {"month": "2026-11"}), (f"{R}/cadres", {}), (f"{I}/policies", {})]


@pytest.mark.parametrize(("path", "declared"), LISTS)
async def test_a_misspelt_filter_is_refused_not_ignored(system: System, path, declared):
    """#13 finding 10: a filter the list does not know was ignored, the list looked filtered."""
    h = system.headers(Role.org_admin, Role.finance)
    stray = {"unitid": str(uuid.uuid4())}
    r = await system.client.get(path, params={"limit": 5, **declared, **stray}, headers=h)
    unknown(r, "unitid")
    assert "limit" in r.json()["allowed"]
    # The same list with declared filters (one of them declared by Paging) answers.
    ok = await system.client.get(path, params={"limit": 5, **declared}, headers=h)
    assert ok.status_code == 200, ok.text


async def test_a_refused_write_writes_nothing(system: System):
    h = system.headers(Role.finance)
    body = {"kind": "penalty", "effective_from": "2026-12-01", "amounts": {"per_action": "100.00"}}
    r = await system.client.post(f"{I}/policies", params={"approve": "true"}, json=body, headers=h)
    unknown(r, "approve")
    listed = await system.client.get(f"{I}/policies", params={"kind": "penalty"}, headers=h)
    assert listed.status_code == 200, listed.text
    assert all(p["effective_from"] != "2026-12-01" for p in listed.json()["items"])


async def test_repeated_and_mixed_parameters(system: System):
    h = system.headers(Role.org_admin)
    # A declared name given twice is the route's business; an undeclared one among
    # declared ones is still refused, and named.
    r = await system.client.get(f"{A}/negative-list?month=2026-11&limit=5&Month=2026-11", headers=h)
    unknown(r, "Month")
    r = await system.client.get(f"{A}/negative-list?month=2026-11&month=2026-11", headers=h)
    assert r.status_code == 200, r.text
