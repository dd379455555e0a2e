"""Policy kinds, their validation, the seeded defaults, and the book that picks a version.

Versions are month-granular (from the 1st of a month to the last day of a month), so each
kind has at most one version per month and every stipend line names exactly one per kind.
Which defaults come from the seed and which are ours: services/incentives/README.md.
"""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from shared.contracts.enums import CadreCategory, HonorLevel, Position, PostingRole, Rung
from shared.errors import InvalidInput

CENT = Decimal("0.01")


class PolicyKind(StrEnum):
    posted_subsidy = "posted_subsidy"
    village_cadre_pay = "village_cadre_pay"
    deputy_section_treatment = "deputy_section_treatment"
    study_class = "study_class"
    admonition_talk = "admonition_talk"
    penalty = "penalty"
    non_compliant_week = "non_compliant_week"
    priority_promotion = "priority_promotion"
    targeted_recruitment = "targeted_recruitment"


COMPONENT_KINDS = (
    PolicyKind.posted_subsidy,
    PolicyKind.village_cadre_pay,
    PolicyKind.deputy_section_treatment,
)
RUNG_KINDS = {
    Rung.study_class: PolicyKind.study_class,
    Rung.admonition_talk: PolicyKind.admonition_talk,
    Rung.penalty: PolicyKind.penalty,
}
LEVEL_RANK = {
    HonorLevel.county: 1,
    HonorLevel.prefecture: 2,
    HonorLevel.province: 3,
    HonorLevel.national: 4,
}

# Which amount keys each kind carries (all CNY, 2 places).
AMOUNT_KEYS: dict[PolicyKind, tuple[str, ...]] = {
    PolicyKind.posted_subsidy: ("monthly",),
    PolicyKind.village_cadre_pay: tuple(p.value for p in Position),
    PolicyKind.deputy_section_treatment: ("monthly",),
    PolicyKind.study_class: ("per_action",),
    PolicyKind.admonition_talk: ("per_action",),
    PolicyKind.penalty: ("per_action",),
    PolicyKind.non_compliant_week: ("per_week",),
    PolicyKind.priority_promotion: (),
    PolicyKind.targeted_recruitment: (),
}

SEED_FROM = date(2018, 1, 1)  # the seed reports the county's 2018 scheme
_PROMOTION_PARAMS = {"window_months": 6, "max_rank": 10, "min_score": None}
DEFAULTS: list[dict[str, Any]] = [
    {
        "kind": PolicyKind.posted_subsidy,
        "amounts": {"monthly": "2000.00"},
        "params": {"roles": ["first_secretary", "team_leader", "member"]},
        "note": "seed: 2,000 CNY per month while posted to a village, pro-rated by days",
    },
    {
        "kind": PolicyKind.village_cadre_pay,
        # Ours: the seed gives only the county average (1,750 -> 2,560); these average 2,560.
        "amounts": {
            "party_secretary": "3000.00",
            "committee_director": "2800.00",
            "deputy_director": "2400.00",
            "committee_member": "2040.00",
        },
        "params": {},
        "note": "ours per position, around the seed's county average of 2,560 CNY",
    },
    {
        "kind": PolicyKind.deputy_section_treatment,
        "amounts": {"monthly": "1500.00"},
        "params": {
            "positions": ["party_secretary"],
            "single_min_level": "province",
            "prefecture_consecutive_years": 2,
            "county_consecutive_years": 3,
            "from_year_offset": 1,
        },
        "note": "seed: the qualifying rule; ours: the amount and that it starts the year after",
    },
    {
        "kind": PolicyKind.study_class,
        "amounts": {"per_action": "200.00"},
        "params": {},
        "note": "ours",
    },
    {
        "kind": PolicyKind.admonition_talk,
        "amounts": {"per_action": "500.00"},
        "params": {},
        "note": "ours",
    },
    {
        "kind": PolicyKind.penalty,
        "amounts": {"per_action": "1000.00"},
        "params": {},
        "note": "ours",
    },
    {
        "kind": PolicyKind.non_compliant_week,
        "amounts": {"per_week": "200.00"},
        "params": {},
        "note": "ours",
    },
    {
        "kind": PolicyKind.priority_promotion,
        "amounts": {},
        "params": {
            **_PROMOTION_PARAMS,
            "categories": ["first_secretary", "resident_cadre", "front_group_member"],
        },
        "note": "ours: top-10 in the township every month for 6 months, no active entry",
    },
    {
        "kind": PolicyKind.targeted_recruitment,
        "amounts": {},
        "params": {**_PROMOTION_PARAMS, "categories": ["village_cadre"]},
        "note": "ours: top-10 in the township every month for 6 months, no active entry",
    },
]


def version_label(kind: str, effective_from: date) -> str:
    return f"{kind}@{effective_from.isoformat()}"


def money(value: Any, field: str = "amount") -> Decimal:
    """A non-negative CNY amount with at most 2 places (422 naming the field otherwise)."""
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise InvalidInput(field, "not a decimal amount") from exc
    if not d.is_finite() or d < 0 or d != d.quantize(CENT) or d >= Decimal("1e10"):
        raise InvalidInput(field, "expected a non-negative amount with at most 2 places")
    return d.quantize(CENT)


def _int(params: dict, key: str, low: int, high: int) -> int:
    value = params.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"params.{key}", f"expected an integer from {low} to {high}")
    return value


def _members(params: dict, key: str, allowed: type[StrEnum]) -> list[str]:
    value = params.get(key)
    names = {m.value for m in allowed}
    if not isinstance(value, list) or not value or not all(v in names for v in value):
        raise InvalidInput(f"params.{key}", f"expected a list of: {', '.join(sorted(names))}")
    return sorted(set(value))


def validate(
    kind: PolicyKind, amounts: dict[str, Any], params: dict[str, Any]
) -> tuple[dict, dict]:
    """Normalised (amounts as 2-place strings, params) for a kind; 422 naming the field."""
    keys = AMOUNT_KEYS[kind]
    extra = set(amounts) - set(keys)
    if extra:
        raise InvalidInput(
            f"amounts.{sorted(extra)[0]}", f"{kind} takes only: {', '.join(keys) or 'none'}"
        )
    clean_amounts = {}
    for key in keys:
        if key not in amounts:
            raise InvalidInput(f"amounts.{key}", "missing")
        clean_amounts[key] = str(money(amounts[key], f"amounts.{key}"))
    clean: dict[str, Any] = {}
    if kind == PolicyKind.posted_subsidy:
        clean["roles"] = _members(params, "roles", PostingRole)
    elif kind == PolicyKind.deputy_section_treatment:
        clean["positions"] = _members(params, "positions", Position)
        level = params.get("single_min_level")
        if level not in {m.value for m in HonorLevel}:
            raise InvalidInput("params.single_min_level", "expected an honor level")
        clean["single_min_level"] = level
        clean["prefecture_consecutive_years"] = _int(params, "prefecture_consecutive_years", 1, 20)
        clean["county_consecutive_years"] = _int(params, "county_consecutive_years", 1, 20)
        clean["from_year_offset"] = _int(params, "from_year_offset", 0, 5)
    elif kind in (PolicyKind.priority_promotion, PolicyKind.targeted_recruitment):
        clean["categories"] = _members(params, "categories", CadreCategory)
        clean["window_months"] = _int(params, "window_months", 1, 36)
        clean["max_rank"] = _int(params, "max_rank", 1, 100_000)
        min_score = params.get("min_score")
        if min_score is not None:
            try:
                score = Decimal(str(min_score))
            except InvalidOperation as exc:
                raise InvalidInput("params.min_score", "expected a number or null") from exc
            if not score.is_finite():
                raise InvalidInput("params.min_score", "expected a number or null")
            min_score = str(score)
        clean["min_score"] = min_score
    elif params:
        raise InvalidInput(f"params.{sorted(params)[0]}", f"{kind} takes no params")
    return clean_amounts, clean


@dataclass(frozen=True)
class Policy:
    version: str
    kind: str
    effective_from: date
    effective_to: date | None
    amounts: dict[str, Decimal] = field(hash=False)
    params: dict[str, Any] = field(hash=False)

    def covers(self, day: date) -> bool:
        return self.effective_from <= day and (
            self.effective_to is None or day <= self.effective_to
        )

    def amount(self, key: str) -> Decimal:
        return self.amounts[key]


class PolicyBook:
    """All versions, read once per unit of work (the table is small)."""

    def __init__(self, policies: list[Policy]):
        self.earliest = min((p.effective_from for p in policies), default=None)
        self.by_kind: dict[str, list[Policy]] = {}
        for p in sorted(policies, key=lambda p: p.effective_from):
            self.by_kind.setdefault(p.kind, []).append(p)

    def for_month(self, kind: str, first_day: date) -> Policy | None:
        for p in self.by_kind.get(kind, ()):
            if p.covers(first_day):
                return p
        return None
