"""Any order of delivery, with repeats, leaves assessment's registry projections as
in-order delivery does (shared.versions)."""

from datetime import date

from hypothesis import given

from services.assessment.models import Cadre, Posting, Unit, UnitPath
from shared.contracts.registry import (
    CadreUpserted,
    Geofence,
    PostingEnded,
    PostingOpened,
    UnitUpserted,
)
from tests.assessment import factories as f
from tests.orderings import PROPERTY, Run, deliveries

UNITS, PATHS, CADRES, POSTINGS = (m.__table__ for m in (Unit, UnitPath, Cadre, Posting))


def unit(name, kind, ancestors, version, *, label=None, fence=None):
    def step(ids):
        payload = UnitUpserted(
            unit_id=ids[name],
            code=name,
            name=label or name,
            kind=kind,
            parent_id=ids[ancestors[-1]] if ancestors else None,
            ancestors=[ids[a] for a in ancestors],
            geofence=Geofence(lat=fence[0], lon=fence[1], radius_m=fence[2]) if fence else None,
            entity_version=version,
        )
        return payload, ids[name]

    return step


def cadre(version, name="张永方", active=True, unit=None):
    def step(ids):
        payload = CadreUpserted(
            cadre_id=ids["cadre"],
            name=name,
            category="first_secretary",
            active=active,
            effective_date=date(2026, 1, 1),
            unit_id=ids[unit] if unit else None,
            entity_version=version,
        )
        return payload, ids["cadre"]

    return step


def posting(name, version, unit, start, end=None, reason=None):
    def step(ids):
        common = dict(
            posting_id=ids[name],
            cadre_id=ids["cadre"],
            unit_id=ids[unit],
            role="first_secretary",
            start_date=start,
            entity_version=version,
        )
        if reason:
            return PostingEnded(**common, end_date=end, reason=reason), ids["cadre"]
        return PostingOpened(**common, end_date=end), ids["cadre"]

    return step


TREE = (
    ["county", "town_a", "town_b", "village", "group"],
    [
        unit("county", "county", [], 1),
        unit("town_a", "township", ["county"], 1),
        unit("town_b", "township", ["county"], 1),
        unit("village", "village", ["county", "town_a"], 1, fence=(25.0, 105.5, 500.0)),
        unit("group", "group", ["county", "town_a", "village"], 1),
        unit(
            "village", "village", ["county", "town_a"], 2, label="坡老村", fence=(25.1, 105.5, 800)
        ),
        # The move re-announces the subtree, each unit at its next version.
        unit(
            "village", "village", ["county", "town_b"], 3, label="坡老村", fence=(25.1, 105.5, 800)
        ),
        unit("group", "group", ["county", "town_b", "village"], 2),
    ],
    {
        "units": (UNITS, lambda t, ids: t.c.unit_id.in_(ids.values())),
        "paths": (PATHS, lambda t, ids: t.c.unit_id.in_(ids.values())),
    },
)

PEOPLE = (
    ["cadre", "village", "group", "first", "second"],
    [
        cadre(1),
        cadre(2, name="张永芳", unit="village"),
        cadre(3, name="张永芳", active=False, unit="village"),
        cadre(4, name="张永芳", unit="group"),
        posting("first", 1, "village", date(2026, 1, 1)),
        posting("first", 2, "village", date(2026, 1, 1), date(2026, 6, 30), "adjusted"),
        posting("second", 1, "group", date(2026, 7, 1)),
        posting("second", 2, "group", date(2026, 7, 1), date(2026, 11, 20), "recalled"),
    ],
    {
        "cadres": (CADRES, lambda t, ids: t.c.cadre_id == ids["cadre"]),
        "postings": (POSTINGS, lambda t, ids: t.c.cadre_id == ids["cadre"]),
    },
)
BASELINES: dict[tuple[str, int], dict] = {}


async def check(system, scenario, order) -> None:
    names, steps, tables = scenario
    key = (names[0], id(system))
    if key not in BASELINES:
        run = Run(system, "assessment", names, steps)
        await run.deliver(list(range(len(steps))))
        BASELINES[key] = await run.snapshot(tables)
    run = Run(system, "assessment", names, steps)
    await run.deliver(order)
    assert await run.snapshot(tables) == BASELINES[key], order


@PROPERTY
@given(order=deliveries(len(TREE[1])))
async def test_units_and_paths_in_any_order(system, order):
    await check(system, TREE, order)


@PROPERTY
@given(order=deliveries(len(PEOPLE[1])))
async def test_cadres_and_postings_in_any_order(system, order):
    await check(system, PEOPLE, order)


async def test_an_opening_replayed_after_the_end_does_not_reopen(system):
    """A sign-in after the end of a posting is `not_posted`, even after a replayed open."""
    t = await f.tree(system)
    run = Run(system, "assessment", ["cadre", "village", "first"], PEOPLE[1])
    run.ids["village"] = t.village
    await run.deliver([0, 4, 5, 4])  # opened, ended 30 June, opened again (a replay)
    late = await f.sign_in(system, run.ids["cadre"], f.local(2026, 11, 25, 9))
    assert late.json()["reasons"] == ["not_posted"]
