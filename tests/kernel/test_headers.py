"""Security headers on every response; docs and OpenAPI public embedded, behind a setting
distributed; each service's own /<service>/openapi.json holds that service's routes only."""

import json
import re

import httpx
import pytest

from services.main import SERVICES, specs
from shared.fieldcrypt import new_key as new_field_key
from shared.keys import load_private, new_private_pem, public_pem
from shared.runtime import build_app
from shared.settings import KernelSettings, ServiceSettings
from tests.support import System

SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.fixture
def services() -> list[str]:
    return list(SERVICES)


async def test_every_kind_of_response_carries_the_headers(system: System):
    h = system.headers("org_admin")
    responses = [
        await system.client.get("/registry/v1/users", headers=h),  # 200
        await system.client.get("/assessment/v1/findings"),  # 401
        await system.client.get("/registry/v1/users", headers=system.headers("cadre")),
        await system.client.get("/registry/v1/users/not-a-uuid", headers=h),  # 422
        await system.client.get("/nowhere"),  # 404
        await system.client.post("/registry/v1/users", json={}, headers=h),  # 422
    ]
    assert {r.status_code for r in responses} >= {200, 401, 403, 404, 422}
    for r in responses:
        for name, value in SECURITY.items():
            assert r.headers.get(name) == value, (r.request.url, name)
        assert r.headers["cache-control"] == "no-store", r.request.url
        assert "server" not in r.headers
    jwks = await system.client.get("/registry/.well-known/jwks.json")
    assert jwks.headers["cache-control"] == "public, max-age=300"
    assert jwks.headers["x-content-type-options"] == "nosniff"


async def test_embedded_docs_are_public_and_each_service_has_its_own_openapi(system: System):
    assert (await system.client.get("/docs")).status_code == 200
    whole = (await system.client.get("/openapi.json")).json()["paths"]
    for name in SERVICES:
        r = await system.client.get(f"/{name}/openapi.json")
        assert r.status_code == 200
        doc = r.json()
        assert doc["info"]["title"] == f"Frontline {name}"
        paths = set(doc["paths"])
        assert paths and all(p.startswith(f"/{name}/") for p in paths), name
        assert paths == {p for p in whole if p.startswith(f"/{name}/")}
        # Every schema it refers to is in it, and none of another service's is.
        refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(doc)))
        assert refs == set(doc["components"]["schemas"]), name


def distributed_app(tmp_path, **overrides):
    kernel = KernelSettings(
        var_dir=tmp_path,
        mode="distributed",
        jwt_public_keys=public_pem(load_private(new_private_pem())),
        cursor_secret="headers-test-cursor-secret",
        field_key=new_field_key(),
        **overrides,
    )
    url = f"sqlite+aiosqlite:///{tmp_path / 'incentives.sqlite'}"
    return build_app(
        specs(["incentives"]),
        kernel=kernel,
        service_settings={"incentives": ServiceSettings(database_url=url)},
        workers=False,
    )


@pytest.mark.parametrize("public", [False, True])
async def test_distributed_docs_only_behind_the_setting(tmp_path, public):
    app = distributed_app(tmp_path, public_docs=public)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/incentives/openapi.json"):
            r = await client.get(path)
            assert r.status_code == (200 if public else 404), path
            assert r.headers["x-frame-options"] == "DENY"
