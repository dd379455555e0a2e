"""Who may see what: roles, and the unit-subtree scope carried in the token.

A user's `unit_id` scope covers that unit's subtree; a user without one (org_admin,
auditor...) sees everything. A direct read outside the scope is 403; lists simply leave
out what the caller may not see. Staff roles read the registry; a plain cadre reads units
and their own records only.
"""

import uuid
from typing import Annotated

from sqlalchemy import exists, false, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from services.registry.models import UnitTree
from shared.auth import Principal
from shared.authz import EVERYONE, STAFF, Access, Authz, Scope
from shared.contracts.enums import Role
from shared.errors import Forbidden

allow = Authz(UnitTree.__table__).allow

Admin = Annotated[Access, allow(Role.org_admin)]
Staff = Annotated[Access, allow(*STAFF)]
UserReader = Annotated[Access, allow(Role.org_admin, Role.auditor)]
# A cadre's records: staff within their subtree, a cadre their own.
StaffOrOwn = Annotated[Access, allow(*STAFF, own=True)]
# The org tree itself: every signed-in user reads units (scoped users their subtree).
Anyone = Annotated[Access, allow(*EVERYONE)]
# One user by id: org_admin and auditors within their subtree; anyone else only themself
# (the service tells which).
UserReaderOrSelf = Annotated[Access, allow(*EVERYONE)]
Myself = Annotated[Access, allow(*EVERYONE, scope=Scope.self)]


def subtree(unit_id: uuid.UUID):
    """The ids of `unit_id` and everything under it, as a subquery."""
    return select(UnitTree.unit_id).where(UnitTree.ancestor_id == unit_id)


def under(column, unit_id: uuid.UUID) -> ColumnElement[bool]:
    return column.in_(subtree(unit_id))


def scope_clause(principal: Principal, column) -> ColumnElement[bool] | None:
    """The WHERE clause keeping a list inside the caller's subtree (None: no limit)."""
    return None if principal.unit_id is None else under(column, principal.unit_id)


def own_only(principal: Principal) -> bool:
    """A caller without a staff role reaches only their own cadre records."""
    return not principal.has(*STAFF)


async def in_subtree(session: AsyncSession, unit_id: uuid.UUID | None, root: uuid.UUID) -> bool:
    if unit_id is None:
        return False
    return bool(
        await session.scalar(
            select(exists().where(UnitTree.ancestor_id == root, UnitTree.unit_id == unit_id))
        )
    )


async def ensure_in_scope(
    session: AsyncSession, principal: Principal, unit_id: uuid.UUID | None
) -> None:
    """403 when `unit_id` lies outside the caller's subtree (unscoped callers pass)."""
    if principal.unit_id is None:
        return
    if not await in_subtree(session, unit_id, principal.unit_id):
        raise Forbidden("outside your unit scope", code="outside_scope")


def visible_clause(principal: Principal, *, cadre_col, unit_col) -> ColumnElement[bool] | None:
    """What of a cadre-owned list the caller sees: their own rows, or those in scope."""
    if own_only(principal):
        return cadre_col == principal.cadre_id if principal.cadre_id else false()
    return scope_clause(principal, unit_col)


async def ensure_visible(
    session: AsyncSession, principal: Principal, *, cadre_id: uuid.UUID, unit_id
) -> None:
    """A cadre-owned record: the cadre's own, or a staff member's within scope; else 403."""
    if own_only(principal):
        if principal.cadre_id != cadre_id:
            raise Forbidden("not your record", code="not_own_record")
        return
    await ensure_in_scope(session, principal, unit_id)
