"""Keys and revocation across three processes: the registry signs, the others verify with
its JWKS, and a deactivated user's token is refused everywhere within 2 s."""

import asyncio
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.keys import KeyRing
from tests.e2e.api import Api

PROBES = {
    "registry": "/registry/v1/users",
    "assessment": "/assessment/v1/findings",
    "incentives": "/incentives/v1/policies",
}


async def statuses(api: Api, headers: dict[str, str]) -> dict[str, int]:
    return {
        s: (await api.clients[s].get(path, headers=headers)).status_code
        for s, path in PROBES.items()
    }


async def test_a_deactivated_users_token_is_refused_by_all_three_processes_within_2s(api: Api):
    username, password = f"u{uuid.uuid4().hex[:10]}", "pass-" + uuid.uuid4().hex
    user = await api.call(
        "POST",
        "/registry/v1/users",
        json={"username": username, "password": password, "roles": ["org_admin"]},
    )
    headers = await api.token(username, password)
    await api.settle()
    assert await statuses(api, headers) == dict.fromkeys(PROBES, 200)

    await api.call("POST", f"/registry/v1/users/{user['id']}/deactivate")
    start = time.monotonic()
    while set((await statuses(api, headers)).values()) != {401}:
        assert time.monotonic() - start < 2.0, await statuses(api, headers)
        await asyncio.sleep(0.05)
    r = await api.clients["incentives"].get(PROBES["incentives"], headers=headers)
    assert r.json()["code"] == "token_revoked"


async def test_only_the_registrys_key_is_accepted_and_its_jwks_is_public(api: Api):
    r = await api.clients["registry"].get("/registry/.well-known/jwks.json")
    assert r.status_code == 200
    # Served by uvicorn as `frontline serve` runs it: no server banner, security headers.
    for service in PROBES:
        h = (await api.clients[service].get(f"/{service}/health")).headers
        assert "server" not in h and h["x-content-type-options"] == "nosniff", service
        assert h["x-frame-options"] == "DENY" and h["referrer-policy"] == "no-referrer"
    # Distributed without FRONTLINE_PUBLIC_DOCS: no docs, no OpenAPI.
    assert (await api.clients["assessment"].get("/assessment/openapi.json")).status_code == 404
    [key] = r.json()["keys"]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and "d" not in key
    # The admin's own claims, signed by any other key: refused by every process.
    claims = jwt.decode(api.admin["Authorization"][7:], options={"verify_signature": False})
    impostor = KeyRing(signing=Ed25519PrivateKey.generate()).sign(claims)
    for service, path in PROBES.items():
        r = await api.clients[service].get(path, headers={"Authorization": f"Bearer {impostor}"})
        assert r.status_code == 401, (service, r.text)
        assert (await api.clients[service].get(path, headers=api.admin)).status_code == 200
