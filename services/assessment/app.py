"""The assessment service: its spec, and an app serving it alone (distributed mode)."""

from pathlib import Path

from fastapi import FastAPI

import shared.contracts  # noqa: F401  (registers every event type)
from services.assessment import models
from services.assessment.api import router, signins
from services.assessment.events import handlers
from services.assessment.service import signin_fast
from services.assessment.service.scheduler import scheduler
from services.assessment.settings import AssessmentSettings, policy_of
from shared.runtime import ServiceRuntime, ServiceSpec, build_app


async def adopt_policy(runtime: ServiceRuntime) -> None:
    """Read the policy once, also when the runtime was handed plain ServiceSettings."""
    runtime.settings = policy_of(runtime.settings)
    await signin_fast.open_for(runtime)


spec = ServiceSpec(
    name="assessment",
    router=router,
    metadata=models.metadata,
    settings_cls=AssessmentSettings,
    migrations=Path(__file__).parent / "migrations",
    handlers=handlers,
    on_start=adopt_policy,
    background=[scheduler],
    unit_closure=models.UnitPath.__table__,
    lanes=signins.LANES,
)


def create_app(**kwargs) -> FastAPI:
    return build_app([spec], **kwargs)
