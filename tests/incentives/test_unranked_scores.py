"""A month in which a cadre was not ranked (no judged week, issue 13) is no month of
sustained top scores: the promotion channel leaves the cadre out."""

from shared.contracts.assessment import MonthlyScorePublished
from tests.incentives.factories import emit
from tests.incentives.test_promotion import WINDOW, listed, scored
from tests.support import next_version


async def test_an_unranked_month_breaks_the_streak(system):
    steady = await scored(system, "Steady")
    assert await listed(system, "priority_promotion") == ["Steady"]
    await emit(
        system,
        MonthlyScorePublished(
            cadre_id=steady,
            month=WINDOW[3],
            score=None,
            rank=None,
            ranked=False,
            not_ranked_reason="no_judged_week",
            entity_version=next_version(),
        ),
        steady,
    )
    assert await listed(system, "priority_promotion") == []
