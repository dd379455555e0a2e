"""The accountability ladder follows the violations' dates, not their arrival (issue 13,
finding 5): back-fills and revocations re-sequence it with compensating events, a
carried-out action is never undone, and incentives' deductions converge."""

import asyncio
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select, text

from services.assessment.service.common import ACTIONS, ENTRIES
from services.assessment.service.entries import (
    LADDER_LOCK,
    NewEntry,
    record_entries,
    revoke_entries,
    rung_for,
)
from shared.contracts.enums import EntryReason, Role, SubjectType
from tests.assessment import factories as f
from tests.assessment.test_presence import RELAY
from tests.orderings import PROPERTY


@pytest.fixture
def services() -> list[str]:
    return ["assessment", "incentives"]


@pytest.fixture
async def t(system):
    return await f.tree(system)


def live(actions):
    return sorted(
        (a["entry_date"], a["rung"], a["count"], a["status"])
        for a in actions
        if a["status"] != "cancelled"
    )


async def test_finding_5_a_back_fill_puts_the_penalty_on_the_latest_violation(system, t):
    c = await f.posted_cadre(system, t.village)
    # An inspector back-fills the month's findings, newest first.
    for day in (24, 23, 22):
        await f.finding(system, c, f.local(2026, 11, day, 10))
    assert live(await f.actions(system, cadre_id=c)) == [
        ("2026-11-22", "study_class", 1, "pending"),
        ("2026-11-23", "admonition_talk", 2, "pending"),
        ("2026-11-24", "penalty", 3, "pending"),
    ]
    cancelled = await f.actions(system, cadre_id=c, status="cancelled")
    assert sorted((a["entry_date"], a["rung"]) for a in cancelled) == [
        ("2026-11-23", "study_class"),  # was the first to arrive, now the second by date
        ("2026-11-24", "admonition_talk"),
        ("2026-11-24", "study_class"),
    ]
    assert all(a["note"].startswith("re-sequenced by date") for a in cancelled)
    # Incentives follows the events: one deduction per live action, none doubled.
    assert await deductions(system, c) == [
        ("admonition_talk", Decimal("500.00")),
        ("penalty", Decimal("1000.00")),
        ("study_class", Decimal("200.00")),
    ]


async def test_revoking_an_entry_moves_the_later_ones_down(system, t):
    c = await f.posted_cadre(system, t.village)
    first, *_ = [await f.finding(system, c, f.local(2026, 11, day, 10)) for day in (2, 3, 4)]
    assert (await f.dismiss(system, first["id"])).status_code == 200
    assert live(await f.actions(system, cadre_id=c)) == [
        ("2026-11-03", "study_class", 1, "pending"),
        ("2026-11-04", "admonition_talk", 2, "pending"),
    ]
    assert await deductions(system, c) == [
        ("admonition_talk", Decimal("500.00")),
        ("study_class", Decimal("200.00")),
    ]


async def test_a_carried_out_action_is_never_undone(system, t):
    c = await f.posted_cadre(system, t.village)
    await f.finding(system, c, f.local(2026, 11, 20, 10))
    [study] = await f.actions(system, cadre_id=c)
    r = await system.client.post(
        f"/assessment/v1/accountability-actions/{study['id']}/carry-out",
        json={"note": "attended the study class"},
        headers=system.headers(Role.org_admin),
    )
    assert r.status_code == 200, r.text
    # A violation of 2 November is back-filled, then one of 21 November arrives.
    await f.finding(system, c, f.local(2026, 11, 2, 10))
    await f.finding(system, c, f.local(2026, 11, 21, 10))
    assert live(await f.actions(system, cadre_id=c)) == [
        ("2026-11-02", "study_class", 1, "pending"),
        ("2026-11-20", "study_class", 1, "carried_out"),  # stands as carried out
        ("2026-11-21", "penalty", 3, "pending"),  # the third entry by date
    ]
    assert await f.actions(system, cadre_id=c, status="cancelled") == []
    assert await deductions(system, c) == [
        ("penalty", Decimal("1000.00")),
        ("study_class", Decimal("200.00")),
        ("study_class", Decimal("200.00")),
    ]


async def deductions(system, cadre_id, month="2026-11") -> list[tuple[str, Decimal]]:
    await system.settle()
    r = await system.client.get(
        f"/incentives/v1/eligibility/{cadre_id}",
        params={"month": month},
        headers=system.headers(Role.finance),
    )
    assert r.status_code == 200, r.text
    return sorted(
        (d["kind"], Decimal(d["amount"]))
        for d in r.json()["deductions"]
        if d["kind"] in ("study_class", "admonition_talk", "penalty")
    )


# --- any arrival order, the same ladder ------------------------------------------------

DAYS = [date(2025, 12, 30), date(2026, 1, 5), date(2026, 3, 2), date(2026, 3, 9)]
DAYS += [date(2026, 6, 1), date(2026, 11, 20)]
REASONS = [EntryReason.finding, EntryReason.duty_missed, EntryReason.task_overdue]


@st.composite
def arrivals(draw):
    """Dated entries (some sharing a day), an arrival order cut into batches, and maybe
    one entry revoked after some step."""
    n = draw(st.integers(2, 6))
    dated = draw(
        st.lists(
            st.tuples(st.sampled_from(DAYS), st.sampled_from(REASONS)),
            min_size=n,
            max_size=n,
            unique=True,
        )
    )
    order = draw(st.permutations(range(n)))
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=n - 1)))
    batches = [list(order[a:b]) for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
    revoke = draw(st.none() | st.tuples(st.integers(0, n - 1), st.integers(0, len(batches) - 1)))
    return dated, batches, revoke


@settings(PROPERTY, max_examples=20)
@given(case=arrivals())
async def test_any_arrival_order_ends_with_the_same_rungs(system, case):
    dated, batches, revoke = case
    cadre_id, unit_id = uuid.uuid4(), uuid.uuid4()
    system.clock.set(f.local(2026, 12, 1, 10).astimezone(UTC))
    entries = [
        NewEntry(
            subject_type=SubjectType.cadre,
            subject_id=cadre_id,
            reason=reason,
            source_id=uuid.uuid4(),
            date=day,
            unit_id=unit_id,
        )
        for day, reason in dated
    ]
    ids: dict[int, uuid.UUID] = {}
    revoked = False
    for step, batch in enumerate(batches):
        system.clock.set(system.clock.now() + timedelta(minutes=1))
        async with system.transaction("assessment") as s:
            created = await record_entries(s, [entries[i] for i in batch], now=system.clock.now())
            ids.update(zip(batch, [r["id"] for r in created], strict=True))
        if revoke and revoke[1] == step and revoke[0] in ids:
            await revoke_one(system, ids[revoke[0]])
            revoked = True
    if revoke and not revoked:  # drawn before its entry arrived: revoked at the end
        await revoke_one(system, ids[revoke[0]])
    gone = {revoke[0]} if revoke else set()

    # The ladder as it must be: by date within each calendar year.
    by_year: dict[int, list[date]] = defaultdict(list)
    for i, (day, _) in enumerate(dated):
        if i not in gone:
            by_year[day.year].append(day)
    want = Counter(
        (day, rung_for(n).value, n)
        for days in by_year.values()
        for n, day in enumerate(sorted(days), start=1)
    )
    async with system.transaction("assessment") as s:
        actions = (await s.execute(select(ACTIONS).where(ACTIONS.c.cadre_id == cadre_id))).all()
        active = set(
            (
                await s.execute(
                    select(ENTRIES.c.id).where(
                        ENTRIES.c.subject_id == cadre_id, ENTRIES.c.status == "active"
                    )
                )
            ).scalars()
        )
    alive = [a for a in actions if a.status != "cancelled"]
    assert Counter((a.entry_date, a.rung, a.count) for a in alive) == want
    assert sorted(a.entry_id for a in alive) == sorted(active)  # one live action per entry
    assert all(a.note for a in actions if a.status == "cancelled")


async def revoke_one(system, entry_id: uuid.UUID) -> None:
    async with system.transaction("assessment") as s:
        await revoke_entries(s, [entry_id], why="dismissed", now=system.clock.now())


async def test_a_back_fill_for_many_cadres_is_set_based(system):
    """Re-sequencing a back-filled entry of every cadre issues as many statements for ten
    cadres as for two (a week closed late files thousands at once)."""

    async def statements_to_back_fill(n: int) -> int:
        cadres, unit_id = [uuid.uuid4() for _ in range(n)], uuid.uuid4()

        def entry(cadre_id, day):
            return NewEntry(
                subject_type=SubjectType.cadre,
                subject_id=cadre_id,
                reason=EntryReason.duty_missed,
                source_id=uuid.uuid4(),
                date=day,
                unit_id=unit_id,
            )

        async with system.transaction("assessment") as s:
            later = [entry(c, date(2026, 11, d)) for c in cadres for d in (20, 21)]
            await record_entries(s, later, now=system.clock.now())
        seen = []
        engine = system.runtime("assessment").engine.sync_engine

        def count(conn, cursor, statement, *_):
            if not RELAY.match(statement):
                seen.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            async with system.transaction("assessment") as s:
                back = [entry(c, date(2026, 11, 1)) for c in cadres]
                await record_entries(s, back, now=system.clock.now())
        finally:
            event.remove(engine, "before_cursor_execute", count)
        async with system.transaction("assessment") as s:
            rows = await s.execute(select(ACTIONS.c.status).where(ACTIONS.c.cadre_id.in_(cadres)))
            assert Counter(r.status for r in rows) == {"pending": 3 * n, "cancelled": 2 * n}
        return len(seen)

    assert await statements_to_back_fill(10) == await statements_to_back_fill(2)


async def test_two_entries_of_one_cadre_at_once_take_two_places(system, backend):
    """Two transactions filing entries for one cadre at once: the second to re-sequence
    waits for the first (PostgreSQL: a per-cadre advisory lock; SQLite: one writer) and
    counts its entry, so the ladder is 1, 2 and not 1, 1."""
    cadre_id, unit_id = uuid.uuid4(), uuid.uuid4()

    def entry(day: int) -> NewEntry:
        return NewEntry(
            subject_type=SubjectType.cadre,
            subject_id=cadre_id,
            reason=EntryReason.finding,
            source_id=uuid.uuid4(),
            date=date(2026, 11, day),
            unit_id=unit_id,
        )

    async def second() -> None:
        async with system.transaction("assessment") as s:
            await record_entries(s, [entry(4)], now=system.clock.now())

    async with system.transaction("assessment") as s:
        await record_entries(s, [entry(3)], now=system.clock.now())
        other = asyncio.create_task(second())
        if backend == "postgres":  # until the second one waits for the cadre's lock
            async with system.transaction("assessment") as probe:
                for _ in range(1000):
                    if await probe.scalar(WAITING, {"cls": LADDER_LOCK}):
                        break
                    await asyncio.sleep(0.01)
                else:
                    raise AssertionError("the second transaction never waited for the lock")
        else:
            await asyncio.sleep(0.05)
    await other
    async with system.transaction("assessment") as s:
        rows = await s.execute(select(ACTIONS).where(ACTIONS.c.cadre_id == cadre_id))
        assert sorted((a.entry_date.day, a.count, a.status) for a in rows) == [
            (3, 1, "pending"),
            (4, 2, "pending"),
        ]


WAITING = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    " AND classid = :cls AND objsubid = 2"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
