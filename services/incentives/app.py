"""The incentives service: its spec, and an app serving it alone (distributed mode)."""

from pathlib import Path

from fastapi import FastAPI

import shared.contracts  # noqa: F401  (registers every event type)
from services.incentives import models
from services.incentives.api import router
from services.incentives.events import handlers
from services.incentives.service.policy import seed_defaults
from services.incentives.settings import IncentivesSettings
from shared.runtime import ServiceRuntime, ServiceSpec, build_app


async def on_start(runtime: ServiceRuntime) -> None:
    # Handlers get (session, payload, envelope): the clock rides on every session instead.
    runtime.sessionmaker.configure(info={"clock": runtime.clock})
    async with runtime.transaction() as session:
        await seed_defaults(session)


spec = ServiceSpec(
    name="incentives",
    router=router,
    metadata=models.metadata,
    settings_cls=IncentivesSettings,
    migrations=Path(__file__).parent / "migrations",
    handlers=handlers,
    on_start=on_start,
    unit_closure=models.unit_ancestors,
    uses_field_key=True,
    # Every handler that recomputes a cadre locks it first (eligibility.lock_cadre).
    parallel_partitions=True,
)


def create_app(**kwargs) -> FastAPI:
    return build_app([spec], **kwargs)
