"""Forged, expired, malformed, wrong-role tokens (401/403); bad input (422); problem+json."""

import uuid
from datetime import timedelta

import httpx
import jwt
import pytest

from shared.auth import Principal, issue_token
from shared.clock import FrozenClock
from shared.keys import KeyRing
from shared.runtime import build_app
from shared.settings import KernelSettings, ServiceSettings
from tests.kernel import toy
from tests.support import DEFAULT_NOW


@pytest.fixture
async def toy_client(tmp_path):
    kernel = KernelSettings(var_dir=tmp_path)
    clock = FrozenClock(DEFAULT_NOW)
    url = f"sqlite+aiosqlite:///{tmp_path / 'toy.sqlite'}"
    app = build_app(
        [toy.spec],
        kernel=kernel,
        clock=clock,
        service_settings={"toy": ServiceSettings(database_url=url, migrate_on_start=False)},
        workers=False,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client, Signer(app, kernel), clock


class Signer:
    """Mints tokens with the app's key, announcing each user as the registry would."""

    def __init__(self, app, kernel, keys=None):
        self.app, self.kernel = app, kernel
        self.keys = keys or app.state.keys
        self.jwt_issuer, self.token_ttl_seconds = kernel.jwt_issuer, kernel.token_ttl_seconds

    def with_keys(self, keys: KeyRing) -> "Signer":
        return Signer(self.app, self.kernel, keys)

    def issue(self, clock, principal: Principal) -> str:
        self.app.state.token_versions.learn(principal.user_id, principal.token_version, True)
        return issue_token(self.keys, self.kernel, clock, principal)[0]


def token(signer, clock, *roles, cadre_id=None):
    p = Principal(user_id=uuid.uuid4(), username="u", roles=list(roles), cadre_id=cadre_id)
    return signer.issue(clock, p)


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def assert_problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code and r.json()["status"] == status


async def test_valid_token_with_the_role_passes(toy_client):
    client, kernel, clock = toy_client
    r = await client.get("/toy/v1/admin-only", headers=bearer(token(kernel, clock, "org_admin")))
    assert r.status_code == 200 and r.json() == {"user": "u"}


async def test_missing_token_is_401(toy_client):
    client, *_ = toy_client
    assert_problem(await client.get("/toy/v1/admin-only"), 401, "missing_token")


async def test_wrong_issuer_is_401(toy_client):
    client, kernel, clock = toy_client
    other = Signer(kernel.app, kernel.kernel.model_copy(update={"jwt_issuer": "not-the-registry"}))
    r = await client.get("/toy/v1/admin-only", headers=bearer(token(other, clock, "org_admin")))
    assert_problem(r, 401, "invalid_token")


async def test_expired_token_is_401_by_the_injected_clock(toy_client):
    client, kernel, clock = toy_client
    tok = token(kernel, clock, "org_admin")
    clock.advance(seconds=kernel.token_ttl_seconds - 1)
    assert (await client.get("/toy/v1/admin-only", headers=bearer(tok))).status_code == 200
    clock.advance(seconds=1)
    assert_problem(
        await client.get("/toy/v1/admin-only", headers=bearer(tok)), 401, "token_expired"
    )


async def test_garbage_and_unsigned_tokens_are_401(toy_client):
    client, kernel, clock = toy_client
    unsigned = jwt.encode(
        {"iss": kernel.jwt_issuer, "sub": str(uuid.uuid4()), "exp": 2**40, "roles": ["org_admin"]},
        key=None,
        algorithm="none",
    )
    for bad in ("not-a-jwt", unsigned):
        assert_problem(
            await client.get("/toy/v1/admin-only", headers=bearer(bad)), 401, "invalid_token"
        )


async def test_wrong_role_is_403(toy_client):
    client, kernel, clock = toy_client
    for role in ("cadre", "inspector", "finance", "auditor"):
        r = await client.get("/toy/v1/admin-only", headers=bearer(token(kernel, clock, role)))
        assert_problem(r, 403, "wrong_role")


async def test_cadre_reads_only_own_record(toy_client):
    client, kernel, clock = toy_client
    me, other = uuid.uuid4(), uuid.uuid4()
    mine = bearer(token(kernel, clock, "cadre", cadre_id=me))
    assert (await client.get(f"/toy/v1/cadres/{me}", headers=mine)).status_code == 200
    assert_problem(await client.get(f"/toy/v1/cadres/{other}", headers=mine), 403, "not_own_record")
    auditor = bearer(token(kernel, clock, "auditor"))
    assert (await client.get(f"/toy/v1/cadres/{other}", headers=auditor)).status_code == 200


async def test_token_lifetime_is_reported(toy_client):
    _, signer, clock = toy_client
    tok, expires_in = issue_token(
        signer.keys,
        signer.kernel,
        clock,
        Principal(user_id=uuid.uuid4(), username="u", roles=["cadre"]),
    )
    key = signer.keys.get(jwt.get_unverified_header(tok)["kid"])
    claims = jwt.decode(tok, key, algorithms=["EdDSA"], options={"verify_exp": False})
    assert claims["exp"] - claims["iat"] == expires_in == int(timedelta(hours=8).total_seconds())


async def test_bad_input_is_422_problem_naming_the_field(toy_client):
    client, *_ = toy_client
    r = await client.post("/toy/v1/notes", json={"key": "a", "seq": "not-a-number"})
    assert_problem(r, 422, "invalid_input")
    assert r.json()["field"] == "seq"
    assert r.json()["errors"][0]["field"] == "seq"


async def test_a_clock_ahead_of_the_machine_still_verifies_its_own_tokens(toy_client):
    client, kernel, clock = toy_client
    clock.advance(days=400)  # a back-fill or a test set in the future
    r = await client.get("/toy/v1/admin-only", headers=bearer(token(kernel, clock, "org_admin")))
    assert r.status_code == 200
