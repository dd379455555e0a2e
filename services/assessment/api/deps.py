"""What every assessment route depends on: its transaction, its policy, its roles."""

import uuid
from typing import Annotated

from fastapi import Depends, Request

from services.assessment.settings import AssessmentSettings, policy_of
from shared.auth import Principal, require_roles
from shared.contracts.enums import Role
from shared.runtime import ServiceRuntime, SessionDep

Session = SessionDep("assessment")


async def _policy(request: Request) -> AssessmentSettings:  # async: no thread-pool hop
    return policy_of(request.app.state.runtimes["assessment"].settings)


async def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtimes["assessment"]


Runtime = Annotated[ServiceRuntime, Depends(_runtime)]
Policy = Annotated[AssessmentSettings, Depends(_policy)]
OrgAdmin = Annotated[Principal, Depends(require_roles(Role.org_admin))]
Reader = Annotated[Principal, Depends(require_roles(Role.org_admin, Role.auditor))]
Inspector = Annotated[Principal, Depends(require_roles(Role.inspector))]


def own_or_all(principal: Principal, cadre_id: uuid.UUID | None) -> uuid.UUID | None:
    """Lists: org_admin and auditors see every cadre's; a cadre sees only their own."""
    if principal.has(Role.org_admin, Role.auditor):
        return cadre_id
    principal.ensure_self_or(cadre_id or principal.cadre_id or uuid.UUID(int=0))
    return principal.cadre_id
