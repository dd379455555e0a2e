"""Access tokens: the registry signs them (EdDSA, shared/keys.py), every service verifies
them locally, with public keys only, and checks the user's token version against its
in-process projection (shared/revocation.py). No call to the registry per request.
Expiry is checked against the injectable clock, so tests can age a token.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated
from uuid import UUID

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from shared.clock import Clock
from shared.contracts.enums import Role
from shared.errors import Forbidden, Unauthorized, Unavailable
from shared.keys import ALGORITHM, KeyRing
from shared.settings import KernelSettings

_bearer = HTTPBearer(auto_error=False)


class Principal(BaseModel):
    user_id: UUID
    username: str
    roles: list[Role]
    unit_id: UUID | None = None
    cadre_id: UUID | None = None
    token_version: int = 1

    def has(self, *roles: Role | str) -> bool:
        return any(r in self.roles for r in roles)

    def is_self(self, cadre_id: UUID) -> bool:
        return self.cadre_id is not None and self.cadre_id == cadre_id

    def ensure_self_or(self, cadre_id: UUID, *roles: Role | str) -> None:
        """A cadre reaches only their own records; the named roles reach anyone's."""
        if self.has(*roles) or (Role.cadre in self.roles and self.is_self(cadre_id)):
            return
        raise Forbidden("not your record", code="not_own_record")


def issue_token(
    keys: KeyRing, settings: KernelSettings, clock: Clock, principal: Principal
) -> tuple[str, int]:
    now = clock.now()
    ttl = settings.token_ttl_seconds
    claims = {
        "iss": settings.jwt_issuer,
        "sub": str(principal.user_id),
        "name": principal.username,
        "roles": [str(r) for r in principal.roles],
        "unit_id": str(principal.unit_id) if principal.unit_id else None,
        "cadre_id": str(principal.cadre_id) if principal.cadre_id else None,
        "ver": principal.token_version,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl)).timestamp()),
    }
    return keys.sign(claims), ttl


def token_kid(token: str) -> str:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise Unauthorized("invalid token", code="invalid_token") from exc
    if not isinstance(kid, str):
        raise Unauthorized("invalid token: no key id", code="invalid_token")
    return kid


def verify_token(keys: KeyRing, settings: KernelSettings, clock: Clock, token: str) -> Principal:
    """The token's principal if a key we hold signed it and it has not expired (else 401).

    Only EdDSA is accepted, so HS256 with a guessed secret and alg=none fail here; the
    token version is checked by the caller against the projection.
    """
    key = keys.get(token_kid(token))
    if key is None:
        raise Unauthorized("invalid token: unknown signing key", code="invalid_token")
    principal, exp = _decode(key, settings, token)
    _check_expiry(exp, clock)
    return principal


def _check_expiry(exp: float, clock: Clock) -> None:
    if exp <= clock.now().timestamp():
        raise Unauthorized("token expired", code="token_expired")


def _decode(key, settings: KernelSettings, token: str) -> tuple[Principal, float]:
    """The principal and expiry of a token whose signature `key` verifies (else 401)."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=settings.jwt_issuer,
            # Times are checked against the injectable clock below, not the machine's.
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["exp", "sub", "iss", "ver"],
            },
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized("invalid token", code="invalid_token") from exc
    if not isinstance(claims["exp"], int | float):
        raise Unauthorized("invalid token claims", code="invalid_token")
    try:
        principal = Principal(
            user_id=claims["sub"],
            username=claims.get("name", ""),
            roles=claims.get("roles", []),
            unit_id=claims.get("unit_id"),
            cadre_id=claims.get("cadre_id"),
            token_version=claims["ver"],
        )
    except ValueError as exc:
        raise Unauthorized("invalid token claims", code="invalid_token") from exc
    return principal, claims["exp"]


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token", code="missing_token")
    state = request.app.state
    token = credentials.credentials
    keys: KeyRing = state.keys
    # A token verified before is not verified again (an Ed25519 check costs ~100 µs, a
    # dict lookup nothing); expiry and token version are still checked on every request.
    verified = keys.verified.get(token)
    if verified is None:
        key = await keys.find(token_kid(token))
        if key is None and keys.fetch_failed:
            # Not the token's fault: the registry's keys are out of reach. Retry, keep it.
            raise Unavailable(
                "the token signing keys cannot be fetched now", code="keys_unavailable"
            )
        if key is None:
            raise Unauthorized("invalid token: unknown signing key", code="invalid_token")
        verified = _decode(key, state.kernel, token)
        keys.remember(token, verified)
    principal, exp = verified
    _check_expiry(exp, state.clock)
    refusal = state.token_versions.refusal(principal.user_id, principal.token_version)
    if refusal is not None:
        raise Unauthorized(refusal, code="token_revoked")
    request.state.principal = principal  # the actor of the request's audit row and events
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role) -> Callable[..., Principal]:
    """A dependency that lets through only the named roles (403 otherwise)."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.has(*roles):
            raise Forbidden(
                f"requires one of: {', '.join(r.value for r in roles)}", code="wrong_role"
            )
        return principal

    return check
