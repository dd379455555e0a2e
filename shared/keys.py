"""The keys of access tokens: the registry signs with an Ed25519 private key (EdDSA), every
service verifies with public keys only.

Where the keys come from:
- `FRONTLINE_JWT_PRIVATE_KEY` (PEM): the registry's current signing key. Embedded mode
  without it makes one on first start at `var/jwt-signing-key.pem` (0600) and reuses it.
- `FRONTLINE_JWT_PUBLIC_KEYS` (PEM blocks, or a JWKS document): further keys accepted:
  the previous signing keys during a rotation, or, for a service that only verifies, the
  registry's keys given by hand.
- `FRONTLINE_JWKS_URL`: the registry's `/registry/.well-known/jwks.json`, fetched by a
  verifying service on the first token it sees and again when a token names a key it does
  not know (a rotation), at most once per `jwks_min_refresh_seconds`.
Distributed mode refuses to start without them and names the missing setting.

Each key is known by its `kid`, the RFC 7638 thumbprint of its public key; the parsed
public keys are kept in a dict, so verifying a token parses no key.
"""

import asyncio
import base64
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.secrets import load_or_create
from shared.settings import KernelSettings

log = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
SIGNING_KEY_FILE = "jwt-signing-key.pem"
JWKS_CACHE_FILE = "jwks-cache.json"  # a verifier's last fetched JWKS (public keys only)


class KeyConfigError(RuntimeError):
    """The keys a service needs are not configured; the message names the setting."""


def new_private_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    x = _b64(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    return {"crv": "Ed25519", "kty": "OKP", "x": x}


def kid_of(key: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint: sha256 of the canonical JWK members, base64url."""
    canonical = json.dumps(public_jwk(key), separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def load_private(pem: str | bytes) -> Ed25519PrivateKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data.strip() + b"\n", password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigError("FRONTLINE_JWT_PRIVATE_KEY must be an Ed25519 private key (PEM)")
    return key


def parse_public_keys(text: str) -> list[Ed25519PublicKey]:
    """Public keys from PEM blocks or from a JWKS document (only Ed25519 keys count)."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("{"):
        return keys_of_jwks(json.loads(text))
    keys = []
    for block in text.split("-----END PUBLIC KEY-----"):
        if "-----BEGIN PUBLIC KEY-----" not in block:
            continue
        pem = block[block.index("-----BEGIN PUBLIC KEY-----") :] + "-----END PUBLIC KEY-----\n"
        key = serialization.load_pem_public_key(pem.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise KeyConfigError("FRONTLINE_JWT_PUBLIC_KEYS holds a key that is not Ed25519")
        keys.append(key)
    if not keys:
        raise KeyConfigError("FRONTLINE_JWT_PUBLIC_KEYS holds neither PEM public keys nor a JWKS")
    return keys


def keys_of_jwks(doc: dict[str, Any]) -> list[Ed25519PublicKey]:
    keys = []
    for jwk in doc.get("keys", []):
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        key = jwt.PyJWK(jwk, algorithm=ALGORITHM).key
        if isinstance(key, Ed25519PublicKey):
            keys.append(key)
    return keys


def public_pem(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


async def _fetch_jwks(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.get(url)
        r.raise_for_status()
        return r.json()


class KeyRing:
    """The signing key (the registry only) and the public keys tokens are verified with."""

    def __init__(
        self,
        *,
        signing: Ed25519PrivateKey | None = None,
        public: list[Ed25519PublicKey] = (),
        jwks_url: str = "",
        min_refresh_seconds: float = 5.0,
        fetch: Callable[[str], Awaitable[dict[str, Any]]] | None = None,
    ):
        self._signing = signing
        self.signing_kid = kid_of(signing.public_key()) if signing else None
        self._public: dict[str, Ed25519PublicKey] = {}
        for key in [*([signing.public_key()] if signing else []), *public]:
            self._public[kid_of(key)] = key
        self._static = dict(self._public)  # from settings: never dropped by a fetch
        self.jwks_url = jwks_url
        self.min_refresh_seconds = min_refresh_seconds
        self.fetch = fetch or _fetch_jwks
        self.fetch_failed = False  # the last fetch could not reach the registry
        self.cache_path: Path | None = None
        # Tokens whose signature was checked, with what they carry (insertion-ordered, so
        # the oldest go first when full). Keyed by the whole token: the same bytes, the
        # same verdict. Entries are read-only.
        self.verified: dict[str, Any] = {}
        self.max_verified = 20_000
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, kernel: KernelSettings, *, signs: bool) -> "KeyRing":
        """The keys the app needs; KeyConfigError names the setting that is missing."""
        public = parse_public_keys(kernel.jwt_public_keys)
        signing = None
        if kernel.jwt_private_key.strip():
            signing = load_private(kernel.jwt_private_key)
        elif signs and kernel.mode == "embedded":
            signing = load_private(
                load_or_create(kernel.var_dir / SIGNING_KEY_FILE, new_private_pem)
            )
        elif signs:
            raise KeyConfigError(
                "FRONTLINE_JWT_PRIVATE_KEY is not set: the registry signs access tokens with "
                "it (an Ed25519 private key in PEM; previous keys go in FRONTLINE_JWT_PUBLIC_KEYS)"
            )
        if not signs and signing is None and not public and not kernel.jwks_url:
            if kernel.mode == "embedded":
                # A service embedded without the registry verifies the embedded key's tokens.
                signing = load_private(
                    load_or_create(kernel.var_dir / SIGNING_KEY_FILE, new_private_pem)
                )
            else:
                raise KeyConfigError(
                    "FRONTLINE_JWKS_URL (the registry's /registry/.well-known/jwks.json) or "
                    "FRONTLINE_JWT_PUBLIC_KEYS is not set: this service cannot verify tokens"
                )
        ring = cls(
            signing=signing,
            public=public,
            jwks_url=kernel.jwks_url,
            min_refresh_seconds=kernel.jwks_min_refresh_seconds,
        )
        if kernel.jwks_url:
            ring.load_cache(kernel.var_dir / JWKS_CACHE_FILE)
        return ring

    def load_cache(self, path: Path) -> None:
        """Start with the keys last fetched (public keys only), so a verifier restarted
        while the registry is down still verifies the tokens already out there."""
        self.cache_path = path
        try:
            for key in keys_of_jwks(json.loads(path.read_text())):
                self._public.setdefault(kid_of(key), key)
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the JWKS cache %s: %s", path, exc)

    @property
    def can_sign(self) -> bool:
        return self._signing is not None

    def sign(self, claims: dict[str, Any]) -> str:
        if self._signing is None:
            raise KeyConfigError("this service holds no signing key")
        return jwt.encode(
            claims, self._signing, algorithm=ALGORITHM, headers={"kid": self.signing_kid}
        )

    def remember(self, token: str, verified: Any) -> None:
        if len(self.verified) >= self.max_verified:
            self.verified.pop(next(iter(self.verified)))
        self.verified[token] = verified

    def get(self, kid: str) -> Ed25519PublicKey | None:
        return self._public.get(kid)

    async def find(self, kid: str) -> Ed25519PublicKey | None:
        """The key named `kid`, fetching the JWKS again if it is new to us (rate-limited)."""
        key = self._public.get(kid)
        if key is not None or not self.jwks_url:
            return key
        async with self._lock:
            # Rate-limited (a flood of made-up kids must not flood the registry); after a
            # failed fetch, retried sooner.
            interval = (
                min(1.0, self.min_refresh_seconds)
                if self.fetch_failed
                else (self.min_refresh_seconds)
            )
            if kid not in self._public and time.monotonic() - self._fetched_at >= interval:
                await self.refresh()
        return self._public.get(kid)

    async def refresh(self) -> None:
        """Fetch the registry's JWKS: its keys, plus those from settings, are the ones valid."""
        self._fetched_at = time.monotonic()
        try:
            doc = await self.fetch(self.jwks_url)
            keys = keys_of_jwks(doc)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("JWKS from %s unavailable: %s", self.jwks_url, exc)
            self.fetch_failed = True
            return
        self.fetch_failed = False
        # The registry's JWKS is the truth: a key it no longer lists was retired (after its
        # tokens' lifetime, or because it leaked), so its tokens stop verifying here too.
        fresh = {**self._static, **{kid_of(k): k for k in keys}}
        if set(self._public) - set(fresh):
            self.verified.clear()
        self._public = fresh
        if self.cache_path is not None:
            try:
                tmp = self.cache_path.with_name(f".{self.cache_path.name}.{os.getpid()}")
                tmp.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(json.dumps(self.jwks()))
                os.replace(tmp, self.cache_path)
            except OSError as exc:
                log.warning("could not keep the JWKS in %s: %s", self.cache_path, exc)

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWKS document (what the registry serves)."""
        return {
            "keys": [
                {**public_jwk(key), "kid": kid, "use": "sig", "alg": ALGORITHM}
                for kid, key in self._public.items()
            ]
        }
