"""Registry facts kept locally: replaying the same events changes nothing."""

import uuid
from datetime import date

from sqlalchemy import select

from services.assessment.models import Cadre, Posting, Unit, UnitPath
from shared.contracts.enums import PostingEndReason, PostingRole, UnitKind
from shared.contracts.registry import PostingEnded, PostingOpened, UnitUpserted
from tests.assessment import factories as f
from tests.support import next_version


async def snapshot(system) -> dict:
    async with system.transaction("assessment") as s:
        out = {}
        for model in (Unit, UnitPath, Cadre, Posting):
            rows = (await s.execute(select(model.__table__))).all()
            out[model.__tablename__] = sorted(tuple(map(str, r)) for r in rows)
        return out


async def test_replaying_the_same_events_changes_nothing(system):
    t = await f.tree(system)
    c = await f.cadre(system)
    opened = PostingOpened(
        posting_id=uuid.uuid4(),
        cadre_id=c,
        unit_id=t.group,
        role=PostingRole.member,
        start_date=date(2026, 1, 1),
        entity_version=1,
    )
    ended = PostingEnded(
        **opened.model_dump(exclude={"end_date", "entity_version"}),
        entity_version=2,
        end_date=date(2026, 6, 30),
        reason=PostingEndReason.completed,
    )
    await system.emit(opened, key=c)
    await system.emit(ended, key=c)
    before = await snapshot(system)
    assert len(before["units"]) == 6 and len(before["postings"]) == 1

    # The same facts again (new event ids, so the inbox does not skip them); the versions
    # are the ones already applied, so nothing changes, whatever the order.
    group = UnitUpserted(
        unit_id=t.group,
        code=f"group-{t.group.hex[:6]}",
        name=f"group {t.group.hex[:6]}",
        kind=UnitKind.group,
        parent_id=t.village,
        ancestors=[t.county, t.township, t.village],
        entity_version=1,
    )
    await system.emit(group, key=t.group)
    await system.emit(opened, key=c)  # a late redelivery of "opened" keeps the end
    assert await snapshot(system) == before
    await system.emit(ended, key=c)
    assert await snapshot(system) == before


async def test_a_unit_keeps_its_ancestors_and_a_move_replaces_them(system):
    t = await f.tree(system)
    moved = UnitUpserted(
        unit_id=t.group,
        code="g",
        name="g",
        kind=UnitKind.group,
        parent_id=t.other_village,
        ancestors=[t.county, t.other_township, t.other_village],
        entity_version=next_version(),
    )
    await system.emit(moved, key=t.group)
    async with system.transaction("assessment") as s:
        rows = await s.execute(
            select(UnitPath.ancestor_id, UnitPath.depth).where(UnitPath.unit_id == t.group)
        )
        paths = dict(rows.all())
    assert paths == {t.group: 0, t.other_village: 1, t.other_township: 2, t.county: 3}


async def test_a_group_uses_its_villages_geofence(system):
    t = await f.tree(system)
    c = await f.posted_cadre(system, t.group)
    inside = await f.sign_in(system, c, f.local(2026, 11, 25, 9))
    assert inside.json()["status"] == "accepted"
    far = await f.sign_in(system, c, f.local(2026, 11, 25, 9, 30), lat=f.VILLAGE_LAT + 0.01)
    assert far.json()["reasons"] == ["outside_geofence"]
