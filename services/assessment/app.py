"""The assessment service: its spec, and an app serving it alone (distributed mode)."""

from pathlib import Path

from fastapi import FastAPI

import shared.contracts  # noqa: F401  (registers every event type)
from services.assessment import models
from services.assessment.api import router
from services.assessment.events import handlers
from services.assessment.service.scheduler import scheduler
from services.assessment.settings import AssessmentSettings
from shared.runtime import ServiceSpec, build_app

spec = ServiceSpec(
    name="assessment",
    router=router,
    metadata=models.metadata,
    settings_cls=AssessmentSettings,
    migrations=Path(__file__).parent / "migrations",
    handlers=handlers,
    background=[scheduler],
)


def create_app(**kwargs) -> FastAPI:
    return build_app([spec], **kwargs)
