"""Org units: county > township > village > group, with history and the closure table."""

import uuid
from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import delete, insert, literal, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.access import ensure_in_scope, scope_clause, under
from services.registry.models import OrgUnit, UnitChange, UnitTree
from services.registry.schemas import UnitCreate, UnitPublic, UnitUpdate
from services.registry.service.common import (
    by_code,
    emit,
    fetch_page,
    flush_unique,
    get_or_404,
    next_version,
    parse_ts,
    parse_uuid,
)
from shared.auth import Principal
from shared.clock import Clock
from shared.contracts.enums import UnitKind
from shared.contracts.registry import Geofence, UnitUpserted
from shared.errors import Conflict, InvalidInput
from shared.pagination import PageParams
from shared.versions import bump

PARENT_KIND: dict[UnitKind, UnitKind | None] = {
    UnitKind.county: None,
    UnitKind.township: UnitKind.county,
    UnitKind.village: UnitKind.township,
    UnitKind.group: UnitKind.village,
}
CHUNK = 500
GO_LIVE_KINDS = (UnitKind.county, UnitKind.township)


def check_shape(
    kind: UnitKind,
    parent_kind: str | None,
    *,
    has_geofence: bool,
    special_difficulty: bool,
    has_start_date: bool = False,
) -> tuple[str, str] | None:
    """(field, problem) when a unit of `kind` may not hang there or carry those; else None."""
    wanted = PARENT_KIND[kind]
    if wanted is None and parent_kind is not None:
        return "parent_id", "a county has no parent"
    if wanted is not None and parent_kind != wanted:
        return "kind", f"a {kind.value} hangs under a {wanted.value}, not under {parent_kind}"
    if has_geofence and kind != UnitKind.village:
        return "geofence", "only a village has a geofence"
    if special_difficulty and kind != UnitKind.group:
        return "special_difficulty", "only a villager group is flagged special-difficulty"
    if has_start_date and kind not in GO_LIVE_KINDS:
        return "assessment_start_date", "only a county or a township has a go-live date"
    return None


def _raise(problem: tuple[str, str] | None) -> None:
    if problem:
        raise InvalidInput(*problem, code="unit_shape")


def snapshot(unit: OrgUnit) -> dict[str, Any]:
    return {
        "code": unit.code,
        "name": unit.name,
        "parent_id": str(unit.parent_id) if unit.parent_id else None,
        "geofence": fence_of(unit),
        "special_difficulty": unit.special_difficulty,
        "assessment_start_date": _iso(unit.assessment_start_date),
    }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def fence_of(unit: OrgUnit) -> dict[str, float] | None:
    if unit.lat is None:
        return None
    return {"lat": unit.lat, "lon": unit.lon, "radius_m": unit.radius_m}


async def ancestors_of(
    session: AsyncSession, unit_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Each unit's ancestors from the county down to its parent (one query per 500 units)."""
    out: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for i in range(0, len(unit_ids), CHUNK):
        rows = await session.execute(
            select(UnitTree.unit_id, UnitTree.ancestor_id)
            .where(UnitTree.unit_id.in_(unit_ids[i : i + CHUNK]), UnitTree.depth > 0)
            .order_by(UnitTree.unit_id, UnitTree.depth.desc())
        )
        for unit_id, ancestor_id in rows:
            out[unit_id].append(ancestor_id)
    return out


def unit_event(unit: OrgUnit, ancestors: list[uuid.UUID]) -> tuple[UnitUpserted, uuid.UUID]:
    fence = fence_of(unit)
    payload = UnitUpserted(
        unit_id=unit.id,
        code=unit.code,
        name=unit.name,
        kind=unit.kind,
        parent_id=unit.parent_id,
        ancestors=ancestors,
        geofence=Geofence(**fence) if fence else None,
        special_difficulty=unit.special_difficulty,
        active=unit.active,
        entity_version=unit.version,
        assessment_start_date=unit.assessment_start_date,
    )
    return payload, unit.id


async def announce(session: AsyncSession, clock: Clock, units: list[OrgUnit]) -> None:
    ancestry = await ancestors_of(session, [u.id for u in units])
    await emit(session, clock, *[unit_event(u, ancestry.get(u.id, [])) for u in units])


async def link_into_tree(session: AsyncSession, unit_id: uuid.UUID, parent_id: uuid.UUID | None):
    """Closure rows for a new leaf: itself at depth 0, and each of the parent's ancestors."""
    await session.execute(insert(UnitTree).values(ancestor_id=unit_id, unit_id=unit_id, depth=0))
    if parent_id is not None:
        above = select(
            UnitTree.ancestor_id, literal(unit_id, UnitTree.unit_id.type), UnitTree.depth + 1
        ).where(UnitTree.unit_id == parent_id)
        await session.execute(
            insert(UnitTree).from_select(["ancestor_id", "unit_id", "depth"], above)
        )


def _duplicate_code(code: str) -> Conflict:
    return Conflict(f"unit code {code} is taken", code="duplicate_code", field="code")


async def _ensure_code_free(session: AsyncSession, code: str) -> None:
    if await session.scalar(select(OrgUnit.id).where(OrgUnit.code == code)):
        raise _duplicate_code(code)


async def get_unit(session: AsyncSession, unit_id: uuid.UUID) -> OrgUnit:
    return await get_or_404(session, OrgUnit, unit_id, "unit")


async def visible_unit(session: AsyncSession, principal: Principal, unit_id: uuid.UUID) -> OrgUnit:
    unit = await get_unit(session, unit_id)
    await ensure_in_scope(session, principal, unit.id)
    return unit


async def create_unit(
    session: AsyncSession, *, clock: Clock, principal: Principal, data: UnitCreate
) -> OrgUnit:
    parent = await get_unit(session, data.parent_id) if data.parent_id else None
    _raise(
        check_shape(
            data.kind,
            parent.kind if parent else None,
            has_geofence=data.geofence is not None,
            special_difficulty=data.special_difficulty,
            has_start_date=data.assessment_start_date is not None,
        )
    )
    await ensure_in_scope(session, principal, parent.id if parent else None)
    await _ensure_code_free(session, data.code)
    now = clock.now()
    fence = data.geofence
    unit = OrgUnit(
        code=data.code,
        name=data.name,
        kind=data.kind,
        parent_id=parent.id if parent else None,
        lat=fence.lat if fence else None,
        lon=fence.lon if fence else None,
        radius_m=fence.radius_m if fence else None,
        special_difficulty=data.special_difficulty,
        assessment_start_date=data.assessment_start_date,
        created_at=now,
        updated_at=now,
    )
    session.add(unit)
    await flush_unique(session, _duplicate_code(data.code))
    await link_into_tree(session, unit.id, unit.parent_id)
    session.add(
        UnitChange(
            unit_id=unit.id,
            change="created",
            after=snapshot(unit),
            changed_by=principal.user_id,
            changed_at=now,
        )
    )
    await announce(session, clock, [unit])
    return unit


async def update_unit(
    session: AsyncSession,
    *,
    clock: Clock,
    principal: Principal,
    unit_id: uuid.UUID,
    data: UnitUpdate,
) -> OrgUnit:
    """Rename, recode, re-fence, flag, set go-live: one history row per kind of change, one
    event."""
    unit = await visible_unit(session, principal, unit_id)
    given = data.model_fields_set
    changes: list[tuple[str, dict, dict]] = []
    if "name" in given and data.name is not None and data.name != unit.name:
        changes.append(("renamed", {"name": unit.name}, {"name": data.name}))
        unit.name = data.name
    if "code" in given and data.code is not None and data.code != unit.code:
        await _ensure_code_free(session, data.code)
        changes.append(("recoded", {"code": unit.code}, {"code": data.code}))
        unit.code = data.code
    if "geofence" in given:
        fence = data.geofence
        if fence is not None and unit.kind != UnitKind.village:
            raise InvalidInput("geofence", "only a village has a geofence", code="unit_shape")
        before = fence_of(unit)
        unit.lat, unit.lon, unit.radius_m = (
            (fence.lat, fence.lon, fence.radius_m) if fence else (None, None, None)
        )
        if fence_of(unit) != before:
            changes.append(("geofence", {"geofence": before}, {"geofence": fence_of(unit)}))
    flag = data.special_difficulty
    if "special_difficulty" in given and flag is not None and flag != unit.special_difficulty:
        if flag and unit.kind != UnitKind.group:
            raise InvalidInput(
                "special_difficulty", "only a villager group is flagged", code="unit_shape"
            )
        changes.append(("flagged", {"special_difficulty": not flag}, {"special_difficulty": flag}))
        unit.special_difficulty = flag
    start = data.assessment_start_date
    if "assessment_start_date" in given and start != unit.assessment_start_date:
        if start is not None and unit.kind not in GO_LIVE_KINDS:
            raise InvalidInput(
                "assessment_start_date",
                "only a county or a township has a go-live date",
                code="unit_shape",
            )
        before_start = _iso(unit.assessment_start_date)
        changes.append(
            (
                "go_live",
                {"assessment_start_date": before_start},
                {"assessment_start_date": _iso(start)},
            )
        )
        unit.assessment_start_date = start
    if not changes:
        return unit
    now = clock.now()
    unit.updated_at = now
    await flush_unique(session, _duplicate_code(unit.code))
    await next_version(session, unit)
    for change, before, after in changes:
        session.add(
            UnitChange(
                unit_id=unit.id,
                change=change,
                before=before,
                after=after,
                changed_by=principal.user_id,
                changed_at=now,
            )
        )
    await announce(session, clock, [unit])
    return unit


async def move_unit(
    session: AsyncSession,
    *,
    clock: Clock,
    principal: Principal,
    unit_id: uuid.UUID,
    parent_id: uuid.UUID,
) -> OrgUnit:
    """Hang a unit (and its subtree) under another parent of the right kind."""
    unit = await visible_unit(session, principal, unit_id)
    parent = await get_unit(session, parent_id)
    _raise(
        check_shape(
            UnitKind(unit.kind),
            parent.kind,
            has_geofence=unit.lat is not None,
            special_difficulty=unit.special_difficulty,
        )
    )
    await ensure_in_scope(session, principal, parent.id)
    if parent.id == unit.parent_id:
        return unit
    # Kinds strictly descend, so a unit can never land under its own subtree.
    moved = list(
        await session.scalars(select(UnitTree.unit_id).where(UnitTree.ancestor_id == unit.id))
    )
    above = list(
        await session.scalars(
            select(UnitTree.ancestor_id).where(UnitTree.unit_id == unit.id, UnitTree.depth > 0)
        )
    )
    for i in range(0, len(moved), CHUNK):
        await session.execute(
            delete(UnitTree).where(
                UnitTree.unit_id.in_(moved[i : i + CHUNK]), UnitTree.ancestor_id.in_(above)
            )
        )
    p, s = UnitTree.__table__.alias("p"), UnitTree.__table__.alias("s")
    await session.execute(
        insert(UnitTree).from_select(
            ["ancestor_id", "unit_id", "depth"],
            # Every ancestor of the new parent times every unit of the moved subtree.
            select(p.c.ancestor_id, s.c.unit_id, p.c.depth + s.c.depth + 1)
            .select_from(p.join(s, true()))
            .where(p.c.unit_id == parent.id, s.c.ancestor_id == unit.id),
        )
    )
    now = clock.now()
    session.add(
        UnitChange(
            unit_id=unit.id,
            change="moved",
            before={"parent_id": str(unit.parent_id)},
            after={"parent_id": str(parent.id)},
            changed_by=principal.user_id,
            changed_at=now,
        )
    )
    unit.parent_id, unit.updated_at = parent.id, now
    await session.flush()
    # Every unit of the subtree is re-announced, so each gets a new version (under its
    # row's lock) and is read back as the database has it now.
    table = OrgUnit.__table__
    subtree_units: list[OrgUnit] = []
    for i in range(0, len(moved), CHUNK):
        chunk = moved[i : i + CHUNK]
        await bump(session, table, table.c.id.in_(chunk))
        subtree_units.extend(
            await session.scalars(
                select(OrgUnit)
                .where(OrgUnit.id.in_(chunk))
                .execution_options(populate_existing=True)
            )
        )
    await announce(session, clock, subtree_units)
    return unit


async def list_units(
    session: AsyncSession,
    *,
    principal: Principal,
    page: PageParams,
    unit_id: uuid.UUID | None = None,
    parent_id: uuid.UUID | None = None,
    kind: UnitKind | None = None,
    special_difficulty: bool | None = None,
) -> dict[str, Any]:
    stmt = select(OrgUnit)
    if (clause := scope_clause(principal, OrgUnit.id)) is not None:
        stmt = stmt.where(clause)
    if unit_id is not None:
        stmt = stmt.where(under(OrgUnit.id, unit_id))
    if parent_id is not None:
        stmt = stmt.where(OrgUnit.parent_id == parent_id)
    if kind is not None:
        stmt = stmt.where(OrgUnit.kind == kind)
    if special_difficulty is not None:
        stmt = stmt.where(OrgUnit.special_difficulty == special_difficulty)
    return await fetch_page(session, stmt, page, by_code(OrgUnit))


async def unit_detail(session: AsyncSession, principal: Principal, unit_id: uuid.UUID) -> dict:
    unit = await visible_unit(session, principal, unit_id)
    ancestry = await ancestors_of(session, [unit.id])
    return UnitPublic.model_validate(unit).model_dump() | {"ancestors": ancestry.get(unit.id, [])}


async def history(
    session: AsyncSession, *, principal: Principal, unit_id: uuid.UUID, page: PageParams
) -> dict[str, Any]:
    await visible_unit(session, principal, unit_id)
    stmt = select(UnitChange).where(UnitChange.unit_id == unit_id)
    key = [
        (UnitChange.changed_at, "changed_at", parse_ts),
        (UnitChange.id, "id", parse_uuid),
    ]
    return await fetch_page(session, stmt, page, key)
