"""The token endpoint: form username/password in, a bearer JWT out."""

from typing import Annotated

from fastapi import APIRouter, Form

from services.registry.api.deps import Kernel, Session, Settings
from services.registry.schemas import Token
from services.registry.service import users as user_service
from shared.authz import PUBLIC
from shared.runtime import ClockDep
from shared.types import Text

router = APIRouter(tags=["registry: auth"])


@router.post("/auth/token", response_model=Token, dependencies=[PUBLIC])
async def token(
    session: Session,
    kernel: Kernel,
    settings: Settings,
    clock: ClockDep,
    username: Annotated[Text, Form(max_length=100)],
    password: Annotated[Text, Form(max_length=200)],
) -> Token:
    """Exchange a username and password for a bearer token (401 on bad credentials)."""
    access, ttl = await user_service.issue(
        session, kernel=kernel, settings=settings, clock=clock, username=username, password=password
    )
    return Token(access_token=access, expires_in=ttl)
