"""Any order of delivery, with repeats, leaves the projections and eligibility as in-order
delivery does (shared.versions); and the reorderings found in the wild stay fixed."""

from datetime import date

from hypothesis import given
from sqlalchemy import select

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
from services.incentives.service.eligibility import read
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
from shared.contracts.registry import (
    CadreUpserted,
    HonorAwarded,
    HonorRevoked,
    PostingEnded,
    PostingOpened,
    UnitUpserted,
)
from tests.incentives.factories import eligibility
from tests.orderings import PROPERTY, Run, deliveries

MONTHS = [date(2025, m, 1) for m in (1, 12)] + [date(2026, m, 1) for m in range(1, 12)]


def by(column: str, name: str):
    return lambda table, ids: table.c[column] == ids[name]


async def due(run: Run, cadre: str = "cadre") -> list[str]:
    """What the cadre is due in each month, as GET /eligibility answers it."""
    async with run.system.transaction("incentives") as s:
        return [
            run.name_of(await read(s, cadre_id=run.ids[cadre], first=first)) for first in MONTHS
        ]


class Scenario:
    """Steps about some entities, the tables they shape, and the baseline per system."""

    def __init__(self, names, steps, tables, cadre: str | None = "cadre"):
        self.names, self.steps, self.tables, self.cadre = names, steps, tables, cadre
        self.baselines: dict[int, dict] = {}

    async def state(self, run: Run) -> dict:
        out = await run.snapshot(self.tables, skip=("computed_at",))
        if self.cadre:
            out["due"] = await due(run, self.cadre)
        return out

    async def check(self, system, order: list[int]) -> None:
        if id(system) not in self.baselines:
            run = Run(system, "incentives", self.names, self.steps)
            await run.deliver(list(range(len(self.steps))))
            self.baselines[id(system)] = await self.state(run)
        run = Run(system, "incentives", self.names, self.steps)
        await run.deliver(order)
        assert await self.state(run) == self.baselines[id(system)], order


def unit(name, kind, parent, ancestors, version, label=None):
    def step(ids):
        payload = UnitUpserted(
            unit_id=ids[name],
            code=name,
            name=label or name,
            kind=kind,
            parent_id=ids[parent] if parent else None,
            ancestors=[ids[a] for a in ancestors],
            entity_version=version,
        )
        return payload, ids[name]

    return step


def cadre(version, *, category="village_cadre", position=None, day=date(2026, 1, 1), **kw):
    def step(ids):
        payload = CadreUpserted(
            cadre_id=ids["cadre"],
            name=kw.get("name", "Wei"),
            category=category,
            position=position,
            active=kw.get("active", True),
            effective_date=day,
            unit_id=ids[kw["unit"]] if "unit" in kw else None,
            entity_version=version,
        )
        return payload, ids["cadre"]

    return step


def posting(name, version, start, end=None, reason=None):
    def step(ids):
        common = dict(
            posting_id=ids[name],
            cadre_id=ids["cadre"],
            unit_id=ids["village"],
            role="member",
            start_date=start,
            entity_version=version,
        )
        if reason:
            return PostingEnded(**common, end_date=end, reason=reason), ids["cadre"]
        return PostingOpened(**common, end_date=end), ids["cadre"]

    return step


def honor(name, version, level, year, revoked=False):
    def step(ids):
        cls = HonorRevoked if revoked else HonorAwarded
        payload = cls(
            honor_id=ids[name],
            cadre_id=ids["cadre"],
            level=level,
            year=year,
            title=f"{level} {year}",
            entity_version=version,
        )
        return payload, ids["cadre"]

    return step


def verdict(version, sunday: date, compliant: bool):
    def step(ids):
        payload = PresenceJudged(
            cadre_id=ids["cadre"],
            week=format_week(sunday),
            week_sunday=sunday,
            days=5 if compliant else 2,
            nights=4 if compliant else 1,
            leave_days=0,
            compliant=compliant,
            entity_version=version,
        )
        return payload, ids["cadre"]

    return step


def entry(name, version, day: date, revoked=False):
    def step(ids):
        cls = NegativeEntryRevoked if revoked else NegativeEntryRecorded
        payload = cls(
            entry_id=ids[name],
            subject_type="cadre",
            subject_id=ids["cadre"],
            reason="finding",
            source_id=ids[name],
            date=day,
            month=f"{day:%Y-%m}",
            status="revoked" if revoked else "active",
            entity_version=version,
        )
        return payload, ids["cadre"]

    return step


ACTION = {
    "pending": AccountabilityOpened,
    "carried_out": AccountabilityCarriedOut,
    "cancelled": AccountabilityCancelled,
}


def action(name, of, version, day: date, rung, count, status):
    def step(ids):
        payload = ACTION[status](
            action_id=ids[name],
            cadre_id=ids["cadre"],
            entry_id=ids[of],
            entry_date=day,
            rung=rung,
            count=count,
            status=status,
            measure=None,
            entity_version=version,
        )
        return payload, ids["cadre"]

    return step


def score(version, month, value, rank):
    def step(ids):
        payload = MonthlyScorePublished(
            cadre_id=ids["cadre"], month=month, score=value, rank=rank, entity_version=version
        )
        return payload, ids["cadre"]

    return step


TREE = Scenario(
    ["county", "town_a", "town_b", "village"],
    [
        unit("county", "county", None, [], 1),
        unit("town_a", "township", "county", ["county"], 1),
        unit("town_b", "township", "county", ["county"], 1),
        unit("village", "village", "town_a", ["county", "town_a"], 1),
        unit("village", "village", "town_a", ["county", "town_a"], 2, label="坡老村"),
        unit("village", "village", "town_b", ["county", "town_b"], 3, label="坡老村"),
    ],
    {
        "units": (units, lambda t, ids: t.c.unit_id.in_(ids.values())),
        "ancestors": (unit_ancestors, lambda t, ids: t.c.unit_id.in_(ids.values())),
    },
    cadre=None,
)

CADRE = Scenario(
    ["cadre", "village", "village_b"],
    [
        cadre(1, position="committee_member"),
        cadre(2, position="committee_director", day=date(2026, 6, 1)),
        cadre(3, position="deputy_director", day=date(2026, 3, 1), name="Wei Jr"),  # back-dated
        cadre(4, position="party_secretary", day=date(2026, 6, 1), unit="village"),  # corrected
        cadre(5, position="party_secretary", day=date(2026, 10, 1), active=False, unit="village_b"),
    ],
    {
        "cadres": (cadres, by("cadre_id", "cadre")),
        "states": (cadre_states, by("cadre_id", "cadre")),
    },
)

POSTINGS = Scenario(
    ["cadre", "village", "first", "second"],
    [
        cadre(1, category="resident_cadre"),
        posting("first", 1, date(2026, 1, 1)),
        posting("first", 2, date(2026, 1, 1), date(2026, 6, 30), reason="completed"),
        posting("second", 1, date(2026, 7, 10), date(2026, 12, 31)),
        posting("second", 2, date(2026, 7, 10), date(2026, 9, 15), reason="adjusted"),
    ],
    {"postings": (postings, by("cadre_id", "cadre"))},
)

HONORS = Scenario(
    ["cadre", "h2023", "h2024", "h2025", "province"],
    [
        cadre(1, position="party_secretary", day=date(2025, 1, 1)),
        honor("h2023", 1, "county", 2023),
        honor("h2024", 1, "county", 2024),
        honor("h2024", 2, "county", 2024, revoked=True),
        honor("h2025", 1, "county", 2025),
        honor("province", 1, "province", 2024),
        honor("province", 2, "province", 2024, revoked=True),
    ],
    {"honors": (honors, by("cadre_id", "cadre"))},
)

ASSESSED = Scenario(
    ["cadre", "village", "posting", "e1", "a1", "e2", "a2"],
    [
        cadre(1, category="resident_cadre"),
        posting("posting", 1, date(2026, 1, 1)),
        verdict(1, date(2026, 11, 8), compliant=False),
        verdict(2, date(2026, 11, 8), compliant=True),
        verdict(1, date(2026, 11, 15), compliant=False),
        entry("e1", 1, date(2026, 10, 3)),
        action("a1", "e1", 1, date(2026, 10, 3), "study_class", 1, "pending"),
        entry("e1", 2, date(2026, 10, 3), revoked=True),
        action("a1", "e1", 2, date(2026, 10, 3), "study_class", 1, "cancelled"),
        entry("e2", 1, date(2026, 11, 4)),
        action("a2", "e2", 1, date(2026, 11, 4), "study_class", 1, "pending"),
        action("a2", "e2", 2, date(2026, 11, 4), "study_class", 1, "carried_out"),
        score(1, "2026-10", "88.5", 2),
        score(2, "2026-10", "91.0", 1),
    ],
    {
        "verdicts": (verdicts, by("cadre_id", "cadre")),
        "entries": (entries, by("subject_id", "cadre")),
        "actions": (actions, by("cadre_id", "cadre")),
        "scores": (scores, by("cadre_id", "cadre")),
    },
)


@PROPERTY
@given(order=deliveries(len(TREE.steps)))
async def test_units_in_any_order(system, order):
    await TREE.check(system, order)


@PROPERTY
@given(order=deliveries(len(CADRE.steps)))
async def test_cadre_states_in_any_order(system, order):
    await CADRE.check(system, order)


@PROPERTY
@given(order=deliveries(len(POSTINGS.steps)))
async def test_postings_in_any_order(system, order):
    await POSTINGS.check(system, order)


@PROPERTY
@given(order=deliveries(len(HONORS.steps)))
async def test_honors_in_any_order(system, order):
    await HONORS.check(system, order)


@PROPERTY
@given(order=deliveries(len(ASSESSED.steps)))
async def test_verdicts_entries_actions_and_scores_in_any_order(system, order):
    await ASSESSED.check(system, order)


# The reorderings found in the wild (issue #10), through the bus as they happened.


async def test_an_award_replayed_after_its_revocation_pays_nothing(system):
    run = Run(system, "incentives", HONORS.names, HONORS.steps)
    await run.deliver([0, 5])  # the secretary, a provincial honor of 2024
    assert (await eligibility(system, run.ids["cadre"], "2026-11"))["gross"] == "4500.00"
    await run.deliver([6, 5])  # revoked, then the award again (a DLQ replay)
    got = await eligibility(system, run.ids["cadre"], "2026-11")
    assert got["gross"] == "3000.00"
    assert [c["kind"] for c in got["components"]] == ["village_cadre_pay"]


async def test_a_revocation_that_arrives_first_is_remembered(system):
    run = Run(system, "incentives", HONORS.names, HONORS.steps)
    await run.deliver([0, 6, 5])
    got = await eligibility(system, run.ids["cadre"], "2026-11")
    assert [c["kind"] for c in got["components"]] == ["village_cadre_pay"]
    async with system.transaction("incentives") as s:
        [row] = (await s.execute(select(honors).where(honors.c.cadre_id == run.ids["cadre"]))).all()
    assert row.revoked is True and run.name_of(row.event_id) == "event6"


async def test_an_opening_replayed_after_the_end_does_not_reopen(system):
    run = Run(system, "incentives", POSTINGS.names, POSTINGS.steps)
    await run.deliver([0, 1, 2])
    ended = await eligibility(system, run.ids["cadre"], "2026-11")
    await run.deliver([1])  # PostingOpened again, after PostingEnded
    assert await eligibility(system, run.ids["cadre"], "2026-11") == ended
    assert ended["gross"] == "0.00"
    july = await eligibility(system, run.ids["cadre"], "2026-06")
    assert july["gross"] == "2000.00"


async def test_a_stale_entry_or_action_state_is_ignored(system):
    run = Run(system, "incentives", ASSESSED.names, ASSESSED.steps)
    # Revoked and cancelled first; the recording and the opening come late.
    await run.deliver([0, 1, 7, 8, 5, 6])
    async with system.transaction("incentives") as s:
        mine = entries.c.subject_id == run.ids["cadre"]
        assert (await s.execute(select(entries.c.status).where(mine))).scalars().all() == [
            "revoked"
        ]
        theirs = actions.c.cadre_id == run.ids["cadre"]
        assert (await s.execute(select(actions.c.status).where(theirs))).scalars().all() == [
            "cancelled"
        ]
    october = await eligibility(system, run.ids["cadre"], "2026-10")
    assert october["deductions"] == []
    # A newer verdict wins over an older one that arrives after it.
    await run.deliver([3, 2])
    november = await eligibility(system, run.ids["cadre"], "2026-11")
    assert november["deductions"] == []
