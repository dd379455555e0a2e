"""The pure eligibility rules: pro-rating, the honor rule, deductions (no database)."""

import uuid
from datetime import date
from decimal import Decimal

import pytest

from services.incentives.policies import DEFAULTS, SEED_FROM, Policy, PolicyBook, validate
from services.incentives.rules import (
    ActionFact,
    CadreFacts,
    EntryFact,
    HonorFact,
    PostingFact,
    Source,
    StateFact,
    VerdictFact,
    compute,
    honor_qualification,
    prorate,
)

SRC = Source("test.event", "e1")


@pytest.fixture
def settled_before_teardown():
    """Pure functions: no system to start or settle."""


def book() -> PolicyBook:
    out = []
    for d in DEFAULTS:
        amounts, params = validate(d["kind"], d["amounts"], d["params"])
        out.append(
            Policy(
                f"{d['kind']}@{SEED_FROM}",
                d["kind"].value,
                SEED_FROM,
                None,
                {k: Decimal(v) for k, v in amounts.items()},
                params,
            )
        )
    return PolicyBook(out)


def posted(start, end=None, role="member"):
    return PostingFact(uuid.uuid4(), uuid.uuid4(), role, start, end, SRC)


def amounts(facts, first):
    return [i.amount for i in compute(facts, first, book()).components]


def test_half_up_to_the_fen():
    assert prorate(Decimal("100.01"), 15, 30) == Decimal("50.01")  # HALF_EVEN would say 50.00
    assert prorate(Decimal("2000.00"), 1, 31) == Decimal("64.52")
    assert prorate(Decimal("2000.00"), 15, 28) == Decimal("1071.43")


@pytest.mark.parametrize(
    ("start", "end", "first", "expected"),
    [
        (date(2026, 11, 10), None, date(2026, 11, 1), "1400.00"),  # 21/30 days
        (date(2026, 10, 1), date(2026, 11, 20), date(2026, 11, 1), "1333.33"),  # 20/30
        (date(2026, 11, 20), date(2026, 11, 20), date(2026, 11, 1), "66.67"),  # one day
        (date(2027, 2, 15), None, date(2027, 2, 1), "1000.00"),  # 14/28
        (date(2028, 2, 15), None, date(2028, 2, 1), "1034.48"),  # leap: 15/29
        (date(2026, 12, 1), date(2026, 12, 31), date(2026, 12, 1), "2000.00"),  # whole 31
        (date(2026, 12, 17), None, date(2026, 12, 1), "967.74"),  # 15/31
        (date(2026, 12, 31), None, date(2026, 12, 1), "64.52"),  # 1/31
        (date(2026, 11, 1), date(2026, 11, 30), date(2026, 12, 1), None),  # ended before
    ],
)
def test_posted_subsidy_prorated_by_days(start, end, first, expected):
    facts = CadreFacts(uuid.uuid4(), postings=[posted(start, end)])
    assert amounts(facts, first) == ([Decimal(expected)] if expected else [])


@pytest.mark.parametrize("role", ["commander", "expert"])
def test_no_subsidy_outside_the_three_roles(role):
    facts = CadreFacts(uuid.uuid4(), postings=[posted(date(2026, 1, 1), role=role)])
    assert amounts(facts, date(2026, 11, 1)) == []


def test_a_replacement_day_is_paid_once():
    old = posted(date(2026, 11, 1), date(2026, 11, 15))
    new = posted(date(2026, 11, 15), role="team_leader")  # same day: the new posting's
    facts = CadreFacts(uuid.uuid4(), postings=[old, new])
    assert amounts(facts, date(2026, 11, 1)) == [Decimal("933.33"), Decimal("1066.67")]


def village(position, day=date(2020, 1, 1)):
    return StateFact(day, "village_cadre", position, True, SRC)


def test_village_cadre_pay_by_position_and_change_mid_month():
    facts = CadreFacts(
        uuid.uuid4(),
        states=[village("committee_member"), village("deputy_director", date(2026, 11, 16))],
    )
    items = compute(facts, date(2026, 11, 1), book()).components
    # 15 days at 2,040.00 and 15 days at 2,400.00
    assert [(i.kind, i.amount) for i in items] == [
        ("village_cadre_pay", Decimal("1020.00")),
        ("village_cadre_pay", Decimal("1200.00")),
    ]


def honor(level, year):
    return HonorFact(uuid.uuid4(), level, year, "t", False, SRC)


PARAMS = {
    "positions": ["party_secretary"],
    "single_min_level": "province",
    "prefecture_consecutive_years": 2,
    "county_consecutive_years": 3,
    "from_year_offset": 1,
}


@pytest.mark.parametrize(
    ("honors", "year", "qualifies"),
    [
        ([("province", 2025)], 2026, True),  # a provincial honor alone
        ([("national", 2025)], 2026, True),
        ([("province", 2026)], 2026, False),  # from the year after
        ([("prefecture", 2024), ("prefecture", 2025)], 2026, True),  # 2 consecutive
        ([("prefecture", 2023), ("prefecture", 2025)], 2026, False),  # with a gap
        ([("prefecture", 2025)], 2026, False),
        ([("county", 2023), ("county", 2024), ("county", 2025)], 2026, True),  # 3 county
        ([("county", 2023), ("county", 2024)], 2026, False),
        ([("county", 2022), ("county", 2023), ("county", 2025)], 2026, False),  # a gap
        ([("county", 2023), ("prefecture", 2024), ("county", 2025)], 2026, True),  # higher counts
    ],
)
def test_honor_rule(honors, year, qualifies):
    facts = [honor(level, y) for level, y in honors]
    assert (honor_qualification(facts, PARAMS, year) is not None) is qualifies


def test_revoked_honor_does_not_count():
    h = HonorFact(uuid.uuid4(), "province", 2025, "t", True, SRC)
    assert honor_qualification([h], PARAMS, 2026) is None


def test_treatment_only_for_party_secretaries():
    honors = [honor("province", 2025)]
    secretary = CadreFacts(uuid.uuid4(), states=[village("party_secretary")], honors=honors)
    member = CadreFacts(uuid.uuid4(), states=[village("committee_member")], honors=honors)
    kinds = [i.kind for i in compute(secretary, date(2026, 11, 1), book()).components]
    assert kinds == ["village_cadre_pay", "deputy_section_treatment"]
    kinds = [i.kind for i in compute(member, date(2026, 11, 1), book()).components]
    assert kinds == ["village_cadre_pay"]


def test_deductions_and_net_never_below_zero():
    entry = uuid.uuid4()
    facts = CadreFacts(
        uuid.uuid4(),
        postings=[posted(date(2026, 11, 30))],  # 66.67
        actions=[
            ActionFact(uuid.uuid4(), entry, date(2026, 11, 3), "penalty", 3, "carried_out", SRC)
        ],
        verdicts=[VerdictFact("2026-W46", date(2026, 11, 15), False, 3, 2, 0, SRC)],
        entries=[EntryFact(entry, "finding", date(2026, 11, 3), "active")],
    )
    r = compute(facts, date(2026, 11, 1), book())
    assert [i.kind for i in r.deductions] == ["penalty", "non_compliant_week"]
    assert r.total_deductions == Decimal("1200.00")
    assert r.net == Decimal("0.00")


def test_an_inactive_village_cadre_is_not_paid_from_that_day():
    gone = StateFact(date(2026, 11, 11), "village_cadre", "committee_member", False, SRC)
    facts = CadreFacts(uuid.uuid4(), states=[village("committee_member"), gone])
    assert amounts(facts, date(2026, 11, 1)) == [Decimal("680.00")]  # 10/30 of 2,040.00


def test_a_revoked_entry_cancels_a_pending_action_not_a_carried_out_one():
    entry = uuid.uuid4()
    revoked = [EntryFact(entry, "finding", date(2026, 11, 3), "revoked")]

    def deductions(status):
        action = ActionFact(uuid.uuid4(), entry, date(2026, 11, 3), "penalty", 3, status, SRC)
        facts = CadreFacts(uuid.uuid4(), actions=[action], entries=revoked)
        return [i.amount for i in compute(facts, date(2026, 11, 1), book()).deductions]

    assert deductions("pending") == []
    assert deductions("carried_out") == [Decimal("1000.00")]
    assert deductions("cancelled") == []


def test_items_json_is_the_canonical_json_text():
    """Result.items_json (orjson) is byte for byte what json.dumps(sort_keys, compact,
    ensure_ascii=False) writes, escapes included: every control character, quotes,
    backslashes, and a sample of the rest of Unicode (surrogates have no UTF-8 form)."""
    import json

    from services.incentives.rules import canonical_json

    chars = [chr(c) for c in range(0x100)] + ["\u2028", "\u2029", "\ufeff", "张", "😀"]
    chars += [chr(c) for c in range(0x100, 0x110000, 997) if not 0xD800 <= c < 0xE000]
    for ch in chars:
        value = {"ä": [ch, 1, -2, True, None], "b": {"z": f"a{ch}b", "a": ""}, ch * 2: 0}
        assert canonical_json(value) == json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ), repr(ch)
    facts = CadreFacts(uuid.uuid4(), postings=[posted(date(2026, 1, 1))], unit_names={})
    r = compute(facts, date(2026, 11, 1), book())
    assert r.items_json == json.dumps(
        r.items_wire(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def test_a_plain_month_is_what_compute_gives():
    """rules.plain_subsidy, the batch build's shortcut, answers only when compute() gives
    exactly that one subsidy item and nothing else (every combination below)."""
    import itertools

    from services.incentives.rules import Carry, MonthRules, plain_subsidy

    first, rulebook = date(2026, 11, 1), book()
    rules = MonthRules.of(rulebook, first)
    unit = uuid.uuid4()
    spans = [
        (date(2026, 1, 1), None),
        (date(2026, 11, 10), None),
        (date(2026, 1, 1), date(2026, 11, 20)),
        (date(2026, 1, 1), date(2026, 10, 31)),  # ended before the month
        (date(2026, 12, 1), None),  # starts after it
    ]
    postings = [[]] + [
        [PostingFact(uuid.uuid4(), unit, role, s, e, SRC)]
        for (s, e), role in itertools.product(spans, ("member", "expert"))
    ]
    postings.append([posted(date(2026, 1, 1), date(2026, 11, 5)), posted(date(2026, 11, 5))])
    states = [
        [],
        [StateFact(date(2026, 1, 1), "resident_cadre", None, True, SRC)],
        [StateFact(date(2026, 1, 1), "village_cadre", "party_secretary", True, SRC)],
        [StateFact(date(2026, 1, 1), "resident_cadre", None, True, SRC),
         StateFact(date(2026, 11, 20), "village_cadre", "committee_member", True, SRC)],
    ]  # fmt: skip
    entry = uuid.uuid4()
    actions = [[], [ActionFact(uuid.uuid4(), entry, date(2026, 11, 8), "study_class", 1,
                               "pending", SRC)]]  # fmt: skip
    verdicts = [[], [VerdictFact("2026-W45", date(2026, 11, 8), False, 4, 4, 0, SRC)]]
    held = [(None, None), (date(2026, 11, 12), "committee_director")]
    carries = [None, Carry(Decimal("300.00"), "2026-10", "penalty@2018-01-01")]
    plain = 0
    for p, s, a, v, (since, position), carry in itertools.product(
        postings, states, actions, verdicts, held, carries
    ):
        facts = CadreFacts(uuid.uuid4(), postings=list(p), states=list(s), actions=list(a),
                           verdicts=list(v), position_since=since, held_position=position,
                           unit_names={unit: "Village 1"})  # fmt: skip
        item = plain_subsidy(facts, rules, carry)
        if item is None:
            continue
        plain += 1
        result = compute(facts, first, rulebook, carry)
        assert (result.components, result.deductions) == ([item], [])
    # a member's one posting touching the month (3 spans), nothing carried, no deduction,
    # no village state: without states (2 position cases), or a resident cadre's (1)
    assert plain == 3 * (2 + 1)
