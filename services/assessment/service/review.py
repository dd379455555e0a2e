"""Reviewing sign-ins (issue 13, finding 7): the list inspectors, org_admin and auditors read
to see flagged sign-ins (`mock_location`, `implausible_travel`, ...), and the check that a
finding cites sign-ins of its own subject.

A sign-in is filed under the unit stored with it: the unit of the posting that held on its
local date when it was recorded (as its flags were judged). One recorded while not posted
has no unit and files under the cadre's own unit (a village cadre's village), like the
negative list. Dates are local (Asia/Shanghai); the list runs by device time, then id.
"""

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.service.common import (
    CADRES,
    POSTINGS,
    SIGN_INS,
    UNITS,
    after_key,
    covers,
    subtree,
)
from shared.clock import local_midnight
from shared.contracts.enums import SignInReason, SignInStatus, SubjectType
from shared.errors import InvalidInput
from shared.pagination import PageParams, make_page

MAX_CITED = 20  # sign-ins one finding may cite


def filed_in(root: uuid.UUID) -> Any:
    """SQL: the sign-in files in `root`'s subtree (its stored unit, else the cadre's own)."""
    homed = select(CADRES.c.cadre_id).where(CADRES.c.unit_id.in_(subtree(root)))
    return or_(
        SIGN_INS.c.unit_id.in_(subtree(root)),
        and_(SIGN_INS.c.unit_id.is_(None), SIGN_INS.c.cadre_id.in_(homed)),
    )


def has_reason(reason: SignInReason) -> Any:
    """SQL: `reason` is one of the sign-in's comma-joined reasons."""
    return (literal(",") + SIGN_INS.c.reasons + literal(",")).like(f"%,{reason.value},%")


async def listing(
    session: AsyncSession,
    *,
    cadre_id: uuid.UUID | None,
    unit_id: uuid.UUID | None,
    first: date | None,
    last: date | None,
    status: SignInStatus | None,
    reason: SignInReason | None,
    page: PageParams,
) -> dict[str, Any]:
    if first and last and last < first:
        raise InvalidInput("to", "`to` is before `from`")
    cadre, unit = CADRES.alias("who"), UNITS.alias("unit")
    stmt = (
        select(SIGN_INS, cadre.c.name.label("cadre_name"), unit.c.name.label("unit_name"))
        .outerjoin(cadre, cadre.c.cadre_id == SIGN_INS.c.cadre_id)
        .outerjoin(unit, unit.c.unit_id == SIGN_INS.c.unit_id)
    )
    if cadre_id is not None:
        stmt = stmt.where(SIGN_INS.c.cadre_id == cadre_id)
    if unit_id is not None:
        stmt = stmt.where(filed_in(unit_id))
    # Both bounds: device time for the (cadre|unit, device_time) indexes and the order,
    # the stored local date for ix_sign_ins_local when nothing narrower is asked.
    if first is not None:
        stmt = stmt.where(
            SIGN_INS.c.device_time >= local_midnight(first), SIGN_INS.c.local_date >= first
        )
    if last is not None:
        stmt = stmt.where(
            SIGN_INS.c.device_time < local_midnight(last + timedelta(days=1)),
            SIGN_INS.c.local_date <= last,
        )
    if status is not None:
        stmt = stmt.where(SIGN_INS.c.status == status.value)
    if reason is not None:
        # A reason means flagged: the partial index on flagged rows serves it.
        stmt = stmt.where(SIGN_INS.c.status == SignInStatus.flagged.value, has_reason(reason))
    if after := page.after():
        key = after_key(after, datetime, uuid.UUID)
        stmt = stmt.where(tuple_(SIGN_INS.c.device_time, SIGN_INS.c.id) > key)
    rows = await session.execute(
        stmt.order_by(SIGN_INS.c.device_time, SIGN_INS.c.id).limit(page.limit + 1)
    )
    items = [_item(dict(r._mapping)) for r in rows]
    return make_page(items, page, lambda r: [r["device_time"], r["id"]])


def _item(row: dict[str, Any]) -> dict[str, Any]:
    return row | {"reasons": [r for r in row["reasons"].split(",") if r]}


async def check_cited(
    session: AsyncSession,
    sign_in_ids: list[uuid.UUID],
    *,
    subject_type: SubjectType,
    subject_id: uuid.UUID,
) -> None:
    """422 on `sign_in_ids` unless each exists and is the subject's: the cadre's own, or (a
    unit) a sign-in of a cadre posted in the unit's subtree on its date, or filed there."""
    if not sign_in_ids:
        return
    if len(set(sign_in_ids)) != len(sign_in_ids):
        raise InvalidInput("sign_in_ids", "a sign-in is cited twice")
    rows = await session.execute(
        select(SIGN_INS.c.id, SIGN_INS.c.cadre_id).where(SIGN_INS.c.id.in_(sign_in_ids))
    )
    found = dict(rows.all())
    missing = [str(i) for i in sign_in_ids if i not in found]
    if missing:
        raise InvalidInput("sign_in_ids", f"no such sign-in: {', '.join(missing)}")
    if subject_type == SubjectType.cadre:
        foreign = [str(i) for i, c in found.items() if c != subject_id]
    else:
        posted_here = (
            select(POSTINGS.c.posting_id)
            .where(
                POSTINGS.c.cadre_id == SIGN_INS.c.cadre_id,
                covers(POSTINGS, SIGN_INS.c.local_date),
                POSTINGS.c.unit_id.in_(subtree(subject_id)),
            )
            .exists()
        )
        ours = await session.execute(
            select(SIGN_INS.c.id).where(
                SIGN_INS.c.id.in_(sign_in_ids), or_(posted_here, filed_in(subject_id))
            )
        )
        mine = set(ours.scalars())
        foreign = [str(i) for i in sign_in_ids if i not in mine]
    if foreign:
        raise InvalidInput(
            "sign_in_ids", f"not a sign-in of the finding's subject: {', '.join(foreign)}"
        )
