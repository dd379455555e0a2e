"""One authorization policy: every route declares who may call it, the kernel enforces it.

A route declares its rule with `allow(...)` (or `PUBLIC`): the roles that reach it, the
scope rule those roles are held to, and whether a cadre reaches their own records.

- `Scope.public`: no token (the token endpoint, health, docs).
- `Scope.self`: only the caller's own user or records.
- `Scope.subtree`: the target's unit must lie in the caller's unit subtree; a caller
  without a unit is county-wide and reaches every unit.
- `Scope.county`: county-wide callers only (no unit in the token), e.g. building batches.
- `Scope.shared`: reference data tied to no unit (policy versions), any listed role.

The dependency answers 401 without a valid token and 403 (`wrong_role`, `county_only`)
before the route runs. What needs the target's unit is checked by the service through the
`Access` the dependency yields: `ensure_unit` (403 `out_of_scope`), `ensure_cadre`
(403 `not_own_record`), `narrow` for lists. The unit tree is each service's own
projection (a closure table of `ancestor_id`, `unit_id`), handed to `Authz`.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import Table, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, _bearer, current_principal
from shared.contracts.enums import Role
from shared.errors import Forbidden


class Scope(StrEnum):
    public = "public"
    self = "self"
    subtree = "subtree"
    county = "county"
    shared = "shared"


NOBODY = uuid.UUID(int=0)  # matches no record: a cadre user linked to no cadre
STAFF = (Role.org_admin, Role.inspector, Role.finance, Role.auditor)
EVERYONE = (Role.cadre, *STAFF)


@dataclass(frozen=True)
class Rule:
    """Who may call a route: `roles` under `scope`, and (own=True) a cadre for their own."""

    roles: frozenset[Role]
    scope: Scope
    own: bool = False

    def describe(self) -> str:
        roles = ",".join(sorted(r.value for r in self.roles)) or "-"
        return f"{self.scope.value}:{roles}{'+own' if self.own else ''}"


@dataclass(frozen=True)
class UnitTree:
    """A service's projection of the org tree: closure rows (ancestor_id, unit_id)."""

    table: Table

    async def contains(self, session: AsyncSession, root: uuid.UUID, unit_id: uuid.UUID) -> bool:
        c = self.table.c
        return bool(
            await session.scalar(
                select(exists().where(c.ancestor_id == root, c.unit_id == unit_id))
            )
        )

    def subtree(self, root: uuid.UUID):
        """The ids of `root` and every unit under it, as a subquery."""
        return select(self.table.c.unit_id).where(self.table.c.ancestor_id == root)


@dataclass(frozen=True)
class Access:
    """The caller as a route's rule let them in: by a role, or (own) as the cadre themself.

    Reads like a `Principal` (attributes are passed through), so services that take a
    principal take an Access as well.
    """

    principal: Principal
    rule: Rule
    tree: UnitTree | None
    by_role: bool

    def __getattr__(self, name: str) -> Any:
        return getattr(self.principal, name)

    @property
    def own_only(self) -> bool:
        """Let in as a cadre for their own records only."""
        return not self.by_role

    @property
    def scope_unit(self) -> uuid.UUID | None:
        """The subtree the caller is held to (None: county-wide or own records)."""
        return self.principal.unit_id if self.by_role else None

    def require(self, *roles: Role) -> None:
        """A narrower role for part of a route (e.g. pay policy within policies), 403."""
        if not (self.by_role and self.principal.has(*roles)):
            wanted = ", ".join(sorted(r.value for r in roles))
            raise Forbidden(f"requires one of: {wanted}", code="wrong_role")

    def ensure_cadre(self, cadre_id: uuid.UUID | None) -> None:
        """A caller let in as a cadre reaches only their own cadre's records (403)."""
        if self.own_only and (cadre_id is None or cadre_id != self.principal.cadre_id):
            raise Forbidden("not your record", code="not_own_record")

    async def in_scope(self, session: AsyncSession, unit_id: uuid.UUID | None) -> bool:
        root = self.scope_unit
        if root is None:
            return True
        if unit_id is None or self.tree is None:
            return False
        return await self.tree.contains(session, root, unit_id)

    async def ensure_unit(self, session: AsyncSession, unit_id: uuid.UUID | None) -> None:
        """403 unless `unit_id` lies in the caller's subtree (county-wide callers pass)."""
        if not await self.in_scope(session, unit_id):
            raise Forbidden("outside your unit scope", code="out_of_scope")

    async def ensure_record(
        self,
        session: AsyncSession,
        *,
        cadre_id: uuid.UUID | None,
        unit_ids: Iterable[uuid.UUID | None],
    ) -> None:
        """A record of a cadre filed under some units: the cadre's own (own access), or any
        of the units in the caller's subtree (role access); else 403."""
        if self.own_only:
            self.ensure_cadre(cadre_id)
            return
        if self.scope_unit is None:
            return
        for unit_id in unit_ids:
            if await self.in_scope(session, unit_id):
                return
        raise Forbidden("outside your unit scope", code="out_of_scope")

    async def narrow(self, session: AsyncSession, unit_id: uuid.UUID | None) -> uuid.UUID | None:
        """A list's unit filter: the caller's subtree when none is asked, 403 outside it."""
        root = self.scope_unit
        if root is None:
            return unit_id
        if unit_id is None:
            return root
        await self.ensure_unit(session, unit_id)
        return unit_id

    def own_cadre(self, cadre_id: uuid.UUID | None) -> uuid.UUID | None:
        """A list's cadre filter: a cadre lists only their own (403 for another's); a cadre
        user linked to no cadre lists nothing."""
        if not self.own_only:
            return cadre_id
        if cadre_id is not None:
            self.ensure_cadre(cadre_id)
        return self.principal.cadre_id or NOBODY


class Guard:
    """The dependency a route's rule becomes; the route-table test looks for it."""

    def __init__(self, rule: Rule, tree: UnitTree | None):
        self.rule, self.tree = rule, tree

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Access:
        rule = self.rule
        principal = await current_principal(request, credentials)
        if principal.has(*rule.roles):
            if rule.scope is Scope.county and principal.unit_id is not None:
                raise Forbidden("requires a county-wide user", code="county_only")
            return Access(principal, rule, self.tree, by_role=True)
        if rule.own and Role.cadre in principal.roles:
            return Access(principal, rule, self.tree, by_role=False)
        wanted = sorted(r.value for r in rule.roles) + (["cadre (own)"] if rule.own else [])
        raise Forbidden(f"requires one of: {', '.join(wanted)}", code="wrong_role")


class Authz:
    """A service's policy factory, bound to its projection of the unit tree."""

    def __init__(self, tree: Table | None = None):
        self.tree = UnitTree(tree) if tree is not None else None

    def allow(self, *roles: Role, scope: Scope = Scope.subtree, own: bool = False) -> Any:
        """`who: Annotated[Access, allow(Role.org_admin, scope=Scope.county)]`."""
        if scope is Scope.public:
            raise ValueError("use PUBLIC for a public route")
        if not roles and not own:
            raise ValueError("a rule names roles, or own=True")
        return Depends(Guard(Rule(frozenset(roles), scope, own), self.tree))


class PublicGuard(Guard):
    """A route anyone may call, token or not."""

    async def __call__(self) -> None:  # type: ignore[override]
        return None


PUBLIC = Depends(PublicGuard(Rule(frozenset(), Scope.public), None))
"""`@router.post(..., dependencies=[PUBLIC])`: no token needed."""


def guards_of(dependant) -> list[Guard]:
    """The Guards a route's dependency tree holds (the route-table test's probe)."""
    found = [dependant.call] if isinstance(dependant.call, Guard) else []
    for sub in dependant.dependencies:
        found.extend(guards_of(sub))
    return found


@dataclass(frozen=True)
class RouteEntry:
    methods: tuple[str, ...]
    path: str
    api: bool  # a FastAPI route (it can declare); else a plain Starlette route (docs)
    rules: tuple[Rule, ...]


def route_table(app: FastAPI) -> list[RouteEntry]:
    """Every route the app serves, with the rules its dependency tree declares."""
    table = []
    for ctx in iter_route_contexts(app.routes):
        if hasattr(ctx.original_route, "lane_of"):
            continue  # a lane (shared/lanes.py) runs its twin's one Guard; the twin is listed
        api = isinstance(ctx.original_route, APIRoute)
        dependant = ctx.dependant if api else None
        rules = tuple(g.rule for g in guards_of(dependant)) if dependant is not None else ()
        table.append(RouteEntry(tuple(sorted(ctx.methods or ())), ctx.path or "", api, rules))
    return table
