"""Events as registry and assessment would publish them, and small API helpers."""

import uuid
from datetime import date

from shared.clock import format_week
from shared.contracts.assessment import (
    AccountabilityCancelled,
    AccountabilityCarriedOut,
    AccountabilityOpened,
    MonthlyScorePublished,
    NegativeEntryRecorded,
    NegativeEntryRevoked,
    PresenceJudged,
)
from shared.contracts.enums import Role
from shared.contracts.registry import (
    CadreUpserted,
    HonorAwarded,
    HonorRevoked,
    PostingEnded,
    PostingOpened,
    UnitUpserted,
)
from shared.events import encode, envelope_for
from shared.transport import Record
from tests.support import next_version

BASE = "/incentives/v1"


def new_id() -> uuid.UUID:
    return uuid.uuid4()


async def emit(system, payload, key) -> str:
    """Emit and return the envelope's event_id (what eligibility items point at)."""
    env = envelope_for(payload, key=key, producer="test", occurred_at=system.clock.now())
    await system.app.state.transport.publish([Record(env.topic, env.key, encode(env))])
    await system.settle()
    return str(env.event_id)


async def unit_tree(system) -> dict[str, uuid.UUID]:
    """county > two townships > a village in each > a group under the first village."""
    ids = {k: new_id() for k in ("county", "town_a", "town_b", "village_a", "village_b", "group_a")}
    tree = [
        ("county", "county", None, []),
        ("town_a", "township", "county", ["county"]),
        ("town_b", "township", "county", ["county"]),
        ("village_a", "village", "town_a", ["county", "town_a"]),
        ("village_b", "village", "town_b", ["county", "town_b"]),
        ("group_a", "group", "village_a", ["county", "town_a", "village_a"]),
    ]
    for name, kind, parent, ancestors in tree:
        await emit(
            system,
            UnitUpserted(
                unit_id=ids[name],
                code=name,
                name=name.replace("_", " ").title(),
                kind=kind,
                parent_id=ids[parent] if parent else None,
                ancestors=[ids[a] for a in ancestors],
                entity_version=next_version(),
            ),
            ids[name],
        )
    return ids


async def cadre(
    system,
    *,
    name: str = "Wei Kongcheng",
    category: str = "resident_cadre",
    position: str | None = None,
    effective_date: date = date(2026, 1, 1),
    cadre_id: uuid.UUID | None = None,
    active: bool = True,
    unit_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, str]:
    cadre_id = cadre_id or new_id()
    event_id = await emit(
        system,
        CadreUpserted(
            cadre_id=cadre_id,
            name=name,
            category=category,
            position=position,
            active=active,
            effective_date=effective_date,
            unit_id=unit_id,
            entity_version=next_version(),
        ),
        cadre_id,
    )
    return cadre_id, event_id


async def posting(
    system,
    cadre_id: uuid.UUID,
    unit_id: uuid.UUID,
    *,
    start: date,
    end: date | None = None,
    role: str = "member",
    posting_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, str]:
    posting_id = posting_id or new_id()
    event_id = await emit(
        system,
        PostingOpened(
            posting_id=posting_id,
            cadre_id=cadre_id,
            unit_id=unit_id,
            role=role,
            start_date=start,
            end_date=end,
            entity_version=next_version(),
        ),
        cadre_id,
    )
    return posting_id, event_id


async def end_posting(
    system, posting_id, cadre_id, unit_id, *, start: date, end: date, role: str = "member"
) -> str:
    return await emit(
        system,
        PostingEnded(
            posting_id=posting_id,
            cadre_id=cadre_id,
            unit_id=unit_id,
            role=role,
            start_date=start,
            end_date=end,
            reason="completed",
            entity_version=next_version(),
        ),
        cadre_id,
    )


def honor_event(cls, honor_id, cadre_id, *, level, year, title="Excellent", version=None):
    return cls(
        honor_id=honor_id,
        cadre_id=cadre_id,
        level=level,
        year=year,
        title=title,
        entity_version=version or next_version(),
    )


async def honor(system, cadre_id, *, level: str, year: int, title: str = "Excellent") -> tuple:
    honor_id = new_id()
    payload = honor_event(HonorAwarded, honor_id, cadre_id, level=level, year=year, title=title)
    return honor_id, await emit(system, payload, cadre_id)


async def revoke_honor(system, cadre_id, honor_id, *, level: str, year: int) -> str:
    payload = honor_event(HonorRevoked, honor_id, cadre_id, level=level, year=year)
    return await emit(system, payload, cadre_id)


async def verdict(system, cadre_id, *, sunday: date, compliant: bool, days=3, nights=2) -> str:
    return await emit(
        system,
        PresenceJudged(
            cadre_id=cadre_id,
            week=format_week(sunday),
            week_sunday=sunday,
            days=days,
            nights=nights,
            leave_days=0,
            compliant=compliant,
            entity_version=next_version(),
        ),
        cadre_id,
    )


def _entry(cls, entry_id, cadre_id, day: date, status: str, reason: str):
    return cls(
        entry_id=entry_id,
        subject_type="cadre",
        subject_id=cadre_id,
        reason=reason,
        date=day,
        month=f"{day.year:04d}-{day.month:02d}",
        status=status,
        entity_version=next_version(),
    )


async def entry(system, cadre_id, *, day: date, reason: str = "finding", entry_id=None) -> tuple:
    entry_id = entry_id or new_id()
    event_id = await emit(
        system, _entry(NegativeEntryRecorded, entry_id, cadre_id, day, "active", reason), cadre_id
    )
    return entry_id, event_id


async def revoke_entry(system, cadre_id, entry_id, *, day: date, reason: str = "finding") -> str:
    return await emit(
        system, _entry(NegativeEntryRevoked, entry_id, cadre_id, day, "revoked", reason), cadre_id
    )


ACTION_EVENTS = {
    "pending": AccountabilityOpened,
    "carried_out": AccountabilityCarriedOut,
    "cancelled": AccountabilityCancelled,
}


async def action(
    system,
    cadre_id,
    entry_id,
    *,
    day: date,
    rung: str,
    count: int,
    status: str = "pending",
    action_id=None,
    measure: str | None = None,
) -> tuple:
    action_id = action_id or new_id()
    event_id = await emit(
        system,
        ACTION_EVENTS[status](
            action_id=action_id,
            cadre_id=cadre_id,
            entry_id=entry_id,
            entry_date=day,
            rung=rung,
            count=count,
            status=status,
            measure=measure,
            entity_version=next_version(),
        ),
        cadre_id,
    )
    return action_id, event_id


async def score(system, cadre_id, *, month: str, score: str, rank: int, township_id=None) -> str:
    return await emit(
        system,
        MonthlyScorePublished(
            cadre_id=cadre_id,
            month=month,
            township_id=township_id,
            score=score,
            rank=rank,
            entity_version=next_version(),
        ),
        cadre_id,
    )


async def eligibility(system, cadre_id, month: str, *roles, **kw) -> dict:
    r = await system.client.get(
        f"{BASE}/eligibility/{cadre_id}",
        params={"month": month},
        headers=system.headers(*(roles or (Role.finance,)), **kw),
    )
    assert r.status_code == 200, r.text
    return r.json()


def finance(system) -> dict:
    return system.headers(Role.finance)


async def enact(system, body: dict, role: Role = Role.finance):
    """A policy version in force: proposed by one user, approved by another (four eyes).
    Returns the approve call's response."""
    r = await system.client.post(
        f"{BASE}/policies", json=body, headers=system.headers(role, username="proposer")
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "proposed"
    return await system.client.post(
        f"{BASE}/policies/{r.json()['id']}/approve",
        headers=system.headers(role, username="approver"),
    )


async def county(system) -> dict:
    """A small county for batches (clock: 25 November 2026):

    - a: member in village_a (town_a) since January: 2,000.00 a month
    - b: team leader in group_a (town_a) from 10 November: 1,400.00 in November
    - c: village party secretary, no posting (no township): 3,000.00
    - d: member in village_b (town_b), a study class in November: 2,000.00 - 200.00
    - e: commander of town_b: nothing
    """
    units = await unit_tree(system)
    ids = {}
    ids["a"], _ = await cadre(system, name="An")
    await posting(system, ids["a"], units["village_a"], start=date(2026, 1, 1))
    ids["b"], _ = await cadre(system, name="Bo")
    await posting(system, ids["b"], units["group_a"], start=date(2026, 11, 10), role="team_leader")
    ids["c"], _ = await cadre(
        system, name="Chen", category="village_cadre", position="party_secretary"
    )
    ids["d"], _ = await cadre(system, name="Du")
    await posting(system, ids["d"], units["village_b"], start=date(2026, 1, 1))
    entry_id, _ = await entry(system, ids["d"], day=date(2026, 11, 3))
    await action(system, ids["d"], entry_id, day=date(2026, 11, 3), rung="study_class", count=1)
    ids["e"], _ = await cadre(system, name="E", category="county_leader")
    await posting(system, ids["e"], units["town_b"], start=date(2026, 1, 1), role="commander")
    return {"units": units, "cadres": ids}


async def build(system, month: str) -> dict:
    r = await system.client.post(
        f"{BASE}/stipend-batches", json={"month": month}, headers=finance(system)
    )
    assert r.status_code == 201, r.text
    return r.json()


async def lines_of(system, batch_id, **params) -> list[dict]:
    r = await system.client.get(
        f"{BASE}/stipend-batches/{batch_id}/lines", params=params, headers=finance(system)
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]
