"""Names next to ids, read from the projections of the registry's events.

A list names its page with two reads (the cadres, the units with their townships), never a
query per row; an id the projections do not know (yet) gets `None` for its name.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.service.common import CADRES, PATHS, UNITS, chunks


@dataclass(frozen=True)
class UnitName:
    name: str
    township_id: uuid.UUID | None
    township_name: str | None


async def cadre_names(
    session: AsyncSession, ids: Iterable[uuid.UUID | None]
) -> dict[uuid.UUID, str]:
    wanted = list({i for i in ids if i is not None})
    found: dict[uuid.UUID, str] = {}
    for part in chunks(wanted):
        rows = await session.execute(
            select(CADRES.c.cadre_id, CADRES.c.name).where(CADRES.c.cadre_id.in_(part))
        )
        found.update(rows.tuples().all())
    return found


async def unit_names(
    session: AsyncSession, ids: Iterable[uuid.UUID | None]
) -> dict[uuid.UUID, UnitName]:
    """Each unit's name and its township (itself for a township; none above one)."""
    wanted = list({i for i in ids if i is not None})
    found: dict[uuid.UUID, UnitName] = {}
    town = UNITS.alias("town")
    for part in chunks(wanted):
        names = dict(
            (
                await session.execute(
                    select(UNITS.c.unit_id, UNITS.c.name).where(UNITS.c.unit_id.in_(part))
                )
            )
            .tuples()
            .all()
        )
        towns = {
            r.unit_id: (r.ancestor_id, r.name)
            for r in await session.execute(
                select(PATHS.c.unit_id, PATHS.c.ancestor_id, town.c.name)
                .join(town, town.c.unit_id == PATHS.c.ancestor_id)
                .where(PATHS.c.unit_id.in_(part), town.c.kind == "township")
            )
        }
        for unit_id, name in names.items():
            township_id, township_name = towns.get(unit_id, (None, None))
            found[unit_id] = UnitName(name, township_id, township_name)
    return found


async def name_rows(
    session: AsyncSession,
    rows: list[dict[str, Any]],
    *,
    person: str,
    as_field: str,
    unit: str = "unit_id",
) -> list[dict[str, Any]]:
    """Add `as_field` (the name of the cadre, or unit, in `row[person]`; a row with a
    `subject_type` of unit names a unit) and `unit_name`, `township_id`, `township_name` of
    `row[unit]` to each row, in place."""
    cadres = await cadre_names(
        session, [r[person] for r in rows if r.get("subject_type", "cadre") == "cadre"]
    )
    units = await unit_names(
        session,
        [r[unit] for r in rows]
        + [r[person] for r in rows if r.get("subject_type", "cadre") == "unit"],
    )
    for r in rows:
        if r.get("subject_type", "cadre") == "unit":
            subject = units.get(r[person])
            r[as_field] = subject.name if subject else None
        else:
            r[as_field] = cadres.get(r[person])
        place = units.get(r[unit])
        r["unit_name"] = place.name if place else None
        r["township_id"] = place.township_id if place else None
        r["township_name"] = place.township_name if place else None
    return rows
