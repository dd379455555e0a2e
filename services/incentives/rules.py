"""Eligibility as a pure function of a cadre's facts, a month and the policy book.

No database here: the same function serves one cadre after an event and a whole batch.
Every item says why (a reason), what it came from (the event behind it) and which policy
version priced it.
"""

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from uuid import UUID

import orjson

from services.incentives.policies import CENT, LEVEL_RANK, RUNG_KINDS, PolicyBook, PolicyKind
from shared.clock import format_month, month_end
from shared.contracts.enums import ActionStatus, EntryReason, EntryStatus, HonorLevel

ZERO = Decimal("0.00")
# Deductions a month's gross pay could not absorb move on to the cadre's next month as a
# deduction of this kind (README, "Money on a line"), until they are consumed.
CARRIED_FORWARD = "carried_forward"
CARRY_SOURCE = "incentives.eligibility"


def fmt(amount: Decimal) -> str:
    """Money on the wire: 2 places, never '-0.00'."""
    return str(amount.quantize(CENT) + ZERO)


def prorate(monthly: Decimal, days: int, days_in_month: int) -> Decimal:
    return (monthly * days / days_in_month).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Source:
    type: str  # the event type behind the item, e.g. registry.posting.ended
    id: str  # that event's envelope event_id


@dataclass(frozen=True)
class PostingFact:
    posting_id: UUID
    unit_id: UUID
    role: str
    start: date
    end: date | None
    source: Source


@dataclass(frozen=True)
class StateFact:
    effective_date: date
    category: str
    position: str | None
    active: bool
    source: Source


@dataclass(frozen=True)
class HonorFact:
    honor_id: UUID
    level: str
    year: int
    title: str
    revoked: bool
    source: Source


@dataclass(frozen=True)
class ActionFact:
    action_id: UUID
    entry_id: UUID
    entry_date: date
    rung: str
    count: int
    status: str
    source: Source


@dataclass(frozen=True)
class VerdictFact:
    week: str
    week_sunday: date
    compliant: bool
    days: int
    nights: int
    leave_days: int
    source: Source


@dataclass(frozen=True)
class EntryFact:
    entry_id: UUID
    reason: str
    entry_date: date
    status: str


@dataclass
class CadreFacts:
    cadre_id: UUID
    postings: list[PostingFact] = field(default_factory=list)
    states: list[StateFact] = field(default_factory=list)
    honors: list[HonorFact] = field(default_factory=list)
    actions: list[ActionFact] = field(default_factory=list)
    verdicts: list[VerdictFact] = field(default_factory=list)
    entries: list[EntryFact] = field(default_factory=list)
    # Names for reasons: the units the cadre's postings and home unit point at.
    home_unit: UUID | None = None
    unit_names: dict[UUID, str] = field(default_factory=dict)
    # The newest registry version's position and the date it has been held since.
    position_since: date | None = None
    held_position: str | None = None

    def unit_label(self, unit_id: UUID | None) -> str:
        """'Name (unit <id>)', or just the id while the unit's name is not known yet."""
        name = self.unit_names.get(unit_id) if unit_id else None
        return f"{name} (unit {unit_id})" if name else f"unit {unit_id}"


@dataclass(frozen=True)
class Item:
    kind: str
    amount: Decimal
    reason: str
    source: Source
    policy_version: str

    def wire(self) -> dict:
        return {
            "kind": self.kind,
            "amount": fmt(self.amount),
            "reason": self.reason,
            "source": {"type": self.source.type, "id": self.source.id},
            "policy_version": self.policy_version,
        }


def split_versions(items) -> set[str]:
    """The policy versions items name (a carried-forward item names several, comma-joined)."""
    return {v for i in items for v in i.policy_version.split(",") if v}


@dataclass(frozen=True)
class Carry:
    """What a month's deductions left over after taking its whole gross pay."""

    amount: Decimal
    month: str  # the month it came from
    policy_versions: str  # of the deductions behind it, comma-joined


def carry_item(cadre_id: UUID, carry: Carry, to_month: str) -> Item:
    return Item(
        CARRIED_FORWARD,
        carry.amount,
        f"carried forward from {carry.month}: deductions of {carry.month} that exceeded its "
        f"gross pay, applied in {to_month}",
        Source(CARRY_SOURCE, f"{cadre_id}@{carry.month}"),
        carry.policy_versions,
    )


@dataclass
class Result:
    """Money identity: gross - deductions_applied = net, and total_deductions (every
    deduction of the month, a carried-in one included) = deductions_applied +
    carried_forward. Net is never below zero; what it could not take is carried forward.
    A result is never changed once computed: its sums and JSON are computed once."""

    cadre_id: UUID
    month: str
    components: list[Item]
    deductions: list[Item]

    @cached_property
    def gross(self) -> Decimal:
        return sum((i.amount for i in self.components), ZERO)

    @cached_property
    def total_deductions(self) -> Decimal:
        return sum((i.amount for i in self.deductions), ZERO)

    @property
    def deductions_applied(self) -> Decimal:
        return min(self.gross, self.total_deductions)

    @property
    def carried_forward(self) -> Decimal:
        return self.total_deductions - self.deductions_applied

    @property
    def net(self) -> Decimal:
        return self.gross - self.deductions_applied

    @cached_property
    def amounts(self) -> "Money5":
        """(gross, deductions_total, deductions_applied, carried_forward, net) of a line."""
        return line_amounts(self.gross, self.total_deductions)

    def carry_out(self) -> Carry | None:
        if self.carried_forward <= 0:
            return None
        versions = ",".join(sorted(split_versions(self.deductions)))
        return Carry(self.carried_forward, self.month, versions)

    @cached_property
    def policy_versions(self) -> list[str]:
        return sorted(split_versions(self.components + self.deductions))

    @property
    def empty(self) -> bool:
        return not self.components and not self.deductions

    def items_wire(self) -> dict:
        return {
            "components": [i.wire() for i in self.components],
            "deductions": [i.wire() for i in self.deductions],
        }

    @cached_property
    def items_json(self) -> str:
        """items_wire() as canonical JSON (what eligibility and its line store), once."""
        return canonical_json(self.items_wire())


Money5 = tuple[Decimal, Decimal, Decimal, Decimal, Decimal]


def line_amounts(gross: Decimal, total: Decimal) -> Money5:
    """(gross, deductions_total, deductions_applied, carried_forward, net) of gross pay and
    the month's deductions: net never below zero, the rest carried forward."""
    applied = min(gross, total)
    return (gross, total, applied, total - applied, gross - applied)


def canonical_json(value) -> str:
    """Sorted keys, no spaces, UTF-8 as is: the text json.dumps(value, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False) gives for str/int/bool/None/dict/list
    values, by orjson (the string escapes are the same; test_rules checks it)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _days(first: date, last: date):
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)


def posted_days(postings: list[PostingFact], first: date, last: date) -> dict[UUID, int]:
    """Days of the month per posting; a day two postings share (a replacement) is the later's."""
    if len(postings) == 1:  # most cadres: no day to share, the overlap is the answer
        p = postings[0]
        days = (min(p.end or last, last) - max(p.start, first)).days + 1
        return {p.posting_id: days} if days > 0 else {}
    owner: dict[date, PostingFact] = {}
    for p in sorted(postings, key=lambda p: (p.start, str(p.posting_id))):
        lo, hi = max(p.start, first), min(p.end or last, last)
        for d in _days(lo, hi):
            owner[d] = p
    counts: dict[UUID, int] = defaultdict(int)
    for p in owner.values():
        counts[p.posting_id] += 1
    return counts


def state_runs(states: list[StateFact], first: date, last: date) -> list[tuple[StateFact, int]]:
    """(state, days) for each state in force during the month, in order; unknown days skipped."""
    ordered = sorted(states, key=lambda s: s.effective_date)
    runs: list[tuple[StateFact, int]] = []
    # Each state holds from its date (or `first`) to the day before the next one's (or
    # `last`); of states sharing a date the last in order holds, the others hold no day.
    for i, s in enumerate(ordered):
        until = ordered[i + 1].effective_date - timedelta(days=1) if i + 1 < len(ordered) else last
        days = (min(until, last) - max(s.effective_date, first)).days + 1
        if days > 0:
            runs.append((s, days))
    return runs


def position_states(
    states: list[StateFact], since: date | None, held: str | None
) -> list[StateFact]:
    """The states with position `held` in force from `since` on (issue 13, finding 4).

    `since` and `held` are the newest registry version's word: the cadre has held that
    position since that date, and still does. So from `since` every state holds it (a
    state dated later by an older version keeps only its active flag), and a run of it
    just before `since` is not yet that tenure (no position). Earlier states stay as they
    were. Without `since` the states are as recorded (events older than the field).
    """
    if since is None or held is None or not states:
        return states
    ordered = sorted(states, key=lambda s: s.effective_date)
    before = [s for s in ordered if s.effective_date < since]
    cut = len(before)
    while cut and before[cut - 1].position == held:
        cut -= 1
    out = before[:cut] + [replace(s, position=None) for s in before[cut:]]
    anchor = before[-1] if before else ordered[0]
    at = [s for s in ordered if s.effective_date == since]
    anchor = at[-1] if at else anchor
    out.append(replace(anchor, effective_date=since, category="village_cadre", position=held))
    out += [
        replace(s, category="village_cadre", position=held)
        for s in ordered
        if s.effective_date > since
    ]
    # One item per stretch of one state, not one per version that repeated it.
    merged = out[:1]
    for s in out[1:]:
        prev = merged[-1]
        if (s.category, s.position, s.active) != (prev.category, prev.position, prev.active):
            merged.append(s)
    return merged


def _streak(honors: list[HonorFact], min_level: str, years: int, last_year: int):
    """The earliest run of `years` consecutive years with an honor at min_level or above."""
    by_year: dict[int, HonorFact] = {}
    for h in sorted(honors, key=lambda h: (h.year, -LEVEL_RANK[h.level], str(h.honor_id))):
        if LEVEL_RANK[h.level] >= LEVEL_RANK[min_level] and h.year <= last_year:
            by_year.setdefault(h.year, h)
    for start in sorted(by_year):
        run = [by_year.get(start + i) for i in range(years)]
        if all(run):
            return run
    return None


def honor_qualification(
    honors: list[HonorFact], params: dict, year: int
) -> tuple[str, Source] | None:
    """Why a village party secretary holds deputy-section treatment in `year`, if they do.

    Counts honors of years up to `year - from_year_offset` (default: the year after the
    qualifying honor); a higher honor counts as a lower one for the consecutive-year rules.
    """
    live = [h for h in honors if not h.revoked]
    last_year = year - params["from_year_offset"]
    single = sorted(
        (
            h
            for h in live
            if LEVEL_RANK[h.level] >= LEVEL_RANK[params["single_min_level"]] and h.year <= last_year
        ),
        key=lambda h: (h.year, str(h.honor_id)),
    )
    if single:
        h = single[0]
        return f"{h.level} honor {h.year} '{h.title}' (honor {h.honor_id})", h.source
    for level, n in (
        (HonorLevel.prefecture, params["prefecture_consecutive_years"]),
        (HonorLevel.county, params["county_consecutive_years"]),
    ):
        run = _streak(live, level, n, last_year)
        if run:
            years = ", ".join(str(h.year) for h in run)
            ids = ", ".join(str(h.honor_id) for h in run)
            return (
                f"{level}-or-higher honors in {n} consecutive years: {years} (honors {ids})",
                run[-1].source,
            )
    return None


class MonthRules:
    """What compute() takes from the policy book for one month, looked up once per book and
    month (a batch computes every cadre of the county for the same month)."""

    def __init__(self, book: PolicyBook, first: date) -> None:
        self.first = first
        self.last = month_end(first)
        self.dim = self.last.day
        self.month = format_month(first)
        self.subsidy = book.for_month(PolicyKind.posted_subsidy, first)
        self.subsidy_roles = set(self.subsidy.params["roles"]) if self.subsidy else set()
        self.pay = book.for_month(PolicyKind.village_cadre_pay, first)
        self.treatment = book.for_month(PolicyKind.deputy_section_treatment, first)
        self.treatment_positions = (
            set(self.treatment.params["positions"]) if self.treatment else set()
        )
        self.rungs = {rung: book.for_month(kind, first) for rung, kind in RUNG_KINDS.items()}
        self.week_policy = book.for_month(PolicyKind.non_compliant_week, first)

    @classmethod
    def of(cls, book: PolicyBook, first: date) -> "MonthRules":
        months = book.__dict__.setdefault("_month_rules", {})
        rules = months.get(first)
        if rules is None:
            rules = months[first] = cls(book, first)
        return rules


def compute(facts: CadreFacts, first: date, book: PolicyBook, carry: Carry | None = None) -> Result:
    """A cadre's eligibility for the month starting on `first` (DESIGN.md §5, §7.1), with
    what the previous month carried forward (`carry`) as its last deduction.

    Each part is skipped when the facts it reads are empty (most cadres of a month: one
    posting, no village cadre state, no deduction), with the same result as going through."""
    m = MonthRules.of(book, first)
    last, month = m.last, m.month
    components: list[Item] = []
    deductions: list[Item] = []

    subsidy = m.subsidy
    if subsidy and facts.postings:
        roles = m.subsidy_roles
        counts = posted_days(facts.postings, first, last)
        ordered = facts.postings
        if len(ordered) > 1:
            ordered = sorted(ordered, key=lambda p: (p.start, str(p.posting_id)))
        for p in ordered:
            days = counts.get(p.posting_id, 0)
            if p.role not in roles or not days:
                continue
            components.append(_subsidy_item(facts, p, days, m))

    states = position_states(facts.states, facts.position_since, facts.held_position)
    # Pay and treatment are due for village cadre days only: without such a state, neither.
    if any(s.category == "village_cadre" for s in states):
        _village_components(facts, states, m, components)

    if facts.actions:
        entry_status = {e.entry_id: e.status for e in facts.entries}
        entry_reason = {e.entry_id: f" ({e.reason})" for e in facts.entries}
        for a in sorted(facts.actions, key=lambda a: (a.entry_date, str(a.action_id))):
            if not first <= a.entry_date <= last or a.status == ActionStatus.cancelled:
                continue
            # Revoking the entry behind a pending action cancels it (DESIGN.md §4), even
            # before the cancellation itself reaches us.
            if (
                a.status == ActionStatus.pending
                and entry_status.get(a.entry_id) == EntryStatus.revoked
            ):
                continue
            policy = m.rungs[a.rung]
            if policy:
                deductions.append(
                    Item(
                        a.rung,
                        policy.amount("per_action"),
                        f"accountability {a.rung} ({a.status}, count {a.count}) for negative "
                        f"entry{entry_reason.get(a.entry_id, '')} {a.entry_id} dated "
                        f"{a.entry_date.isoformat()} (action {a.action_id})",
                        a.source,
                        policy.version,
                    )
                )

    week_policy = m.week_policy
    if facts.verdicts and week_policy:
        presence = defaultdict(set)
        for e in facts.entries:
            if e.reason == EntryReason.presence_week:
                presence[e.entry_date].add(e.status)
        for v in sorted(facts.verdicts, key=lambda v: v.week):
            if v.compliant or not first <= v.week_sunday <= last:
                continue
            # An entry for that week that was revoked, and none active, clears the deduction.
            if presence.get(v.week_sunday) == {EntryStatus.revoked}:
                continue
            deductions.append(
                Item(
                    PolicyKind.non_compliant_week,
                    week_policy.amount("per_week"),
                    f"week {v.week} (Sunday {v.week_sunday.isoformat()}) not compliant with five "
                    f"days and four nights: {v.days} days, {v.nights} nights, {v.leave_days} "
                    "leave days",
                    v.source,
                    week_policy.version,
                )
            )
    if carry is not None and carry.amount > 0:
        deductions.append(carry_item(facts.cadre_id, carry, month))
    return Result(facts.cadre_id, month, components, deductions)


def _subsidy_item(facts: CadreFacts, p: PostingFact, days: int, m: MonthRules) -> Item:
    subsidy = m.subsidy
    monthly = subsidy.amount("monthly")
    end = p.end.isoformat() if p.end else "open"
    return Item(
        PolicyKind.posted_subsidy,
        prorate(monthly, days, m.dim),
        f"posted as {p.role} to {facts.unit_label(p.unit_id)} "
        f"({p.start.isoformat()}..{end}, "
        f"posting {p.posting_id}): {days}/{m.dim} days of {fmt(monthly)}",
        p.source,
        subsidy.version,
    )


def plain_subsidy(facts: CadreFacts, m: MonthRules, carry: Carry | None) -> Item | None:
    """The only item of a plain month, or None when the month is not plain.

    Plain (most cadres of a month): nothing carried in, no accountability action, no
    non-compliant week, no village cadre state (nor a held position that would make one),
    and one posting with days in the month in a role the subsidy pays. compute() then
    gives exactly this item and nothing else (test_rules checks it), so a batch build can
    write the month without the rest of the machinery."""
    if (
        carry is not None
        or facts.actions
        or facts.verdicts
        or len(facts.postings) != 1
        or m.subsidy is None
        or (facts.position_since is not None and facts.held_position is not None and facts.states)
    ):
        return None
    for s in facts.states:
        if s.category == "village_cadre":
            return None
    p = facts.postings[0]
    if p.role not in m.subsidy_roles:
        return None
    days = (min(p.end or m.last, m.last) - max(p.start, m.first)).days + 1
    if days <= 0:
        return None
    return _subsidy_item(facts, p, days, m)


def _village_components(
    facts: CadreFacts, states: list[StateFact], m: MonthRules, components: list[Item]
) -> None:
    """Village cadre pay per state run, and deputy-section treatment (compute's part)."""
    first, dim = m.first, m.dim
    runs = state_runs(states, first, m.last)
    pay = m.pay
    if pay:
        home = f" of {facts.unit_label(facts.home_unit)}" if facts.home_unit else ""
        for state, days in runs:
            if state.category == "village_cadre" and state.active and state.position:
                monthly = pay.amount(state.position)
                components.append(
                    Item(
                        PolicyKind.village_cadre_pay,
                        prorate(monthly, days, dim),
                        f"village cadre, {state.position}{home} from "
                        f"{state.effective_date.isoformat()}: {days}/{dim} days of {fmt(monthly)}",
                        state.source,
                        pay.version,
                    )
                )

    treatment = m.treatment
    if treatment:
        positions = m.treatment_positions
        days = sum(
            n
            for s, n in runs
            if s.category == "village_cadre" and s.active and s.position in positions
        )
        why = days and honor_qualification(facts.honors, treatment.params, first.year)
        if why and days:
            monthly = treatment.amount("monthly")
            components.append(
                Item(
                    PolicyKind.deputy_section_treatment,
                    prorate(monthly, days, dim),
                    f"deputy-section economic treatment for a village party secretary: {why[0]}; "
                    f"{days}/{dim} days of {fmt(monthly)}",
                    why[1],
                    treatment.version,
                )
            )
