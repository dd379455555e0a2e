"""JWT verification (issuer = registry) and the FastAPI dependencies for roles and self-access.

Tokens are verified locally by every service: no call to the registry per request.
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
from shared.errors import Forbidden, Unauthorized
from shared.settings import KernelSettings

_bearer = HTTPBearer(auto_error=False)


class Principal(BaseModel):
    user_id: UUID
    username: str
    roles: list[Role]
    unit_id: UUID | None = None
    cadre_id: UUID | None = None

    def has(self, *roles: Role | str) -> bool:
        return any(r in self.roles for r in roles)

    def is_self(self, cadre_id: UUID) -> bool:
        return self.cadre_id is not None and self.cadre_id == cadre_id

    def ensure_self_or(self, cadre_id: UUID, *roles: Role | str) -> None:
        """A cadre reaches only their own records; the named roles reach anyone's."""
        if self.has(*roles) or (Role.cadre in self.roles and self.is_self(cadre_id)):
            return
        raise Forbidden("not your record", code="not_own_record")


def issue_token(settings: KernelSettings, clock: Clock, principal: Principal) -> tuple[str, int]:
    now = clock.now()
    ttl = settings.token_ttl_seconds
    claims = {
        "iss": settings.jwt_issuer,
        "sub": str(principal.user_id),
        "name": principal.username,
        "roles": [str(r) for r in principal.roles],
        "unit_id": str(principal.unit_id) if principal.unit_id else None,
        "cadre_id": str(principal.cadre_id) if principal.cadre_id else None,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl)).timestamp()),
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm), ttl


def verify_token(settings: KernelSettings, clock: Clock, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[settings.jwt_algorithm],
            issuer=settings.jwt_issuer,
            # Times are checked against the injectable clock below, not the machine's.
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["exp", "sub", "iss"],
            },
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized("invalid token", code="invalid_token") from exc
    if claims["exp"] <= clock.now().timestamp():
        raise Unauthorized("token expired", code="token_expired")
    try:
        return Principal(
            user_id=claims["sub"],
            username=claims.get("name", ""),
            roles=claims.get("roles", []),
            unit_id=claims.get("unit_id"),
            cadre_id=claims.get("cadre_id"),
        )
    except ValueError as exc:
        raise Unauthorized("invalid token claims", code="invalid_token") from exc


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token", code="missing_token")
    principal = verify_token(
        request.app.state.kernel, request.app.state.clock, credentials.credentials
    )
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
