"""Wire types every service's schemas use, so hostile input is refused the same way everywhere.

Text refuses what one backend stores and the other chokes on (NUL: PostgreSQL refuses it,
SQLite keeps it), what no form can type (control characters), what reorders a name on
screen (bidi overrides and isolates, Trojan-Source style) and lone surrogates (not UTF-8).
Multi-line text (descriptions, notes, work logs) also allows tab and newline; CRLF is kept
as LF. Dates, months and ISO weeks fall in a window (2000-01-01..2100-12-31): outside it
nothing in Frontline can mean them, and date arithmetic near year 9999 overflows.
Each refusal is a pydantic error, so the API answers 422 problem+json naming the field.
"""

import math
import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Request
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field

from shared.errors import InvalidInput

FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)

# C0 and C1 controls, DEL, LRM/RLM/ALM, bidi embeddings/overrides/isolates, line and
# paragraph separators, lone surrogates. Tab (\x09) and newline (\x0a) are listed apart.
_ALWAYS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_SURROGATES = "\ud800-\udfff"
_SINGLE_LINE = re.compile(f"[\t\n\r{_ALWAYS}{_SURROGATES}]")
_MULTI_LINE = re.compile(f"[\r{_ALWAYS}{_SURROGATES}]")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def _describe(char: str) -> str:
    return f"U+{ord(char):04X}"


def clean_text(value: str) -> str:
    """A single line: no control, bidi-control or surrogate characters (tab and newline too)."""
    bad = _SINGLE_LINE.search(value)
    if bad:
        raise ValueError(f"contains a forbidden character ({_describe(bad[0])})")
    return value


def clean_multiline(value: str) -> str:
    """Like clean_text, but tab and newline are allowed (CRLF and lone CR become LF)."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    bad = _MULTI_LINE.search(value)
    if bad:
        raise ValueError(f"contains a forbidden character ({_describe(bad[0])})")
    return value


def clean_json(value: Any, depth: int = 0) -> Any:
    """Free-form JSON (policy amounts, params): every key and string clean, nesting bounded."""
    if depth > 8:
        raise ValueError("nested too deeply")
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v, depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def in_window(day: date) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"must fall between {FIRST_DAY} and {LAST_DAY}")
    return day


def _moment_in_window(moment: datetime) -> datetime:
    in_window(moment.date())
    return moment


def check_month(value: str) -> str:
    match = _MONTH.match(value)
    if not match or not 1 <= int(match[2]) <= 12:
        raise ValueError("expected a month like 2026-11")
    in_window(date(int(match[1]), int(match[2]), 1))
    return value


def check_week(value: str) -> str:
    match = _WEEK.match(value)
    if not match:
        raise ValueError("expected an ISO week like 2026-W48")
    try:
        monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError as exc:
        raise ValueError(f"no such ISO week: {value}") from exc
    in_window(monday)
    return value


Text = Annotated[str, AfterValidator(clean_text)]
MultilineText = Annotated[str, AfterValidator(clean_multiline)]
JsonObject = Annotated[dict[str, Any], AfterValidator(clean_json)]
Day = Annotated[date, AfterValidator(in_window)]
Moment = Annotated[AwareDatetime, AfterValidator(_moment_in_window)]
Month = Annotated[
    str, Field(pattern=_MONTH.pattern, examples=["2026-11"]), AfterValidator(check_month)
]
Week = Annotated[
    str, Field(pattern=_WEEK.pattern, examples=["2026-W48"]), AfterValidator(check_week)
]


KNOWN_QUERY = "frontline_known_query"  # the attribute a route's allowed names are kept in


def declared_query(dependant: Any) -> frozenset[str]:
    """The query parameter names a route declares, its dependencies' (e.g. `Paging`) included.

    A parameter declared as a pydantic model (`Annotated[Filters, Query()]`) stands for its
    fields. Names are the wire names (aliases: `format` on the exports).
    """
    names: set[str] = set()
    stack = [dependant]
    while stack:
        d = stack.pop()
        for f in d.query_params:
            model = f.field_info.annotation
            if isinstance(model, type) and issubclass(model, BaseModel):
                names.update(info.alias or n for n, info in model.model_fields.items())
            else:
                names.add(f.alias)
        stack.extend(d.dependencies)
    return frozenset(names)


def remember_query(route: Any, dependant: Any | None = None) -> frozenset[str]:
    """Precompute (at startup) the names `route` accepts; a route included twice gets both."""
    names = declared_query(dependant if dependant is not None else route.dependant)
    known = getattr(route, KNOWN_QUERY, None)
    names = names | known if known is not None else names
    setattr(route, KNOWN_QUERY, names)
    return names


async def clean_params(request: Request) -> None:
    """Every route's query and path parameters are declared, single-line text.

    Installed on each service's router by the kernel, so a NUL in `?status=` or a path
    segment is a 422 naming the parameter on both backends, not a driver error on one; and
    a query parameter the route does not declare (a misspelt or unsupported filter) is a 422
    `unknown_parameter` naming it, never silently ignored (a list that ignored `?reason=`
    would look filtered and not be). The allowed names are computed once per route at
    startup (`remember_query`), so the check is a set lookup per parameter.
    """
    for name, value in request.path_params.items():
        if isinstance(value, str) and _SINGLE_LINE.search(value):
            raise InvalidInput(name, "contains a forbidden character")
    query = request.query_params
    if not query:
        return
    route = request.scope.get("route")
    known = getattr(route, KNOWN_QUERY, None)
    if known is None and route is not None:
        known = remember_query(route)
    for name, value in query.multi_items():
        if known is not None and name not in known:
            raise InvalidInput(
                name[:100],
                "unknown query parameter",
                code="unknown_parameter",
                allowed=sorted(known),
            )
        if _SINGLE_LINE.search(value):
            raise InvalidInput(name, "contains a forbidden character")
