"""Incentives HTTP routes under /incentives/v1 (thin: parse, call service, return)."""

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from shared.runtime import session_dependency

router = APIRouter(prefix="/v1", tags=["incentives"])
Session = Annotated[AsyncSession, Depends(session_dependency("incentives"))]
