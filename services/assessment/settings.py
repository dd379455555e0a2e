"""Assessment settings: where its data lives, and the policy its rules read (DESIGN.md §4).

Every threshold and window the seed leaves open is a policy setting here, with the
documented default, overridable by FRONTLINE_ASSESSMENT_<NAME>.
"""

from datetime import time
from decimal import Decimal

from pydantic_settings import SettingsConfigDict

from shared.contracts.enums import PostingRole
from shared.settings import ServiceSettings


class AssessmentSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FRONTLINE_ASSESSMENT_", extra="ignore")

    # Five days, four nights (五天四夜): the windows are local times, end exclusive.
    day_start: time = time(6, 0)
    day_end: time = time(20, 0)
    night_start: time = time(20, 0)
    night_end: time = time(6, 0)
    min_days: int = 5
    min_nights: int = 4
    # Which posting roles the week rule applies to (all front-line roles by default).
    judged_roles: list[PostingRole] = list(PostingRole)

    # Sign-in validation.
    offline_window_days: int = 14
    future_tolerance_seconds: int = 300
    max_speed_kmh: float = 200.0
    accuracy_cap_m: float = 100.0
    batch_max_items: int = 500

    # Findings, leave.
    appeal_window_days: int = 7
    return_grace_days: int = 1

    # Monthly assessment score (一月一考核评比): points out of 100 before deductions.
    score_attendance_weight: Decimal = Decimal("60")
    score_task_weight: Decimal = Decimal("40")
    score_deduction_minor: Decimal = Decimal("5")
    score_deduction_major: Decimal = Decimal("10")
    score_deduction_serious: Decimal = Decimal("20")
    # Rule violations (presence week, not returned, duty missed, task overdue).
    score_deduction_violation: Decimal = Decimal("5")

    # Scheduler: how often it looks for a week or period that has ended.
    scheduler_tick_seconds: float = 60.0


def policy_of(settings: ServiceSettings) -> AssessmentSettings:
    """The assessment policy, also when the runtime was given plain ServiceSettings (tests)."""
    if isinstance(settings, AssessmentSettings):
        return settings
    return AssessmentSettings(**settings.model_dump(exclude_unset=True))
