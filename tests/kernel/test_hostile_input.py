"""Hostile input is a 422 naming the field on SQLite and PostgreSQL alike, never a 500:
NUL, control and bidi characters in text, bodies, forms, queries and paths; dates, months
and weeks outside 2000-01-01..2100-12-31; cursors tampered with or replayed on another list.
"""

import uuid

import pytest

from shared.contracts.enums import Role
from tests.support import System

R, A, I = "/registry/v1", "/assessment/v1", "/incentives/v1"  # noqa: E741
SOMEONE = str(uuid.uuid4())


def field_of(r) -> str:
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()["field"]


async def test_the_token_form_refuses_control_characters(system: System):
    for username in ["ad\x00min", "ad\u202emin", "ad\tmin"]:
        r = await system.client.post(
            f"{R}/auth/token", data={"username": username, "password": "whatever-it-is"}
        )
        assert field_of(r) == "username"
    r = await system.client.post(
        f"{R}/auth/token", data={"username": "admin", "password": "pass\x00word"}
    )
    assert field_of(r) == "password"


@pytest.mark.parametrize("char", ["\x00", "\x1f", "\u202e", "\n"])
async def test_single_line_text_in_bodies_is_refused_and_nothing_is_written(system, char):
    h = system.headers(Role.org_admin)
    body = {"name": f"Li{char}Wei", "phone": "+86 139 0000 0001", "category": "village_cadre"}
    assert field_of(await system.client.post(f"{R}/cadres", json=body, headers=h)) == "name"
    listed = await system.client.get(f"{R}/cadres", headers=h)
    assert listed.status_code == 200 and listed.json()["items"] == []


async def test_multiline_text_keeps_tab_and_newline_but_not_nul(system: System):
    h = system.headers(Role.finance)
    body = {"kind": "penalty", "effective_from": "2027-01-01", "amounts": {"per_action": "900"}}
    r = await system.client.post(f"{I}/policies", json=body | {"note": "raised\x00"}, headers=h)
    assert field_of(r) == "note"
    r = await system.client.post(
        f"{I}/policies", json=body | {"amounts": {"per_action\x00": "900"}}, headers=h
    )
    assert field_of(r) == "amounts"
    r = await system.client.post(
        f"{I}/policies", json=body | {"note": "raised\n\tby the county"}, headers=h
    )
    assert r.status_code == 201, r.text
    assert r.json()["note"] == "raised\n\tby the county"


async def test_query_and_path_parameters_refuse_control_characters(system: System):
    h = system.headers(Role.org_admin, Role.finance)
    assert field_of(await system.client.get(f"{A}/tasks?status=open%00", headers=h)) == "status"
    assert field_of(await system.client.get(f"{I}/policies/penalty%00x", headers=h)) == "version"
    r = await system.client.get(f"{A}/reports/weekly_dispatch/2026-W48%1b", headers=h)
    assert field_of(r) == "period"


OUT_OF_WINDOW = [
    ("get", f"{I}/policies?on=9999-12-31", "on"),
    ("post", f"{I}/policies", "effective_from"),
    ("get", f"{I}/eligibility/{SOMEONE}?month=9999-12", "month"),
    ("get", f"{I}/promotion-candidates?channel=priority_promotion&month=9999-12", "month"),
    ("get", f"{I}/stipend-batches?month=9999-12", "month"),
    ("post", f"{I}/stipend-batches", "month"),
    ("post", f"{A}/weeks/9999-W52/close", "week"),
    ("get", f"{A}/units/{SOMEONE}/presence?week=9999-W52", "week"),
    ("get", f"{A}/cadres/{SOMEONE}/presence?week=1999-W52", "week"),
    ("get", f"{A}/negative-list?month=9999-12", "month"),
    ("get", f"{A}/monthly-scores?month=2101-01", "month"),
    ("post", f"{A}/reports", "period"),
    ("get", f"{A}/work-logs?cadre_id={SOMEONE}&from=9999-12-31", "from"),
    ("get", f"{R}/cadres?posted_on=9999-12-31", "posted_on"),
    ("get", f"{R}/postings?posted_on=1999-12-31", "posted_on"),
    ("get", f"{R}/training-stats?from=9999-01-01", "from"),
]
BODIES = {
    f"{I}/policies": {"kind": "penalty", "effective_from": "9999-12-31", "amounts": {}},
    f"{I}/stipend-batches": {"month": "9999-12"},
    f"{A}/reports": {"kind": "monthly_assessment", "period": "9999-12"},
}


async def test_dates_months_and_weeks_outside_the_window(system: System):
    h = system.headers(Role.org_admin, Role.finance, Role.auditor)
    for method, path, field in OUT_OF_WINDOW:
        if method == "get":
            r = await system.client.get(path, headers=h)
        else:
            r = await system.client.post(path, json=BODIES.get(path, {}), headers=h)
        assert field_of(r) == field, path


async def test_cursors_are_bound_to_their_list_and_signed(system: System):
    h = system.headers(Role.finance, Role.org_admin)
    first = await system.client.get(f"{I}/policies", params={"limit": 2}, headers=h)
    cursor = first.json()["next_cursor"]
    again = await system.client.get(
        f"{I}/policies", params={"limit": 2, "cursor": cursor}, headers=h
    )
    assert again.status_code == 200 and again.json()["items"] != first.json()["items"]
    # Replayed on another list, of this service and of another one.
    for path, extra in [
        (f"{I}/stipend-batches", {"month": "2026-11"}),
        (f"{R}/cadres", {}),
        (f"{A}/negative-list", {"month": "2026-11"}),
    ]:
        r = await system.client.get(path, params={"cursor": cursor, **extra}, headers=h)
        assert field_of(r) == "cursor", path
    # Tampered with: the same sort key, re-encoded without the right signature.
    import base64

    raw = base64.urlsafe_b64decode(cursor)
    forged = base64.urlsafe_b64encode(raw[:-1] + bytes([raw[-1] ^ 1])).decode()
    made_up = base64.urlsafe_b64encode(b'["penalty@2018-01-01"]').decode()
    for bad in [forged, made_up, "garbage", "%00", "x" * 3000]:
        r = await system.client.get(f"{I}/policies", params={"cursor": bad}, headers=h)
        assert field_of(r) == "cursor", bad
