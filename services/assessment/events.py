"""What assessment consumes: registry events kept as local projections.

Every handler is an upsert of the record's whole state, applied only when the event's
entity version is newer than the one applied (shared.versions): replays, redeliveries and
reordering all leave the state of the newest version.
"""

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.models import Cadre, Posting, Unit, UnitPath, User
from shared.contracts.registry import (
    CadreUpserted,
    PostingEnded,
    PostingOpened,
    UnitUpserted,
    UserUpserted,
)
from shared.db import insert_ignore, upsert
from shared.events import Envelope
from shared.inbox import Handlers
from shared.versions import advance

handlers = Handlers()

UNITS, PATHS = Unit.__table__, UnitPath.__table__
CADRES, POSTINGS, USERS = Cadre.__table__, Posting.__table__, User.__table__


async def _upsert(session: AsyncSession, table, row: dict, key: str, update=None) -> None:
    update = update if update is not None else [c for c in row if c != key]
    await session.execute(upsert(session, table, [key], update).values(row))


@handlers.on(UnitUpserted)
async def on_unit(session: AsyncSession, p: UnitUpserted, _: Envelope) -> None:
    if not await advance(session, "unit", p.unit_id, p.entity_version):
        return
    fence = p.geofence
    row = {
        "unit_id": p.unit_id,
        "code": p.code,
        "name": p.name,
        "kind": p.kind.value,
        "parent_id": p.parent_id,
        "fence_lat": fence.lat if fence else None,
        "fence_lon": fence.lon if fence else None,
        "fence_radius_m": fence.radius_m if fence else None,
        "special_difficulty": p.special_difficulty,
        "active": p.active,
        "assessment_start_date": p.assessment_start_date,
    }
    await _upsert(session, UNITS, row, "unit_id")
    # The closure rows of this unit follow its ancestors (a move re-announces the subtree).
    await session.execute(delete(PATHS).where(PATHS.c.unit_id == p.unit_id))
    chain = [*p.ancestors, p.unit_id]
    paths = [
        {"unit_id": p.unit_id, "ancestor_id": a, "depth": len(chain) - 1 - i}
        for i, a in enumerate(chain)
    ]
    await session.execute(insert_ignore(session, PATHS).values(paths))


@handlers.on(CadreUpserted)
async def on_cadre(session: AsyncSession, p: CadreUpserted, _: Envelope) -> None:
    if not await advance(session, "cadre", p.cadre_id, p.entity_version):
        return
    row = {
        "cadre_id": p.cadre_id,
        "name": p.name,
        "category": p.category.value,
        "position": p.position.value if p.position else None,
        "active": p.active,
        "unit_id": p.unit_id,
    }
    await _upsert(session, CADRES, row, "cadre_id")


@handlers.on(PostingOpened, PostingEnded)
async def on_posting(session: AsyncSession, p: PostingOpened | PostingEnded, _: Envelope) -> None:
    # An "opened" older than an end already applied is skipped: it never re-opens.
    if not await advance(session, "posting", p.posting_id, p.entity_version):
        return
    row = {
        "posting_id": p.posting_id,
        "cadre_id": p.cadre_id,
        "unit_id": p.unit_id,
        "role": p.role.value,
        "start_date": p.start_date,
        "end_date": p.end_date,
        "end_reason": p.reason.value if isinstance(p, PostingEnded) else None,
    }
    await _upsert(session, POSTINGS, row, "posting_id")


@handlers.on(UserUpserted)
async def on_user(session: AsyncSession, p: UserUpserted, _: Envelope) -> None:
    row = {
        "user_id": p.user_id,
        "username": p.username,
        "roles": [r.value for r in p.roles],
        "unit_id": p.unit_id,
        "cadre_id": p.cadre_id,
        "active": p.active,
    }
    await _upsert(session, USERS, row, "user_id")
