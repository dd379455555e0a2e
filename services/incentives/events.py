"""What incentives consumes: registry and assessment events become local projections, and
every event that can change what a cadre is due recomputes that cadre's affected months.

Events are state-carrying: each upserts its record by id, and only when its entity version
is newer than the one applied (shared.versions), so whatever the order of delivery (a
redelivery, a DLQ replay) the newest version wins and eligibility is recomputed from that.
Each projection row keeps the envelope's event id and type: that is the `source` a stipend
item points at.
"""

from datetime import date

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.incentives.models import (
    actions,
    cadre_states,
    cadres,
    entries,
    honors,
    postings,
    scores,
    unit_ancestors,
    units,
    verdicts,
)
from services.incentives.service import lines as line_service
from services.incentives.service.eligibility import refresh_cadre
from shared.contracts.assessment import (
    AccountabilityCancelled,
    AccountabilityCarriedOut,
    AccountabilityOpened,
    MonthlyScorePublished,
    NegativeEntryRecorded,
    NegativeEntryRevoked,
    PresenceJudged,
)
from shared.contracts.enums import SubjectType
from shared.contracts.registry import (
    CadreUpserted,
    HonorAwarded,
    HonorRevoked,
    PostingEnded,
    PostingOpened,
    UnitUpserted,
)
from shared.db import upsert
from shared.events import Envelope
from shared.inbox import Handlers
from shared.versions import advance

handlers = Handlers()


def _src(env: Envelope) -> dict:
    return {"event_id": str(env.event_id), "event_type": env.type}


async def _put(session: AsyncSession, table, keys: list[str], row: dict) -> None:
    cols = [c for c in row if c not in keys]
    await session.execute(upsert(session, table, keys, cols), row)


@handlers.on(UnitUpserted)
async def on_unit(session: AsyncSession, p: UnitUpserted, env: Envelope) -> None:
    if not await advance(session, "unit", p.unit_id, p.entity_version):
        return
    old_name = (
        await session.execute(select(units.c.name).where(units.c.unit_id == p.unit_id))
    ).scalar_one_or_none()
    row = {"unit_id": p.unit_id, "name": p.name, "kind": p.kind, "parent_id": p.parent_id}
    await _put(session, units, ["unit_id"], row | _src(env))
    await session.execute(delete(unit_ancestors).where(unit_ancestors.c.unit_id == p.unit_id))
    chain = [*p.ancestors, p.unit_id]
    await session.execute(
        unit_ancestors.insert(),
        [
            {"unit_id": p.unit_id, "ancestor_id": a, "depth": len(chain) - 1 - i}
            for i, a in enumerate(chain)
        ],
    )
    await line_service.refile_draft_lines(session, unit_id=p.unit_id)
    if old_name != p.name:
        await _rename_in_reasons(session, p.unit_id)


async def _rename_in_reasons(session: AsyncSession, unit_id) -> None:
    """Eligibility reasons name the units of postings and home units: a unit named or
    renamed recomputes the months of the cadres it names, so any order converges."""
    posted = await session.execute(
        select(postings.c.cadre_id, func.min(postings.c.start_date))
        .where(postings.c.unit_id == unit_id)
        .group_by(postings.c.cadre_id)
    )
    since = {r[0]: r[1] for r in posted}
    homed = await session.execute(
        select(cadre_states.c.cadre_id, func.min(cadre_states.c.effective_date))
        .join(cadres, cadres.c.cadre_id == cadre_states.c.cadre_id)
        .where(cadres.c.unit_id == unit_id)
        .group_by(cadre_states.c.cadre_id)
    )
    for cadre_id, day in homed:
        since[cadre_id] = min(day, since.get(cadre_id, day))
    for cadre_id in sorted(since, key=str):
        await refresh_cadre(session, cadre_id, since=since[cadre_id])


@handlers.on(CadreUpserted)
async def on_cadre(session: AsyncSession, p: CadreUpserted, env: Envelope) -> None:
    """Name and home unit are the newest version's word; the state in force from a date is
    the newest version said about that date (an older version about another date still
    adds its day to the history); the current state is the one with the latest date."""
    newest = await advance(session, "cadre", p.cadre_id, p.entity_version)
    dated = await advance(
        session, "cadre_state", f"{p.cadre_id}@{p.effective_date}", p.entity_version
    )
    if not (newest or dated):
        return
    state = {"category": p.category, "position": p.position, "active": p.active}
    home_before = (
        await session.execute(select(cadres.c.unit_id).where(cadres.c.cadre_id == p.cadre_id))
    ).scalar_one_or_none()
    if dated:
        key = {"cadre_id": p.cadre_id, "effective_date": p.effective_date}
        await _put(session, cadre_states, ["cadre_id", "effective_date"], key | state | _src(env))
    since = p.effective_date
    if newest:
        held = await session.scalar(
            select(cadres.c.position_since).where(cadres.c.cadre_id == p.cadre_id)
        )
        # Moving position_since either way changes pay from the earlier of the two dates.
        since = min(d for d in (since, held, p.position_since) if d is not None)
        row = {
            "cadre_id": p.cadre_id,
            "name": p.name,
            "unit_id": p.unit_id,
            "position_since": p.position_since,
            "held_position": p.position,
            "id_card_no_enc": p.id_card_no_enc,
            "bank_name": p.bank_name,
            "bank_account_enc": p.bank_account_enc,
        }
        placeholder = {"effective_date": p.effective_date} | state | _src(env)
        await _put(session, cadres, ["cadre_id"], row | placeholder)
    top = (
        await session.execute(
            select(cadre_states)
            .where(cadre_states.c.cadre_id == p.cadre_id)
            .order_by(cadre_states.c.effective_date.desc())
            .limit(1)
        )
    ).one()
    await session.execute(
        cadres.update()
        .where(cadres.c.cadre_id == p.cadre_id)
        .values(
            category=top.category,
            position=top.position,
            active=top.active,
            effective_date=top.effective_date,
            event_id=top.event_id,
            event_type=top.event_type,
        )
    )
    if newest and home_before != p.unit_id:
        # reasons name the home unit in every month: recompute them all
        first = await session.execute(
            select(func.min(cadre_states.c.effective_date)).where(
                cadre_states.c.cadre_id == p.cadre_id
            )
        )
        since = min(since, first.scalar_one() or since)
    await refresh_cadre(session, p.cadre_id, since=since)


@handlers.on(PostingOpened, PostingEnded)
async def on_posting(session: AsyncSession, p: PostingOpened | PostingEnded, env: Envelope) -> None:
    # An "opened" older than the end already applied (a replay) is skipped: no re-opening.
    if not await advance(session, "posting", p.posting_id, p.entity_version):
        return
    old = (
        await session.execute(
            select(postings.c.start_date, postings.c.end_date).where(
                postings.c.posting_id == p.posting_id
            )
        )
    ).one_or_none()
    row = {
        "posting_id": p.posting_id,
        "cadre_id": p.cadre_id,
        "unit_id": p.unit_id,
        "role": p.role,
        "start_date": p.start_date,
        "end_date": p.end_date,
    }
    await _put(session, postings, ["posting_id"], row | _src(env))
    # Every month the posting covered before or covers now; an open end reaches this
    # month (refresh_cadre adds any later month already stored or batched).
    spans = [(p.start_date, p.end_date)] + ([(old.start_date, old.end_date)] if old else [])
    since = min(start for start, _ in spans)
    until = None if any(end is None for _, end in spans) else max(end for _, end in spans)
    await refresh_cadre(session, p.cadre_id, since=since, until=until)


@handlers.on(HonorAwarded, HonorRevoked)
async def on_honor(session: AsyncSession, p: HonorAwarded | HonorRevoked, env: Envelope) -> None:
    """A revocation carries the honor's whole state: arriving before its award (or an award
    replayed after it), it is kept, and the older award is skipped."""
    if not await advance(session, "honor", p.honor_id, p.entity_version):
        return
    row = {
        "honor_id": p.honor_id,
        "cadre_id": p.cadre_id,
        "level": p.level,
        "year": p.year,
        "title": p.title,
        "revoked": isinstance(p, HonorRevoked),
    }
    await _put(session, honors, ["honor_id"], row | _src(env))
    await refresh_cadre(session, p.cadre_id, since=date(p.year, 1, 1))


@handlers.on(PresenceJudged)
async def on_presence(session: AsyncSession, p: PresenceJudged, env: Envelope) -> None:
    if not await advance(session, "presence_week", f"{p.cadre_id}@{p.week}", p.entity_version):
        return
    row = {
        "cadre_id": p.cadre_id,
        "week": p.week,
        "week_sunday": p.week_sunday,
        "compliant": p.compliant,
        "days": p.days,
        "nights": p.nights,
        "leave_days": p.leave_days,
    }
    await _put(session, verdicts, ["cadre_id", "week"], row | _src(env))
    await refresh_cadre(session, p.cadre_id, since=p.week_sunday, until=p.week_sunday)


@handlers.on(NegativeEntryRecorded, NegativeEntryRevoked)
async def on_entry(
    session: AsyncSession, p: NegativeEntryRecorded | NegativeEntryRevoked, env: Envelope
) -> None:
    # A "recorded" replayed after the revocation is older: the entry stays revoked.
    if not await advance(session, "negative_entry", p.entry_id, p.entity_version):
        return
    row = {
        "entry_id": p.entry_id,
        "subject_type": p.subject_type,
        "subject_id": p.subject_id,
        "reason": p.reason,
        "entry_date": p.date,
        "status": p.status,
    }
    await _put(session, entries, ["entry_id"], row | _src(env))
    if p.subject_type == SubjectType.cadre:
        await refresh_cadre(session, p.subject_id, since=p.date, until=p.date)


@handlers.on(AccountabilityOpened, AccountabilityCarriedOut, AccountabilityCancelled)
async def on_action(
    session: AsyncSession,
    p: AccountabilityOpened | AccountabilityCarriedOut | AccountabilityCancelled,
    env: Envelope,
) -> None:
    if not await advance(session, "action", p.action_id, p.entity_version):
        return
    row = {
        "action_id": p.action_id,
        "cadre_id": p.cadre_id,
        "entry_id": p.entry_id,
        "entry_date": p.entry_date,
        "rung": p.rung,
        "count": p.count,
        "status": p.status,
        "measure": p.measure,
    }
    await _put(session, actions, ["action_id"], row | _src(env))
    await refresh_cadre(session, p.cadre_id, since=p.entry_date, until=p.entry_date)


@handlers.on(MonthlyScorePublished)
async def on_score(session: AsyncSession, p: MonthlyScorePublished, env: Envelope) -> None:
    if not await advance(session, "monthly_score", f"{p.cadre_id}@{p.month}", p.entity_version):
        return
    if p.rank is None or p.score is None:  # not ranked that month: no rank to promote on
        await session.execute(
            delete(scores).where(scores.c.cadre_id == p.cadre_id, scores.c.month == p.month)
        )
        return
    row = {
        "cadre_id": p.cadre_id,
        "month": p.month,
        "township_id": p.township_id,
        "score": p.score,
        "rank": p.rank,
    }
    await _put(session, scores, ["cadre_id", "month"], row | _src(env))
