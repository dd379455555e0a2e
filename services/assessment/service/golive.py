"""Go-live (`assessment_start_date`): before it, nothing is judged and nothing is overdue.

A county or a township may carry a go-live date (registry, projected here). A cadre's
go-live is the latest date set on the ancestry of the unit they file under on the date in
question (the posting's unit, else their own unit); no date anywhere means no restriction.
Rules, decided here and in the README:
- a presence week counts only if it starts (Monday) on or after the cadre's go-live;
- `not_returned`, `duty_missed`, `task_overdue` dated before it are not raised;
- closing a week that ends (Sunday) before the go-live of every county is 409
  `before_go_live`, and the scheduler does not close it (nor any week while no county
  is known: nothing has started).
"""

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.service.common import CADRES, PATHS, POSTINGS, UNITS, covers
from shared.errors import Conflict


def go_live_of(unit_expr: Any) -> Any:
    """SQL: the go-live of a unit, the latest date set on its ancestry (NULL: none set)."""
    path, above = PATHS.alias("golive_path"), UNITS.alias("golive_unit")
    return (
        select(func.max(above.c.assessment_start_date))
        .select_from(path.join(above, above.c.unit_id == path.c.ancestor_id))
        .where(path.c.unit_id == unit_expr)
        .scalar_subquery()
    )


def unit_on(cadre_col: Any, day: Any) -> Any:
    """SQL: the unit a cadre files under on `day`: the posting's (the newest when a
    correction left two), else the cadre's own unit."""
    posting = POSTINGS.alias("golive_posting")
    posted = (
        select(posting.c.unit_id)
        .where(posting.c.cadre_id == cadre_col, covers(posting, day))
        .order_by(posting.c.start_date.desc())
        .limit(1)
        .scalar_subquery()
    )
    home = select(CADRES.c.unit_id).where(CADRES.c.cadre_id == cadre_col).scalar_subquery()
    return func.coalesce(posted, home)


def cadre_go_live(cadre_col: Any, day: Any) -> Any:
    """SQL: the go-live of the cadre's unit on `day` (NULL: no restriction)."""
    return go_live_of(unit_on(cadre_col, day))


def is_live(go_live: date | None, day: date) -> bool:
    return go_live is None or day >= go_live


async def counties(session: AsyncSession) -> list[date | None]:
    """The go-live of every county the projection knows (None: unset)."""
    rows = await session.execute(
        select(UNITS.c.assessment_start_date).where(UNITS.c.kind == "county")
    )
    return list(rows.scalars())


def earliest(dates: list[date | None]) -> date | None:
    """The first day anything is live: None when some county has no date (or none known)."""
    if not dates or any(d is None for d in dates):
        return None
    return min(d for d in dates if d is not None)


async def ensure_live_week(session: AsyncSession, monday: date, week: str) -> None:
    """409 `before_go_live` for a week that ends before the go-live of every county."""
    start = earliest(await counties(session))
    if start is not None and monday + timedelta(days=6) < start:
        raise Conflict(
            f"{week} ends before assessment starts on {start.isoformat()}",
            code="before_go_live",
            assessment_start_date=start.isoformat(),
        )


async def scheduler_may_close(session: AsyncSession, monday: date) -> bool:
    """The scheduler closes a week only once a county is known and the week ends on or
    after the earliest go-live."""
    dates = await counties(session)
    start = earliest(dates)
    return bool(dates) and (start is None or monday + timedelta(days=6) >= start)
