"""Assessment HTTP routes under /assessment/v1 (thin: parse, call service, return)."""

from fastapi import APIRouter

from services.assessment.api import findings, leave, negative, presence, reports, signins, work

router = APIRouter(prefix="/v1", tags=["assessment"])
for module in (signins, presence, negative, findings, leave, work, reports):
    router.include_router(module.router)
