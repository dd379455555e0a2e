"""The token endpoint: form username/password in, a bearer JWT out."""

from typing import Annotated

from fastapi import APIRouter, Form, Request

from services.registry.api.deps import Kernel, Keys, Session, Settings, Versions
from services.registry.schemas import Token
from services.registry.service import users as user_service
from services.registry.settings import RegistrySettings
from services.registry.throttle import LoginThrottle
from shared.authz import PUBLIC
from shared.errors import TooManyRequests, Unauthorized
from shared.runtime import ClockDep
from shared.types import Text

router = APIRouter(tags=["registry: auth"])


def login_throttle(request: Request, settings: RegistrySettings) -> LoginThrottle:
    """The app's login brakes, made on first use from the registry's settings."""
    throttle = getattr(request.app.state, "login_throttle", None)
    if throttle is None:
        throttle = request.app.state.login_throttle = LoginThrottle(
            user_free=settings.login_user_free_failures,
            user_cap_seconds=settings.login_user_max_lock_seconds,
            address_free=settings.login_address_free_failures,
            address_cap_seconds=settings.login_address_max_lock_seconds,
            half_life_seconds=settings.login_failure_half_life_seconds,
        )
    return throttle


@router.post("/auth/token", response_model=Token, dependencies=[PUBLIC])
async def token(
    request: Request,
    session: Session,
    kernel: Kernel,
    keys: Keys,
    versions: Versions,
    settings: Settings,
    clock: ClockDep,
    username: Annotated[Text, Form(max_length=100)],
    password: Annotated[Text, Form(max_length=200)],
) -> Token:
    """Exchange a username and password for a bearer token (401 on bad credentials, 429
    with Retry-After after repeated failures for the username or from the address)."""
    throttle = login_throttle(request, settings)
    who = username.strip().casefold()
    # Behind a gateway, uvicorn's --forwarded-allow-ips makes this the real client.
    address = request.client.host if request.client else "unknown"
    now = clock.now().timestamp()
    if wait := throttle.retry_after(who, address, now):
        raise TooManyRequests(
            f"too many failed logins: try again in {wait} s",
            code="login_throttled",
            retry_after=wait,
        )
    try:
        access, ttl = await user_service.issue(
            session,
            kernel=kernel,
            keys=keys,
            versions=versions,
            settings=settings,
            clock=clock,
            username=username,
            password=password,
        )
    except Unauthorized:
        throttle.failed(who, address, now)
        raise
    throttle.succeeded(who, address)
    return Token(access_token=access, expires_in=ttl)
