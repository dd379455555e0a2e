"""Registry HTTP routes under /registry/v1 (thin: parse, call service, return)."""

from fastapi import APIRouter

from services.registry.api import (
    auth,
    cadres,
    households,
    imports,
    postings,
    training,
    units,
    users,
)

router = APIRouter(prefix="/v1")
for module in (auth, users, units, cadres, postings, households, training, imports):
    router.include_router(module.router)
