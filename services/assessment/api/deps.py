"""What every assessment route depends on: its transaction, its policy, who may call it."""

from typing import Annotated

from fastapi import Depends, Request

from services.assessment.models import UnitPath
from services.assessment.settings import AssessmentSettings, policy_of
from shared.authz import Access, Authz, Scope
from shared.contracts.enums import Role
from shared.runtime import ServiceRuntime, SessionDep

Session = SessionDep("assessment")


async def _policy(request: Request) -> AssessmentSettings:  # async: no thread-pool hop
    return policy_of(request.app.state.runtimes["assessment"].settings)


async def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtimes["assessment"]


Runtime = Annotated[ServiceRuntime, Depends(_runtime)]
Policy = Annotated[AssessmentSettings, Depends(_policy)]
allow = Authz(UnitPath.__table__).allow

OrgAdmin = Annotated[Access, allow(Role.org_admin)]
CountyAdmin = Annotated[Access, allow(Role.org_admin, scope=Scope.county)]
Reader = Annotated[Access, allow(Role.org_admin, Role.auditor)]
CountyReader = Annotated[Access, allow(Role.org_admin, Role.auditor, scope=Scope.county)]
ReaderOrOwn = Annotated[Access, allow(Role.org_admin, Role.auditor, own=True)]
AdminOrOwn = Annotated[Access, allow(Role.org_admin, own=True)]
Inspector = Annotated[Access, allow(Role.inspector)]
# Inspection reads (findings, negative list, presence): the inspectors beside the readers,
# each held to their subtree; with own, a cadre reads their own records (DESIGN.md §8).
Inspection = Annotated[Access, allow(Role.org_admin, Role.auditor, Role.inspector)]
InspectionOrOwn = Annotated[Access, allow(Role.org_admin, Role.auditor, Role.inspector, own=True)]
FindingsReader, FindingReader = Inspection, InspectionOrOwn
Own = Annotated[Access, allow(scope=Scope.self, own=True)]
# Sign-in review: inspectors, org_admin and auditors in their subtree; a cadre their own.
SignInReader = Annotated[Access, allow(Role.org_admin, Role.auditor, Role.inspector, own=True)]
# A finding's subject appeals: the cadre themself, or a user scoped to the unit it is on
# (auditors write nothing).
Appellant = Annotated[
    Access, allow(Role.cadre, Role.org_admin, Role.inspector, Role.finance, scope=Scope.self)
]
