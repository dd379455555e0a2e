"""Policy versions: read them, add one (overlap → 409), and seed the defaults on start."""

import json
from datetime import date, datetime, timedelta
from uuid import UUID, uuid4

from sqlalchemy import or_, select
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
from shared.errors import Conflict, InvalidInput, NotFound
from shared.outbox import add_event
from shared.pagination import PageParams, make_page

PRODUCER = "incentives"
SEEDED_AT = datetime.fromisoformat("2018-01-01T00:00:00+08:00")


def wire(row) -> dict:
    return {
        "id": str(row.id),
        "version": row.version,
        "kind": row.kind,
        "effective_from": row.effective_from.isoformat(),
        "effective_to": row.effective_to.isoformat() if row.effective_to else None,
        "amounts": json.loads(row.amounts),
        "params": json.loads(row.params),
        "note": row.note,
        "created_at": row.created_at.isoformat(),
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
            }
        )
    await session.execute(insert_ignore(session, policy_versions, index=["version"]), rows)
    await session.execute(
        insert_ignore(session, batch_guard, index=["id"]), [{"id": 1, "generation": 0}]
    )


async def list_policies(
    session: AsyncSession, *, kind: str | None, on: date | None, page: PageParams
) -> dict:
    """Versions ordered by version label; `on` keeps those in force that day."""
    q = select(policy_versions).order_by(policy_versions.c.version).limit(page.limit + 1)
    if kind:
        q = q.where(policy_versions.c.kind == kind)
    if on:
        q = q.where(
            policy_versions.c.effective_from <= on,
            or_(policy_versions.c.effective_to.is_(None), policy_versions.c.effective_to >= on),
        )
    after = page.after()
    if after:
        q = q.where(policy_versions.c.version > str(after[0]))
    rows = (await session.execute(q)).all()
    out = make_page(rows, page, lambda r: [r.version])
    out["items"] = [wire(r) for r in out["items"]]
    return out


async def get_policy(session: AsyncSession, version: str) -> dict:
    row = (
        await session.execute(select(policy_versions).where(policy_versions.c.version == version))
    ).one_or_none()
    if row is None:
        raise NotFound(f"no policy version {version}")
    return wire(row)


async def add_policy(
    session: AsyncSession,
    *,
    kind: PolicyKind,
    effective_from: date,
    effective_to: date | None,
    amounts: dict,
    params: dict,
    note: str,
    user_id: UUID,
    now: datetime,
) -> dict:
    """Add a version of a kind.

    Month-granular: from the 1st of a month, to the last day of one (or open). It may not
    overlap another version of its kind (409 policy_overlap), except that an open-ended
    version starting earlier is superseded: it ends the day before the new one starts.
    What it changes in months already stored or batched is recomputed now (a locked
    month's difference then becomes an adjustment in the next open batch).
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
    same = (
        await session.execute(select(policy_versions).where(policy_versions.c.kind == kind))
    ).all()
    end = effective_to or date.max
    superseded = None
    for old in same:
        old_end = old.effective_to or date.max
        if old.effective_from <= end and effective_from <= old_end:
            if (
                old.effective_to is None
                and old.effective_from < effective_from
                and superseded is None
            ):
                superseded = old
                continue
            raise Conflict(
                f"{kind} {old.version} is in force over part of that period",
                code="policy_overlap",
                conflicting_version=old.version,
            )
    if superseded is not None:
        await session.execute(
            policy_versions.update()
            .where(policy_versions.c.id == superseded.id)
            .values(
                effective_to=effective_from - timedelta(days=1),
                entity_version=policy_versions.c.entity_version + 1,
            )
        )
    new_id = uuid4()
    label = version_label(kind, effective_from)
    await session.execute(
        policy_versions.insert().values(
            id=new_id,
            version=label,
            kind=kind.value,
            effective_from=effective_from,
            effective_to=effective_to,
            amounts=json.dumps(clean_amounts, sort_keys=True),
            params=json.dumps(clean_params, sort_keys=True),
            note=note,
            created_at=now,
            created_by=user_id,
        )
    )
    await add_event(
        session,
        PolicyAdded(
            version=label,
            kind=kind.value,
            effective_from=effective_from.isoformat(),
            effective_to=effective_to.isoformat() if effective_to else None,
            entity_version=1,  # a new policy version; superseding one bumps the old
        ),
        key=kind.value,
        producer=PRODUCER,
        occurred_at=now,
    )
    await _recompute_months(session, effective_from, end, now=now)
    return await get_policy(session, label)


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
