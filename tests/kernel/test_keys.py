"""Token keys: forged tokens of every kind get 401, keys rotate without downtime, embedded
mode keeps its generated key under var/ (0600), distributed mode names what is missing."""

import base64
import hmac
import json
import stat
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth import Principal, issue_token, verify_token
from shared.clock import FrozenClock
from shared.errors import Unauthorized
from shared.keys import SIGNING_KEY_FILE, KeyConfigError, KeyRing, new_private_pem, public_pem
from shared.runtime import build_app
from shared.settings import KernelSettings, ServiceSettings
from tests.kernel import toy
from tests.support import DEFAULT_NOW


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(DEFAULT_NOW)


def toy_app(tmp_path, kernel: KernelSettings, clock, keys: KeyRing | None = None):
    url = f"sqlite+aiosqlite:///{tmp_path / 'toy.sqlite'}"
    return build_app(
        [toy.spec],
        kernel=kernel,
        clock=clock,
        keys=keys,
        service_settings={"toy": ServiceSettings(database_url=url, migrate_on_start=False)},
        workers=False,
    )


async def call(app, token: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get("/toy/v1/admin-only", headers={"Authorization": f"Bearer {token}"})


def principal(user_id: uuid.UUID | None = None) -> Principal:
    return Principal(user_id=user_id or uuid.uuid4(), username="u", roles=["org_admin"])


def claims(user_id: uuid.UUID, kernel: KernelSettings, clock) -> dict:
    now = int(clock.now().timestamp())
    return {
        "iss": kernel.jwt_issuer,
        "sub": str(user_id),
        "name": "u",
        "roles": ["org_admin"],
        "ver": 1,
        "iat": now,
        "exp": now + 3600,
    }


def hs256_by_hand(body: dict, secret: bytes, kid: str) -> str:
    """HS256 with our public key as the secret (PyJWT refuses to make one, rightly)."""
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")  # noqa: E731
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    signing_input = head + b"." + b64(json.dumps(body).encode())
    return (signing_input + b"." + b64(hmac.new(secret, signing_input, "sha256").digest())).decode()


async def test_forged_tokens_of_every_kind_are_401(tmp_path, clock):
    kernel = KernelSettings(var_dir=tmp_path)
    app = toy_app(tmp_path, kernel, clock)
    async with app.router.lifespan_context(app):
        keys, known = app.state.keys, uuid.uuid4()
        app.state.token_versions.learn(known, 1, True)
        good = issue_token(keys, kernel, clock, principal(known))[0]
        assert (await call(app, good)).status_code == 200

        body = claims(known, kernel, clock)
        other = Ed25519PrivateKey.generate()
        stranger = KeyRing(signing=other)
        forged = {
            # Another Ed25519 key, under its own kid and under the registry's kid.
            "other key": stranger.sign(body),
            "other key, our kid": jwt.encode(
                body, other, algorithm="EdDSA", headers={"kid": keys.signing_kid}
            ),
            # A guessed shared secret, HS256, naming our kid.
            "hs256": jwt.encode(
                body,
                "dev-only-change-me-frontline-secret-32b",
                algorithm="HS256",
                headers={"kid": keys.signing_kid},
            ),
            # alg=none, naming our kid.
            "none": jwt.encode(body, None, algorithm="none", headers={"kid": keys.signing_kid}),
            # Our public key used as an HMAC secret (the classic algorithm confusion).
            "public key as secret": hs256_by_hand(
                body, public_pem(keys.get(keys.signing_kid)).encode(), keys.signing_kid
            ),
            # Our key, but a user no service has heard of (a random sub).
            "random sub": issue_token(keys, kernel, clock, principal())[0],
            # Our key, without the token version.
            "no version": keys.sign({k: v for k, v in body.items() if k != "ver"}),
            "no kid": jwt.encode(body, other, algorithm="EdDSA"),
            "garbage": "not.a.jwt",
        }
        for what, token in forged.items():
            r = await call(app, token)
            assert r.status_code == 401, (what, r.text)
            if what == "random sub":  # a good signature: the projection refuses the user
                assert r.json()["code"] == "token_revoked"
                assert verify_token(keys, kernel, clock, token).user_id != known
                continue
            assert r.json()["code"] == "invalid_token", what
            with pytest.raises(Unauthorized):
                verify_token(keys, kernel, clock, token)


async def test_rotation_without_downtime(tmp_path, clock):
    """The registry moves to a new key and keeps the old one's public half valid: a verifier
    that never restarts accepts old tokens and new ones (fetching the JWKS on the new kid)."""
    old, new = new_private_pem().decode(), new_private_pem().decode()
    registry = {"keys": KeyRing.from_settings(KernelSettings(jwt_private_key=old), signs=True)}
    fetched = []

    async def fetch(url: str) -> dict:
        fetched.append(url)
        return registry["keys"].jwks()

    kernel = KernelSettings(
        var_dir=tmp_path,
        mode="distributed",
        jwks_url="http://registry/jwks",
        cursor_secret="rotation-test-cursor-secret",
    )
    verifier = KeyRing.from_settings(kernel, signs=False)
    verifier.fetch, verifier.min_refresh_seconds = fetch, 0
    app = toy_app(tmp_path, kernel, clock, keys=verifier)
    async with app.router.lifespan_context(app):
        user = uuid.uuid4()
        app.state.token_versions.learn(user, 1, True)
        before = issue_token(registry["keys"], kernel, clock, principal(user))[0]
        assert (await call(app, before)).status_code == 200
        assert len(fetched) == 1  # fetched on start, then the parsed keys are kept
        assert (await call(app, before)).status_code == 200 and len(fetched) == 1

        # Rotation: the new key signs, the old public key stays valid for tokens in flight.
        rotated = KernelSettings(
            jwt_private_key=new,
            jwt_public_keys=public_pem(
                KeyRing.from_settings(KernelSettings(jwt_private_key=old), signs=True)._signing
            ),
        )
        registry["keys"] = KeyRing.from_settings(rotated, signs=True)
        after = issue_token(registry["keys"], kernel, clock, principal(user))[0]
        assert jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]
        assert len(registry["keys"].jwks()["keys"]) == 2
        assert (await call(app, after)).status_code == 200
        assert (await call(app, before)).status_code == 200
        assert len(fetched) == 2  # the unknown kid made it fetch again, once

        # The old key retired from the registry's settings: verifiers that restart drop it.
        registry["keys"] = KeyRing.from_settings(KernelSettings(jwt_private_key=new), signs=True)
        fresh = KeyRing.from_settings(kernel, signs=False)
        fresh.fetch = fetch
        await fresh.refresh()
        assert fresh.get(jwt.get_unverified_header(before)["kid"]) is None
        assert fresh.get(jwt.get_unverified_header(after)["kid"]) is not None


async def test_unknown_kids_do_not_hammer_the_registry(tmp_path, clock):
    calls = []

    async def fetch(url: str) -> dict:
        calls.append(url)
        return {"keys": []}

    kernel = KernelSettings(var_dir=tmp_path, mode="distributed", jwks_url="http://registry/jwks")
    keys = KeyRing.from_settings(kernel, signs=False)
    keys.fetch, keys.min_refresh_seconds = fetch, 3600
    for _ in range(5):
        assert await keys.find(f"kid-{uuid.uuid4()}") is None
    assert len(calls) == 1


def test_embedded_makes_its_key_once_in_var_readable_by_us_only(tmp_path):
    kernel = KernelSettings(var_dir=tmp_path)
    first = KeyRing.from_settings(kernel, signs=True)
    path = tmp_path / SIGNING_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = KeyRing.from_settings(kernel, signs=True)
    assert first.signing_kid == again.signing_kid
    # A service embedded without the registry verifies with the same key.
    assert KeyRing.from_settings(kernel, signs=False).get(first.signing_kid) is not None


def test_distributed_refuses_to_start_without_keys_and_names_the_setting(tmp_path):
    kernel = KernelSettings(var_dir=tmp_path, mode="distributed")
    with pytest.raises(KeyConfigError, match="FRONTLINE_JWT_PRIVATE_KEY"):
        KeyRing.from_settings(kernel, signs=True)
    with pytest.raises(KeyConfigError, match="FRONTLINE_JWKS_URL"):
        KeyRing.from_settings(kernel, signs=False)
    assert not (tmp_path / SIGNING_KEY_FILE).exists()
    from services.main import service_app

    with pytest.raises(KeyConfigError, match="FRONTLINE_JWT_PRIVATE_KEY"):
        service_app("registry", kernel=kernel)
    with pytest.raises(KeyConfigError, match="FRONTLINE_JWKS_URL"):
        service_app("incentives", kernel=kernel)


def test_no_secret_has_a_default():
    fields = KernelSettings.model_fields
    assert "jwt_secret" not in fields
    for name in ("jwt_private_key", "jwt_public_keys", "bootstrap_admin_password"):
        assert fields[name].default == "", name


async def test_a_verifier_restarted_while_the_registry_is_down_keeps_verifying(tmp_path, clock):
    registry = KeyRing(signing=Ed25519PrivateKey.generate())
    up = {"registry": True}

    async def fetch(url: str) -> dict:
        if not up["registry"]:
            raise httpx.ConnectError("connection refused")
        return registry.jwks()

    kernel = KernelSettings(
        var_dir=tmp_path,
        mode="distributed",
        jwks_url="http://registry/jwks",
        cursor_secret="restart-test-cursor-secret",
    )

    def verifier() -> KeyRing:
        keys = KeyRing.from_settings(kernel, signs=False)
        keys.fetch = fetch
        return keys

    user = uuid.uuid4()
    token = issue_token(registry, kernel, clock, principal(user))[0]
    first = toy_app(tmp_path, kernel, clock, keys=verifier())
    async with first.router.lifespan_context(first):
        first.state.token_versions.learn(user, 1, True)
        assert (await call(first, token)).status_code == 200
    up["registry"] = False
    again = toy_app(tmp_path, kernel, clock, keys=verifier())
    async with again.router.lifespan_context(again):
        again.state.token_versions.learn(user, 1, True)
        assert (await call(again, token)).status_code == 200  # from var/jwks-cache.json
        # A key it never saw while the registry is unreachable: 503, retry; not 401.
        other = KeyRing(signing=Ed25519PrivateKey.generate())
        r = await call(again, issue_token(other, kernel, clock, principal(user))[0])
        assert r.status_code == 503 and r.json()["code"] == "keys_unavailable"
