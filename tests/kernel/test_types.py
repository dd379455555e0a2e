"""The kernel's wire types: what text, dates, months and weeks refuse, and what they keep."""

from datetime import date

import pytest
from pydantic import BaseModel, ValidationError

from shared.clock import parse_month, parse_week
from shared.errors import InvalidInput
from shared.types import Day, JsonObject, Month, MultilineText, Text, Week


class Body(BaseModel):
    line: Text = ""
    lines: MultilineText = ""
    day: Day | None = None
    month: Month | None = None
    week: Week | None = None
    data: JsonObject = {}


def refused(**fields) -> str:
    with pytest.raises(ValidationError) as err:
        Body(**fields)
    [error] = err.value.errors()
    return error["loc"][0]


@pytest.mark.parametrize(
    "char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u202e", "\u2066", "\u200f", "\ud800"]
)
def test_control_bidi_and_surrogate_characters_are_refused_in_any_text(char):
    assert refused(line=f"a{char}b") == "line"
    assert refused(lines=f"a{char}b") == "lines"
    assert refused(data={"k": [f"a{char}"]}) == "data"
    assert refused(data={f"k{char}": 1}) == "data"


def test_tab_and_newline_only_in_multiline_text():
    for char in "\t\n\r":
        assert refused(line=f"a{char}b") == "line"
    assert Body(lines="one\ttwo\r\nthree\rfour").lines == "one\ttwo\nthree\nfour"
    # What people really type is kept: accents, CJK, emoji, a zero-width joiner.
    assert Body(line="Lǚ 吕 👩\u200d🌾").line == "Lǚ 吕 👩\u200d🌾"


def test_json_objects_refuse_infinite_numbers_and_deep_nesting():
    assert refused(data={"x": float("inf")}) == "data"
    deep: dict = {}
    for _ in range(10):
        deep = {"d": deep}
    assert refused(data=deep) == "data"
    assert Body(data={"a": [1, "x", {"b": None}]}).data == {"a": [1, "x", {"b": None}]}


def test_the_date_window_boundaries():
    assert Body(day=date(2000, 1, 1)).day == date(2000, 1, 1)
    assert Body(day=date(2100, 12, 31)).day == date(2100, 12, 31)
    assert refused(day=date(1999, 12, 31)) == "day"
    assert refused(day=date(2101, 1, 1)) == "day"
    assert refused(day="9999-12-31") == "day"


def test_months_and_weeks_in_the_window():
    assert Body(month="2000-01", week="2100-W52").month == "2000-01"
    for bad in ("1999-12", "2101-01", "9999-12", "2026-13", "2026-1", "2026-11\n"):
        assert refused(month=bad) == "month"
    for bad in ("1999-W52", "2101-W01", "9999-W52", "2026-W54", "2026-W5"):
        assert refused(week=bad) == "week"
    # 2027 has 52 ISO weeks; 2000-W01 starts on 2000-01-03.
    assert refused(week="2027-W53") == "week"
    assert Body(week="2000-W01").week == "2000-W01"


def test_the_clock_parsers_keep_the_same_window():
    assert parse_month("2100-12") == date(2100, 12, 1)
    assert parse_week("2000-W01") == date(2000, 1, 3)
    for parse, value in [(parse_month, "9999-12"), (parse_week, "9999-W52")]:
        with pytest.raises(InvalidInput) as err:
            parse(value, field="period")
        assert err.value.field == "period"
