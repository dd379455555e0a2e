"""Registry HTTP routes under /registry/v1 (thin: parse, call service, return)."""

from fastapi import APIRouter

from services.registry.api import auth, cadres, households, postings, training, units, users

router = APIRouter(prefix="/v1")
for module in (auth, users, units, cadres, postings, households, training):
    router.include_router(module.router)
