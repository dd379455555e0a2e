"""What service tests share: a running system (one or more services, embedded) and tokens."""

import itertools
import uuid
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from decimal import Decimal

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, issue_token
from shared.clock import FrozenClock
from shared.contracts.enums import Role
from shared.events import EventPayload, encode, envelope_for
from shared.runtime import ServiceRuntime, settle
from shared.settings import KernelSettings
from shared.transport import Record

# The bootstrap org_admin every test system starts with (tests/conftest.py).
ADMIN = ("admin", "test-bootstrap-chief-9")

_versions = itertools.count(1)


def next_version() -> int:
    """An entity version for an event a test publishes by hand: each call is newer than the
    last, as a producer's versions are (shared.versions). Pass an explicit one to reorder.
    """
    return next(_versions)


# Wednesday 25 November 2026, 10:00 in Asia/Shanghai (ISO week 2026-W48).
DEFAULT_NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


class System:
    """A running app with an httpx client, its clock, and helpers to wait for events."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, clock: FrozenClock):
        self.app, self.client, self.clock = app, client, clock
        self.kernel: KernelSettings = app.state.kernel

    def runtime(self, name: str) -> ServiceRuntime:
        return self.app.state.runtimes[name]

    def transaction(self, name: str) -> AbstractAsyncContextManager[AsyncSession]:
        return self.runtime(name).transaction()

    async def settle(self, timeout: float = 15.0) -> None:
        """Wait until every event written so far has been applied everywhere."""
        await settle(self.app, timeout)

    async def emit(self, payload: EventPayload, *, key, producer: str = "test") -> None:
        """Put an event on the bus as if another service had published it, then settle.

        Lets one service's tests stand alone, speaking the shared contracts.
        """
        env = envelope_for(payload, key=key, producer=producer, occurred_at=self.clock.now())
        await self.app.state.transport.publish([Record(env.topic, env.key, encode(env))])
        await self.settle()

    def token(
        self,
        *roles: Role | str,
        cadre_id: uuid.UUID | str | None = None,
        unit_id: uuid.UUID | str | None = None,
        user_id: uuid.UUID | str | None = None,
        username: str = "tester",
        version: int | None = None,
    ) -> str:
        """A token signed with the app's key, as the registry would issue it.

        Services refuse users they have not heard of (shared/revocation.py); a test user
        made up here is announced to the app's token-version cache, at the version the
        cache knows (or 1), as the registry's user event would.
        """
        user_id = uuid.UUID(str(user_id)) if user_id else uuid.uuid4()
        versions = self.app.state.token_versions
        if version is None:
            version = (versions.known(user_id) or (1, True))[0]
        if versions.known(user_id) is None:
            versions.learn(user_id, version, True)
        principal = Principal(
            user_id=user_id,
            username=username,
            roles=list(roles or [Role.org_admin]),
            cadre_id=cadre_id,
            unit_id=unit_id,
            token_version=version,
        )
        return issue_token(self.app.state.keys, self.kernel, self.clock, principal)[0]

    def headers(self, *roles: Role | str, **kwargs) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*roles, **kwargs)}"}


def money(value: str | int) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


def ids(items: Iterable[dict]) -> set[str]:
    return {i["id"] for i in items}
