"""Property: on random months (postings, deductions, late events and cancellations across
three months, batches built and locked between them) every line satisfies gross -
deductions_applied = net and deductions_total - deductions_applied = carried_forward, its
items sum to its amounts, batch totals are the sums of their lines, and the stored
eligibility equals the carry chain recomputed from the final facts (late events converge).

Batches are one per month county-wide, so each example takes three months of its own
(a quarter from 2018 on, where the default policies start) and cadres posted only then.
"""

import itertools
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from services.incentives.service.eligibility import chain, read
from services.incentives.service.facts import load_book, load_facts
from shared.clock import format_month, month_end
from tests.incentives.factories import (
    BASE,
    action,
    build,
    cadre,
    end_posting,
    entry,
    finance,
    posting,
    unit_tree,
    verdict,
)
from tests.incentives.test_money import check_batch, identity

# Each example costs a few seconds per backend; five of them per backend stay well
# under a minute of CI. No shrinking: a failure prints its own example.
PROPERTY = settings(
    max_examples=5,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(__import__("hypothesis").HealthCheck),
)
QUARTERS = itertools.count()  # shared by both backends: each example its own months

deduction = st.tuples(
    st.integers(0, 2),  # month
    st.sampled_from(["penalty", "admonition_talk", "study_class", "week"]),
    st.integers(1, 28),  # day
    st.sampled_from(["early", "late", "cancelled_late"]),
)
person = st.tuples(
    st.integers(0, 1),  # posting starts in month 0 or 1
    st.integers(1, 28),  # on that day
    st.sampled_from([None, 1, 2]),  # ends in that month (else runs to the last month's end)
    st.lists(deduction, max_size=5),
)
scenario = st.tuples(
    st.lists(person, min_size=1, max_size=3),
    st.booleans(),  # lock the first month before the second is built
    st.booleans(),  # lock the second month before the third is built
)


def first_of(quarter: int, i: int) -> date:
    year, q = 2018 + quarter // 4, quarter % 4
    return date(year, 3 * q + i + 1, 1)


async def lock(system, batch_id) -> None:
    r = await system.client.post(f"{BASE}/stipend-batches/{batch_id}/lock", headers=finance(system))
    assert r.status_code == 200, r.text


async def run(system, units, people, lock_first, lock_second) -> None:
    quarter = next(QUARTERS)
    firsts = [first_of(quarter, i) for i in range(3)]
    assert firsts[2] < date(2026, 11, 1), "out of quarters for examples"
    later: list = []  # (month index, coroutine factory) delivered after a batch
    cadres = []
    for start_month, start_day, end_month, deductions in people:
        cid, _ = await cadre(system, name="Prop")
        cadres.append(cid)
        start = firsts[start_month] + timedelta(days=start_day - 1)
        end = month_end(firsts[2])
        pid, _ = await posting(system, cid, units["village_a"], start=start, end=end)
        if end_month is not None and end_month >= start_month:
            short = month_end(firsts[end_month]) - timedelta(days=3)
            if short >= start:
                await end_posting(system, pid, cid, units["village_a"], start=start, end=short)
        for month, kind, day, when in deductions:
            on = firsts[month] + timedelta(days=day - 1)

            async def deliver(cid=cid, kind=kind, on=on, cancel=when == "cancelled_late"):
                if kind == "week":
                    sunday = on + timedelta(days=(6 - on.weekday()))
                    if sunday.month != on.month:
                        sunday -= timedelta(days=7)
                    await verdict(system, cid, sunday=sunday, compliant=False)
                    return None
                entry_id, _ = await entry(system, cid, day=on)
                action_id, _ = await action(system, cid, entry_id, day=on, rung=kind, count=1)
                return (entry_id, action_id) if cancel else None

            if when == "early":
                await deliver()
            else:
                later.append((month, when, deliver, cid, kind, on))

    batches, cancels = [], []
    for i, first in enumerate(firsts):
        batches.append((await build(system, format_month(first)))["id"])
        if (i == 0 and lock_first) or (i == 1 and lock_second):
            await lock(system, batches[i])
        for cid, kind, on, entry_id, action_id in cancels:  # one batch after they came
            await action(system, cid, entry_id, day=on, rung=kind, count=1,
                         status="cancelled", action_id=action_id)  # fmt: skip
        cancels = []
        for _month, _when, deliver, cid, kind, on in [x for x in later if x[0] == i]:
            if (made := await deliver()) is not None:
                cancels.append((cid, kind, on, *made))
    for cid, kind, on, entry_id, action_id in cancels:
        await action(system, cid, entry_id, day=on, rung=kind, count=1,
                     status="cancelled", action_id=action_id)  # fmt: skip

    for batch_id in batches:
        await check_batch(system, batch_id)

    async with system.transaction("incentives") as s:
        book = await load_book(s)
        facts = await load_facts(s, cadres)
        for cid in cadres:
            expected = chain(facts[cid], firsts[0], firsts[2], book, None)
            for first, due in zip(firsts, expected, strict=True):
                got = await read(s, cadre_id=cid, first=first)
                assert (got["gross"], got["total_deductions"], got["deductions_applied"],
                        got["carried_forward"], got["net"]) == tuple(
                    str(a) for a in due.amounts), (format_month(first), got)  # fmt: skip
                assert Decimal(got["gross"]) - Decimal(got["deductions_applied"]) == Decimal(
                    got["net"]
                )


@PROPERTY
@given(case=scenario)
async def test_money_adds_up_on_random_months(system, case):
    if not hasattr(system, "_money_units"):
        system._money_units = await unit_tree(system)
    people, lock_first, lock_second = case
    await run(system, system._money_units, people, lock_first, lock_second)


def test_identity_helper_can_fail():
    """The check the property relies on rejects a line that does not add up."""
    line = {"gross": "100.00", "deductions_total": "50.00", "deductions_applied": "50.00",
            "carried_forward": "0.00", "net": "60.00",
            "components": [], "deductions": []}  # fmt: skip
    try:
        identity(line)
    except AssertionError:
        return
    raise AssertionError("identity accepted a line that does not add up")
