"""position_since in the pure rules (issue 13, finding 4): the held position's tenure
starts on it, whichever way it moved, and states older versions dated later follow it."""

from datetime import date

import pytest

from services.incentives.rules import Source, StateFact, position_states, state_runs

SRC = Source("test.event", "e1")


@pytest.fixture
def settled_before_teardown():
    """Pure functions: no system to start or settle."""


def st(day: date, position: str | None, active: bool = True) -> StateFact:
    return StateFact(day, "village_cadre", position, active, SRC)


def days(states, month_first=date(2026, 11, 1), last=date(2026, 11, 30)):
    return [(s.position, s.active, n) for s, n in state_runs(states, month_first, last)]


def test_without_since_the_states_are_as_recorded():
    states = [st(date(2026, 11, 25), "committee_member")]
    assert position_states(states, None, "committee_member") == states
    assert position_states(states, date(2026, 11, 1), None) == states


def test_earlier_since_carries_the_tenure_back():
    states = [st(date(2026, 11, 25), "party_secretary"), st(date(2026, 11, 28), "party_secretary")]
    out = position_states(states, date(2026, 11, 10), "party_secretary")
    assert days(out) == [("party_secretary", True, 21)]


def test_later_since_leaves_the_days_before_without_a_position():
    states = [st(date(2026, 11, 1), "party_secretary")]
    out = position_states(states, date(2026, 11, 16), "party_secretary")
    assert days(out) == [(None, True, 15), ("party_secretary", True, 15)]


def test_an_earlier_position_stays_and_a_stale_later_state_follows_the_newest_word():
    states = [
        st(date(2026, 1, 1), "committee_member"),
        st(date(2026, 11, 20), "committee_member"),  # registered here, an older version
    ]
    out = position_states(states, date(2026, 11, 11), "deputy_director")
    assert days(out) == [("committee_member", True, 10), ("deputy_director", True, 20)]


def test_a_deactivation_after_since_keeps_its_flag():
    states = [
        st(date(2026, 11, 1), "party_secretary"),
        st(date(2026, 11, 21), "party_secretary", False),
    ]
    out = position_states(states, date(2026, 10, 1), "party_secretary")
    assert days(out) == [("party_secretary", True, 20), ("party_secretary", False, 10)]
