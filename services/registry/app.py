"""The registry service: its spec, and an app serving it alone (distributed mode)."""

from pathlib import Path

from fastapi import FastAPI

import shared.contracts  # noqa: F401  (registers every event type)
from services.registry import models
from services.registry.api import router
from services.registry.events import handlers
from services.registry.settings import RegistrySettings
from shared.runtime import ServiceSpec, build_app

spec = ServiceSpec(
    name="registry",
    router=router,
    metadata=models.metadata,
    settings_cls=RegistrySettings,
    migrations=Path(__file__).parent / "migrations",
    handlers=handlers,
)


def create_app(**kwargs) -> FastAPI:
    return build_app([spec], **kwargs)
