"""One call per route and target township: what each route is asked in the matrix.

`make(w, side)` returns the request (url plus params, json, data or files). A write that
may succeed gets a fresh target on every call, so each principal meets the same state.
"""

import calendar
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from shared.contracts.enums import Role
from tests.authz.world import PASSWORD, Side, World

Make = Callable[[World, Side], Awaitable[dict[str, Any]]]
CASES: dict[tuple[str, str], Make] = {}
_policy_months = itertools.count(0)
R, A, INC = "/registry/v1", "/assessment/v1", "/incentives/v1"


def case(method: str, path: str):
    def register(fn: Make) -> Make:
        CASES[(method, path)] = fn
        return fn

    return register


def simple(method: str, path: str, make: Callable[[World, Side], dict[str, Any]]) -> None:
    async def fn(w: World, s: Side) -> dict[str, Any]:
        return make(w, s)

    CASES[(method, path)] = fn


# --- public ---------------------------------------------------------------------------------
for svc in ("registry", "assessment", "incentives"):
    for tail in ("health", "health/live", "version", "metrics", "asyncapi.json"):
        simple("GET", f"/{svc}/{tail}", lambda w, s, svc=svc, tail=tail: {"url": f"/{svc}/{tail}"})
    simple("GET", f"/{svc}/v1/audit", lambda w, s, svc=svc: {"url": f"/{svc}/v1/audit"})
    simple("GET", f"/{svc}/openapi.json", lambda w, s, svc=svc: {"url": f"/{svc}/openapi.json"})
simple(
    "GET",
    "/registry/.well-known/jwks.json",
    lambda w, s: {"url": "/registry/.well-known/jwks.json"},
)

simple(
    "POST",
    f"{R}/auth/token",
    lambda w, s: {"url": f"{R}/auth/token", "data": {"username": s.username, "password": PASSWORD}},
)

# --- registry: users ------------------------------------------------------------------------


@case("POST", f"{R}/users")
async def _(w, s):
    cadre = await w.cadre(s)
    body = {"username": f"new{cadre[:8]}", "password": PASSWORD, "roles": ["cadre"]}
    return {"url": f"{R}/users", "json": body | {"cadre_id": cadre, "unit_id": s.village}}


simple("GET", f"{R}/users", lambda w, s: {"url": f"{R}/users", "params": {"unit_id": s.town}})
simple("GET", f"{R}/users/me", lambda w, s: {"url": f"{R}/users/me"})
simple(
    "POST",
    f"{R}/users/me/password",
    lambda w, s: {
        "url": f"{R}/users/me/password",
        "json": {"current_password": PASSWORD, "new_password": PASSWORD},
    },
)
simple("GET", f"{R}/users/{{user_id}}", lambda w, s: {"url": f"{R}/users/{s.user}"})


@case("PATCH", f"{R}/users/{{user_id}}")
async def _(w, s):
    user = await w.user(s, ["inspector"])
    return {"url": f"{R}/users/{user['id']}", "json": {"unit_id": s.village_b}}


simple(
    "POST",
    f"{R}/users/{{user_id}}/password",
    lambda w, s: {"url": f"{R}/users/{s.reset_user}/password", "json": {"new_password": PASSWORD}},
)


@case("POST", f"{R}/users/{{user_id}}/deactivate")
async def _(w, s):
    return {"url": f"{R}/users/{(await w.user(s, ['inspector']))['id']}/deactivate"}


@case("POST", f"{R}/users/{{user_id}}/activate")
async def _(w, s):
    user = (await w.user(s, ["inspector"]))["id"]
    await w.call("POST", f"{R}/users/{user}/deactivate")
    return {"url": f"{R}/users/{user}/activate"}


# --- registry: units ------------------------------------------------------------------------


@case("POST", f"{R}/org-units")
async def _(w, s):
    i = await _tick()
    body = {"code": f"NEW{i:07d}", "name": f"new group {i}", "kind": "group"}
    return {"url": f"{R}/org-units", "json": body | {"parent_id": s.village}}


_ticks = [0]


async def _tick() -> int:
    _ticks[0] += 1
    return _ticks[0] * 1000


simple(
    "GET", f"{R}/org-units", lambda w, s: {"url": f"{R}/org-units", "params": {"unit_id": s.town}}
)
simple("GET", f"{R}/org-units/{{unit_id}}", lambda w, s: {"url": f"{R}/org-units/{s.village}"})
simple(
    "GET",
    f"{R}/org-units/{{unit_id}}/history",
    lambda w, s: {"url": f"{R}/org-units/{s.village}/history"},
)


@case("PATCH", f"{R}/org-units/{{unit_id}}")
async def _(w, s):
    unit = await w.unit("group", s.village)
    return {"url": f"{R}/org-units/{unit}", "json": {"name": "renamed"}}


@case("POST", f"{R}/org-units/{{unit_id}}/move")
async def _(w, s):
    unit = await w.unit("group", s.village)
    return {"url": f"{R}/org-units/{unit}/move", "json": {"parent_id": s.village_b}}


# --- registry: cadres, honors, postings -----------------------------------------------------


@case("POST", f"{R}/cadres")
async def _(w, s):
    i = await _tick()
    body = {"name": "New", "phone": f"137{i:08d}", "category": "resident_cadre"}
    return {"url": f"{R}/cadres", "json": body | {"unit_id": s.village}}


simple("GET", f"{R}/cadres", lambda w, s: {"url": f"{R}/cadres", "params": {"unit_id": s.town}})
simple("GET", f"{R}/cadres/{{cadre_id}}", lambda w, s: {"url": f"{R}/cadres/{s.cadre}"})


@case("PATCH", f"{R}/cadres/{{cadre_id}}")
async def _(w, s):
    return {"url": f"{R}/cadres/{await w.cadre(s)}", "json": {"name": "Renamed"}}


@case("POST", f"{R}/cadres/{{cadre_id}}/deactivate")
async def _(w, s):
    return {"url": f"{R}/cadres/{await w.cadre(s)}/deactivate"}


@case("POST", f"{R}/cadres/{{cadre_id}}/activate")
async def _(w, s):
    cadre = await w.cadre(s)
    await w.call("POST", f"{R}/cadres/{cadre}/deactivate")
    return {"url": f"{R}/cadres/{cadre}/activate"}


@case("POST", f"{R}/honors")
async def _(w, s):
    i = await _tick()
    body = {"cadre_id": s.cadre, "level": "county", "year": 2024, "title": f"Honor {i}"}
    return {"url": f"{R}/honors", "json": body}


simple("GET", f"{R}/honors", lambda w, s: {"url": f"{R}/honors", "params": {"cadre_id": s.cadre}})
simple("GET", f"{R}/honors/{{honor_id}}", lambda w, s: {"url": f"{R}/honors/{s.honor}"})


@case("POST", f"{R}/honors/{{honor_id}}/revoke")
async def _(w, s):
    return {"url": f"{R}/honors/{await w.honor(s)}/revoke", "json": {"reason": "error"}}


@case("POST", f"{R}/postings")
async def _(w, s):
    body = {"cadre_id": await w.cadre(s), "unit_id": s.village, "role": "member"}
    return {"url": f"{R}/postings", "json": body | {"start_date": "2026-02-01"}}


simple("GET", f"{R}/postings", lambda w, s: {"url": f"{R}/postings", "params": {"unit_id": s.town}})
simple("GET", f"{R}/postings/{{posting_id}}", lambda w, s: {"url": f"{R}/postings/{s.posting}"})


@case("POST", f"{R}/postings/{{posting_id}}/end")
async def _(w, s):
    posting = await w.posting(await w.cadre(s), s.village)
    body = {"end_date": "2026-06-30", "reason": "completed"}
    return {"url": f"{R}/postings/{posting}/end", "json": body}


@case("POST", f"{R}/postings/{{posting_id}}/replace")
async def _(w, s):
    posting = await w.posting(await w.cadre(s), s.village)
    return {"url": f"{R}/postings/{posting}/replace", "json": {"end_date": "2026-06-30"}}


# --- registry: households, pairings, training, imports --------------------------------------


@case("POST", f"{R}/households")
async def _(w, s):
    body = {"village_id": s.village, "code": f"NH{await _tick():07d}", "head_name": "Head"}
    return {"url": f"{R}/households", "json": body}


simple(
    "GET", f"{R}/households", lambda w, s: {"url": f"{R}/households", "params": {"unit_id": s.town}}
)
simple(
    "GET", f"{R}/households/{{household_id}}", lambda w, s: {"url": f"{R}/households/{s.household}"}
)


@case("POST", f"{R}/pairings")
async def _(w, s):
    body = {"cadre_id": s.cadre, "household_id": await w.household(s), "start_date": "2026-03-01"}
    return {"url": f"{R}/pairings", "json": body}


simple(
    "GET", f"{R}/pairings", lambda w, s: {"url": f"{R}/pairings", "params": {"cadre_id": s.cadre}}
)
simple("GET", f"{R}/pairings/{{pairing_id}}", lambda w, s: {"url": f"{R}/pairings/{s.pairing}"})


@case("POST", f"{R}/pairings/{{pairing_id}}/end")
async def _(w, s):
    return {"url": f"{R}/pairings/{await w.pairing(s)}/end", "json": {"end_date": "2026-10-31"}}


@case("POST", f"{R}/training-sessions")
async def _(w, s):
    body = {"kind": "concentrated", "title": "New", "unit_id": s.town, "start_date": "2026-04-01"}
    return {"url": f"{R}/training-sessions", "json": body}


simple(
    "GET",
    f"{R}/training-sessions",
    lambda w, s: {"url": f"{R}/training-sessions", "params": {"unit_id": s.town}},
)
simple(
    "GET",
    f"{R}/training-sessions/{{session_id}}",
    lambda w, s: {"url": f"{R}/training-sessions/{s.training}"},
)
simple(
    "POST",
    f"{R}/training-sessions/{{session_id}}/attendees",
    lambda w, s: {
        "url": f"{R}/training-sessions/{s.training}/attendees",
        "json": {"cadre_ids": [s.cadre]},
    },
)
simple(
    "GET",
    f"{R}/training-sessions/{{session_id}}/attendees",
    lambda w, s: {"url": f"{R}/training-sessions/{s.training}/attendees"},
)


@case("DELETE", f"{R}/training-sessions/{{session_id}}/attendees/{{cadre_id}}")
async def _(w, s):
    session = await w.training(s, [s.cadre])
    return {"url": f"{R}/training-sessions/{session}/attendees/{s.cadre}"}


simple(
    "GET",
    f"{R}/training-stats",
    lambda w, s: {"url": f"{R}/training-stats", "params": {"unit_id": s.town}},
)


def csv(text: str) -> dict:
    return {"file": ("rows.csv", text.encode(), "text/csv")}


async def _unit_code(w: World, unit: str) -> str:
    return (await w.call("GET", f"{R}/org-units/{unit}"))["code"]


@case("POST", f"{R}/imports/org-units")
async def _(w, s):
    code = f"IMP{await _tick():07d}"
    rows = f"code,name,kind,parent_code\n{code},Imported,group,{await _unit_code(w, s.village)}\n"
    return {"url": f"{R}/imports/org-units", "files": csv(rows)}


@case("POST", f"{R}/imports/cadres")
async def _(w, s):
    phone = f"136{await _tick():08d}"
    rows = (
        "name,phone,category,unit_code,role,start_date\n"
        f"Imported,{phone},resident_cadre,{await _unit_code(w, s.village)},member,2026-02-01\n"
    )
    return {"url": f"{R}/imports/cadres", "files": csv(rows)}


@case("POST", f"{R}/imports/postings")
async def _(w, s):
    cadre = await w.call("GET", f"{R}/cadres/{await w.cadre(s)}")
    rows = (
        "phone,unit_code,role,start_date\n"
        f"{cadre['phone']},{await _unit_code(w, s.village)},member,2026-02-01\n"
    )
    return {"url": f"{R}/imports/postings", "files": csv(rows)}


# --- assessment -----------------------------------------------------------------------------


@case("POST", f"{A}/sign-ins")
async def _(w, s):
    return {"url": f"{A}/sign-ins", "json": w.signin_body(s)}


@case("POST", f"{A}/sign-ins/batch")
async def _(w, s):
    return {"url": f"{A}/sign-ins/batch", "json": {"items": [w.signin_body(s)]}}


simple(
    "GET",
    f"{A}/sign-ins",
    lambda w, s: {"url": f"{A}/sign-ins", "params": {"cadre_id": s.cadre, "unit_id": s.town}},
)


simple(
    "GET",
    f"{A}/cadres/{{cadre_id}}/presence",
    lambda w, s: {"url": f"{A}/cadres/{s.cadre}/presence", "params": {"week": "2026-W48"}},
)
simple(
    "GET",
    f"{A}/units/{{unit_id}}/presence",
    lambda w, s: {"url": f"{A}/units/{s.town}/presence", "params": {"week": "2026-W48"}},
)
simple("POST", f"{A}/weeks/{{week}}/close", lambda w, s: {"url": f"{A}/weeks/2026-W47/close"})
simple(
    "GET",
    f"{A}/negative-list",
    lambda w, s: {
        "url": f"{A}/negative-list",
        "params": {"month": "2026-11", "unit_id": s.town, "subject_id": s.cadre},
    },
)
simple(
    "GET",
    f"{A}/accountability-actions",
    lambda w, s: {"url": f"{A}/accountability-actions", "params": {"cadre_id": s.cadre}},
)


@case("POST", f"{A}/accountability-actions/{{action_id}}/carry-out")
async def _(w, s):
    action = await w.action(s)
    body = {"note": "done"} | ({"measure": "admonishment"} if action["rung"] == "penalty" else {})
    return {"url": f"{A}/accountability-actions/{action['id']}/carry-out", "json": body}


@case("POST", f"{A}/findings")
async def _(w, s):
    return {"url": f"{A}/findings", "json": w.finding_body(s)}


simple(
    "GET",
    f"{A}/findings",
    lambda w, s: {"url": f"{A}/findings", "params": {"unit_id": s.town, "subject_id": s.cadre}},
)
simple("GET", f"{A}/findings/{{finding_id}}", lambda w, s: {"url": f"{A}/findings/{s.finding}"})


@case("POST", f"{A}/findings/{{finding_id}}/dismiss")
async def _(w, s):
    finding = await w.finding(s)
    return {"url": f"{A}/findings/{finding['id']}/dismiss", "json": {"reason": "mistaken"}}


@case("POST", f"{A}/findings/{{finding_id}}/appeal")
async def _(w, s):
    finding = await w.finding(s)
    return {"url": f"{A}/findings/{finding['id']}/appeal", "json": {"reason": "I was there"}}


@case("POST", f"{A}/findings/{{finding_id}}/appeal/decide")
async def _(w, s):
    finding = (await w.finding(s))["id"]
    await w.asm(f"/findings/{finding}/appeal", {"reason": "I was there"}, headers=w.as_cadre(s))
    return {"url": f"{A}/findings/{finding}/appeal/decide", "json": {"upheld": False}}


@case("POST", f"{A}/leave-requests")
async def _(w, s):
    return {"url": f"{A}/leave-requests", "json": w.leave_body(s, w.future())}


simple(
    "GET",
    f"{A}/leave-requests",
    lambda w, s: {"url": f"{A}/leave-requests", "params": {"cadre_id": s.cadre}},
)
simple(
    "GET", f"{A}/leave-requests/{{leave_id}}", lambda w, s: {"url": f"{A}/leave-requests/{s.leave}"}
)


@case("POST", f"{A}/leave-requests/{{leave_id}}/approve")
async def _(w, s):
    return {"url": f"{A}/leave-requests/{await w.leave(s)}/approve"}


@case("POST", f"{A}/leave-requests/{{leave_id}}/reject")
async def _(w, s):
    return {"url": f"{A}/leave-requests/{await w.leave(s)}/reject"}


@case("POST", f"{A}/leave-requests/{{leave_id}}/cancel")
async def _(w, s):
    return {"url": f"{A}/leave-requests/{await w.leave(s)}/cancel", "json": {"reason": "plans"}}


@case("POST", f"{A}/leave-requests/{{leave_id}}/return")
async def _(w, s):
    return {"url": f"{A}/leave-requests/{await w.leave(s, w.past(), approve=True)}/return"}


@case("POST", f"{A}/duty-rosters")
async def _(w, s):
    body = {"unit_id": s.village, "duties": [{"cadre_id": s.cadre, "duty_date": "2026-12-01"}]}
    return {"url": f"{A}/duty-rosters", "json": body}


simple(
    "GET", f"{A}/duty-rosters/{{roster_id}}", lambda w, s: {"url": f"{A}/duty-rosters/{s.roster}"}
)


@case("POST", f"{A}/work-logs")
async def _(w, s):
    day = w.past().isoformat()
    return {"url": f"{A}/work-logs", "json": {"cadre_id": s.cadre, "log_date": day, "text": "x"}}


simple(
    "GET", f"{A}/work-logs", lambda w, s: {"url": f"{A}/work-logs", "params": {"cadre_id": s.cadre}}
)


@case("POST", f"{A}/tasks")
async def _(w, s):
    body = {
        "unit_id": s.village,
        "quarter": "2026-Q4",
        "title": "New task",
        "assignee_id": s.cadre,
        "deadline": "2026-12-20",
    }
    return {"url": f"{A}/tasks", "json": body}


simple("GET", f"{A}/tasks", lambda w, s: {"url": f"{A}/tasks", "params": {"unit_id": s.town}})


@case("POST", f"{A}/tasks/{{task_id}}/complete")
async def _(w, s):
    return {"url": f"{A}/tasks/{await w.task(s)}/complete"}


simple(
    "POST",
    f"{A}/reports",
    lambda w, s: {"url": f"{A}/reports", "json": {"kind": "weekly_dispatch", "period": "2026-W47"}},
)
simple(
    "GET",
    f"{A}/reports/{{kind}}/{{period}}",
    lambda w, s: {"url": f"{A}/reports/weekly_dispatch/2026-W47"},
)
simple(
    "GET",
    f"{A}/monthly-scores",
    lambda w, s: {
        "url": f"{A}/monthly-scores",
        "params": {"month": "2026-10", "township_id": s.town},
    },
)

# --- incentives -----------------------------------------------------------------------------

simple("GET", f"{INC}/policies", lambda w, s: {"url": f"{INC}/policies"})
simple(
    "GET",
    f"{INC}/policies/{{version}}",
    lambda w, s: {"url": f"{INC}/policies/posted_subsidy@2018-01-01"},
)


def _policy_body() -> dict[str, Any]:
    """A pay policy version for a month of its own: proposals never overlap each other."""
    i = next(_policy_months)
    year, month = 2030 + i // 12, i % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return {
        "kind": "posted_subsidy",
        "effective_from": f"{year}-{month:02d}-01",
        "effective_to": f"{year}-{month:02d}-{last}",
        "amounts": {"monthly": "2100.00"},
        "params": {"roles": ["first_secretary", "team_leader", "member"]},
    }


@case("POST", f"{INC}/policies")
async def _(w, s):
    return {"url": f"{INC}/policies", "json": _policy_body()}


async def _proposal(w) -> str:
    """A fresh proposed pay policy version, by a finance user no principal is."""
    body = _policy_body()
    proposer = w.system.headers(Role.finance, username="proposer")
    return (await w.call("POST", f"{INC}/policies", json=body, headers=proposer))["id"]


@case("POST", f"{INC}/policies/{{version}}/approve")
async def _(w, s):
    return {"url": f"{INC}/policies/{await _proposal(w)}/approve"}


@case("POST", f"{INC}/policies/{{version}}/reject")
async def _(w, s):
    return {"url": f"{INC}/policies/{await _proposal(w)}/reject", "json": {"note": "no"}}


simple(
    "GET",
    f"{INC}/eligibility/{{cadre_id}}",
    lambda w, s: {"url": f"{INC}/eligibility/{s.cadre}", "params": {"month": "2026-10"}},
)


@case("POST", f"{INC}/stipend-batches")
async def _(w, s):
    return {"url": f"{INC}/stipend-batches", "json": {"month": w.month()}}


simple("GET", f"{INC}/stipend-batches", lambda w, s: {"url": f"{INC}/stipend-batches"})
simple(
    "GET",
    f"{INC}/stipend-batches/{{batch_id}}",
    lambda w, s: {"url": f"{INC}/stipend-batches/{w.stipend}"},
)
simple(
    "GET",
    f"{INC}/stipend-batches/{{batch_id}}/lines",
    lambda w, s: {"url": f"{INC}/stipend-batches/{w.stipend}/lines", "params": {"unit_id": s.town}},
)
simple(
    "GET",
    f"{INC}/stipend-batches/{{batch_id}}/export",
    lambda w, s: {"url": f"{INC}/stipend-batches/{w.stipend}/export", "params": {"format": "csv"}},
)

simple(
    "GET",
    f"{INC}/cadres/{{cadre_id}}/lines",
    lambda w, s: {"url": f"{INC}/cadres/{s.cadre}/lines", "params": {"month": "2026-10"}},
)


@case("GET", f"{INC}/stipend-batches/{{batch_id}}/payment-file")
async def _(w, s):
    return {"url": f"{INC}/stipend-batches/{await w.batch(lock=True)}/payment-file"}


@case("POST", f"{INC}/stipend-batches/{{batch_id}}/lock")
async def _(w, s):
    return {"url": f"{INC}/stipend-batches/{await w.batch()}/lock"}


@case("POST", f"{INC}/stipend-batches/{{batch_id}}/pay")
async def _(w, s):
    return {"url": f"{INC}/stipend-batches/{await w.batch(lock=True)}/pay"}


simple(
    "GET",
    f"{INC}/promotion-candidates",
    lambda w, s: {
        "url": f"{INC}/promotion-candidates",
        "params": {"channel": "priority_promotion", "month": "2026-10", "unit_id": s.town},
    },
)
