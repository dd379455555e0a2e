"""Policy versions: read them, propose one, approve or refuse it, and seed the defaults.

Four eyes (DESIGN §8): a new version is `proposed` by one user and takes effect only when
`approved` by a different one (403 `same_user`); eligibility and batches read approved
versions only. A proposal is `rejected` by another user or `withdrawn` by its proposer;
deciding anything but a proposal is 409 `not_proposed`. Who may do which is the route's
(services/incentives/api.py); the seeded defaults count as approved.
"""

import json
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.incentives.models import batch_guard, batches, eligibility, policy_versions
from services.incentives.policies import DEFAULTS, SEED_FROM, PolicyKind, validate, version_label
from services.incentives.rules import compute
from services.incentives.service import eligibility as eligibility_service
from services.incentives.service.facts import load_book, load_facts
from services.incentives.service.lines import exclusive_guard, sync
from shared.clock import format_month, month_end, parse_month
from shared.contracts.incentives import PolicyAdded
from shared.db import insert_ignore
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.outbox import add_event
from shared.pagination import PageParams, make_page

PRODUCER = "incentives"
SEEDED_AT = datetime.fromisoformat("2018-01-01T00:00:00+08:00")
PROPOSED, APPROVED, REJECTED, WITHDRAWN = "proposed", "approved", "rejected", "withdrawn"
LIVE = (PROPOSED, APPROVED)


def _user(user_id, name: str) -> dict | None:
    if user_id is None and not name:
        return None  # the system: the seeded defaults, versions from before four eyes
    return {"id": str(user_id) if user_id else None, "username": name or None}


def _iso(moment: datetime | None) -> str | None:
    """UTC with its offset on both backends (SQLite hands back naive datetimes)."""
    if moment is None:
        return None
    return (
        moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    ).isoformat()


def wire(row) -> dict:
    decided = _iso(row.decided_at)
    approved = row.status == APPROVED
    refused = row.status in (REJECTED, WITHDRAWN)
    return {
        "id": str(row.id),
        "version": row.version,
        "kind": row.kind,
        "effective_from": row.effective_from.isoformat(),
        "effective_to": row.effective_to.isoformat() if row.effective_to else None,
        "amounts": json.loads(row.amounts),
        "params": json.loads(row.params),
        "note": row.note,
        "created_at": _iso(row.created_at),
        "status": row.status,
        # created_by is None for the seeded defaults: proposed and approved by the system.
        "proposed_by": _user(row.created_by, row.proposed_by_name),
        "proposed_at": _iso(row.created_at),
        "approved_by": _user(row.decided_by, row.decided_by_name) if approved else None,
        "approved_at": decided if approved else None,
        "rejected_by": _user(row.decided_by, row.decided_by_name) if refused else None,
        "rejected_at": decided if refused else None,
        "decision_note": row.decision_note,
    }


async def seed_defaults(session: AsyncSession) -> None:
    """Idempotent: inserts each default version (and the batch guard row) once."""
    rows = []
    for d in DEFAULTS:
        amounts, params = validate(d["kind"], d["amounts"], d["params"])
        rows.append(
            {
                "id": uuid4(),
                "version": version_label(d["kind"], SEED_FROM),
                "kind": d["kind"].value,
                "effective_from": SEED_FROM,
                "effective_to": None,
                "amounts": json.dumps(amounts, sort_keys=True),
                "params": json.dumps(params, sort_keys=True),
                "note": d["note"],
                "created_at": SEEDED_AT,
                "created_by": None,
                "live_version": version_label(d["kind"], SEED_FROM),
                "status": APPROVED,
                "decided_at": SEEDED_AT,
            }
        )
    await session.execute(insert_ignore(session, policy_versions, index=["live_version"]), rows)
    await session.execute(
        insert_ignore(session, batch_guard, index=["id"]), [{"id": 1, "generation": 0}]
    )


async def list_policies(
    session: AsyncSession,
    *,
    kind: str | None,
    on: date | None,
    page: PageParams,
    status: str | None = None,
) -> dict:
    """Versions ordered by label (then id); `on` keeps the approved ones in force that day."""
    c = policy_versions.c
    q = select(policy_versions).order_by(c.version, c.id).limit(page.limit + 1)
    if kind:
        q = q.where(c.kind == kind)
    if status:
        q = q.where(c.status == status)
    if on:
        q = q.where(
            c.status == APPROVED,
            policy_versions.c.effective_from <= on,
            or_(policy_versions.c.effective_to.is_(None), policy_versions.c.effective_to >= on),
        )
    after = page.after()
    if after:
        if len(after) != 2:
            raise InvalidInput("cursor", "not a cursor this list issued")
        label, after_id = str(after[0]), str(after[1])
        q = q.where(or_(c.version > label, and_(c.version == label, c.id > _uuid(after_id))))
    rows = (await session.execute(q)).all()
    out = make_page(rows, page, lambda r: [r.version, str(r.id)])
    out["items"] = [wire(r) for r in out["items"]]
    return out


def _uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError as exc:
        raise InvalidInput("cursor", "not a cursor this list issued") from exc


async def _find(session: AsyncSession, ref: str, *, lock: bool = False):
    """A version by id, or by label: the live one, else the latest refused one."""
    c = policy_versions.c
    try:
        q = select(policy_versions).where(c.id == UUID(ref))
    except ValueError:
        q = (
            select(policy_versions)
            .where(c.version == ref)
            .order_by(c.live_version.is_(None), c.created_at.desc(), c.id)
            .limit(1)
        )
    if lock:
        q = q.with_for_update()
    row = (await session.execute(q)).first()
    if row is None:
        raise NotFound(f"no policy version {ref}")
    return row


async def get_policy(session: AsyncSession, version: str) -> dict:
    """One version by its label (e.g. posted_subsidy@2018-01-01) or its id."""
    return wire(await _find(session, version))


def _overlap(kind: str, rows, effective_from: date, effective_to: date | None):
    """The open-ended approved version the new one would supersede (None if none), or 409
    naming a version in force (or proposed) over part of its period."""
    end = effective_to or date.max
    superseded = None
    for old in rows:
        old_end = old.effective_to or date.max
        if old.effective_from <= end and effective_from <= old_end:
            if (
                old.status == APPROVED
                and old.effective_to is None
                and old.effective_from < effective_from
                and superseded is None
            ):
                superseded = old
                continue
            raise Conflict(
                f"{kind} {old.version} is {old.status} over part of that period",
                code="policy_overlap",
                conflicting_version=old.version,
            )
    return superseded


async def propose_policy(
    session: AsyncSession,
    *,
    kind: PolicyKind,
    effective_from: date,
    effective_to: date | None,
    amounts: dict,
    params: dict,
    note: str,
    user_id: UUID,
    username: str,
    now: datetime,
) -> dict:
    """Propose a version of a kind; it takes effect when another user approves it.

    Month-granular: from the 1st of a month, to the last day of one (or open). It may not
    overlap another live (approved or proposed) version of its kind (409 policy_overlap),
    except that an open-ended approved version starting earlier will be superseded (on
    approval it ends the day before the new one starts).
    """
    if effective_from.day != 1:
        raise InvalidInput("effective_from", "a version starts on the 1st of a month")
    if effective_to is not None:
        if effective_to != month_end(effective_to.replace(day=1)):
            raise InvalidInput("effective_to", "a version ends on the last day of a month")
        if effective_to < effective_from:
            raise InvalidInput("effective_to", "ends before it starts")
    clean_amounts, clean_params = validate(kind, amounts, params)
    await exclusive_guard(session)
    c = policy_versions.c
    live = (
        await session.execute(select(policy_versions).where(c.kind == kind, c.status.in_(LIVE)))
    ).all()
    _overlap(kind, live, effective_from, effective_to)
    new_id = uuid4()
    label = version_label(kind, effective_from)
    await session.execute(
        policy_versions.insert().values(
            id=new_id,
            version=label,
            live_version=label,
            status=PROPOSED,
            kind=kind.value,
            effective_from=effective_from,
            effective_to=effective_to,
            amounts=json.dumps(clean_amounts, sort_keys=True),
            params=json.dumps(clean_params, sort_keys=True),
            note=note,
            created_at=now,
            created_by=user_id,
            proposed_by_name=username,
        )
    )
    return await get_policy(session, str(new_id))


async def _proposal(session: AsyncSession, ref: str):
    row = await _find(session, ref, lock=True)
    if row.status != PROPOSED:
        raise Conflict(
            f"{row.version} is {row.status}, not proposed", code="not_proposed", status=row.status
        )
    return row


async def approve_policy(
    session: AsyncSession, ref: str, *, user_id: UUID, username: str, now: datetime
) -> dict:
    """Approve a proposal (another user than its proposer, 403 same_user): it takes effect.

    An open-ended version it supersedes ends the day before it starts; what it changes in
    months already stored or batched is recomputed now (a locked month's difference then
    becomes an adjustment in the next open batch).
    """
    await exclusive_guard(session)
    row = await _proposal(session, ref)
    if row.created_by == user_id:
        raise Forbidden("a second user approves a policy version", code="same_user")
    c = policy_versions.c
    approved = (
        await session.execute(
            select(policy_versions).where(c.kind == row.kind, c.status == APPROVED)
        )
    ).all()
    superseded = _overlap(row.kind, approved, row.effective_from, row.effective_to)
    if superseded is not None:
        await session.execute(
            policy_versions.update()
            .where(c.id == superseded.id)
            .values(
                effective_to=row.effective_from - timedelta(days=1),
                entity_version=c.entity_version + 1,
            )
        )
    await session.execute(
        policy_versions.update()
        .where(c.id == row.id)
        .values(
            status=APPROVED,
            decided_by=user_id,
            decided_by_name=username,
            decided_at=now,
            entity_version=c.entity_version + 1,
        )
    )
    await add_event(
        session,
        PolicyAdded(
            version=row.version,
            kind=row.kind,
            effective_from=row.effective_from.isoformat(),
            effective_to=row.effective_to.isoformat() if row.effective_to else None,
            entity_version=row.entity_version + 1,
        ),
        key=row.kind,
        producer=PRODUCER,
        occurred_at=now,
    )
    end = row.effective_to or date.max
    await _recompute_months(session, row.effective_from, end, now=now)
    return await get_policy(session, str(row.id))


async def reject_policy(
    session: AsyncSession, ref: str, *, user_id: UUID, username: str, note: str, now: datetime
) -> dict:
    """Refuse a proposal: `withdrawn` by its proposer, `rejected` by anyone else allowed.
    It frees its label, so the month can be proposed again."""
    row = await _proposal(session, ref)
    c = policy_versions.c
    await session.execute(
        policy_versions.update()
        .where(c.id == row.id)
        .values(
            status=WITHDRAWN if row.created_by == user_id else REJECTED,
            live_version=None,
            decided_by=user_id,
            decided_by_name=username,
            decided_at=now,
            decision_note=note,
            entity_version=c.entity_version + 1,
        )
    )
    return await get_policy(session, str(row.id))


async def _recompute_months(
    session: AsyncSession, since: date, until: date, *, now: datetime
) -> None:
    """Recompute every stored eligibility of the months a new version touches (up to now)."""
    if until < since:
        return
    lo, hi = format_month(since), format_month(until)
    months = set(
        (
            await session.execute(
                select(eligibility.c.month).where(eligibility.c.month.between(lo, hi)).distinct()
            )
        ).scalars()
    )
    months |= set(
        (
            await session.execute(select(batches.c.month).where(batches.c.month.between(lo, hi)))
        ).scalars()
    )
    book = await load_book(session)
    for month in sorted(months):
        first = parse_month(month)
        ids = list(
            (
                await session.execute(
                    select(eligibility.c.cadre_id).where(eligibility.c.month == month)
                )
            ).scalars()
        )
        facts = await load_facts(session, ids, first=first, last=month_end(first))
        results = [compute(facts[c], first, book) for c in ids]
        await eligibility_service.store(session, results, now=now)
        await sync(session, results, facts)
