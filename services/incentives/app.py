"""The incentives service: its spec, and an app serving it alone (distributed mode)."""

from pathlib import Path

from fastapi import FastAPI

import shared.contracts  # noqa: F401  (registers every event type)
from services.incentives import models
from services.incentives.api import router
from services.incentives.events import handlers
from services.incentives.settings import IncentivesSettings
from shared.runtime import ServiceSpec, build_app

spec = ServiceSpec(
    name="incentives",
    router=router,
    metadata=models.metadata,
    settings_cls=IncentivesSettings,
    migrations=Path(__file__).parent / "migrations",
    handlers=handlers,
)


def create_app(**kwargs) -> FastAPI:
    return build_app([spec], **kwargs)
