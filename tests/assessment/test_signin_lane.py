"""The sign-in lane (shared/lanes.py) answers exactly as its declared twin, the APIRoute.

Each request is sent twice: once as the app serves it (through the lane), once with the
lane taken out of the routes (through FastAPI's routing and dependencies). Status, body
and the audit rows left must be the same.
"""

import uuid

import pytest
from sqlalchemy import select

from shared.audit import AUDIT
from shared.authz import route_table
from shared.contracts.enums import Role
from tests.assessment import factories as f

PATH = "/assessment/v1/sign-ins"


@pytest.fixture
async def posted(system):
    t = await f.tree(system)
    return await f.posted_cadre(system, t.village)


def lane_of(system):
    [lane] = [r for r in system.app.router.routes if hasattr(r, "lane_of")]
    return lane


async def both(system, **request):
    """(answer through the lane, answer through the twin) of the same request."""
    routes = system.app.router.routes
    through_lane = await system.client.post(PATH, **request)
    lane = lane_of(system)
    routes.remove(lane)
    try:
        through_twin = await system.client.post(PATH, **request)
    finally:
        routes.insert(0, lane)
    return through_lane, through_twin


def same(a, b) -> None:
    assert a.status_code == b.status_code, (a.text, b.text)
    assert a.json() == b.json()
    assert a.headers["content-type"] == b.headers["content-type"]


async def audit_rows(system) -> list[tuple[str, str]]:
    async with system.transaction("assessment") as s:
        rows = (await s.execute(select(AUDIT.c.kind, AUDIT.c.action).order_by(AUDIT.c.seq))).all()
    return [tuple(r) for r in rows]


def test_the_lane_is_first_and_its_twin_is_listed_once(system):
    assert system.app.router.routes[0] is lane_of(system)
    entries = [e for e in route_table(system.app) if e.path == PATH and "POST" in e.methods]
    assert len(entries) == 1 and entries[0].api and len(entries[0].rules) == 1


async def test_refusals_and_bad_input_answer_as_the_twin_does(system, posted):
    cadre = system.headers(Role.cadre, cadre_id=posted)
    good = f.sign_in_body(posted, f.local(2026, 11, 25, 9), key="k-1")
    other = f.sign_in_body(uuid.uuid4(), f.local(2026, 11, 25, 9), key="k-2")
    cases = [
        {"json": good},  # no token: 401
        {"json": good, "headers": {"Authorization": "Bearer not.a.token"}},
        {"json": good, "headers": system.headers(Role.inspector)},  # wrong role: 403
        {"json": other, "headers": cadre},  # another cadre's record: 403
        {"content": b'{"lat": 1,', "headers": cadre | {"content-type": "application/json"}},
        {"content": b"", "headers": cadre | {"content-type": "application/json"}},
        {"content": b"lat=1", "headers": cadre | {"content-type": "text/plain"}},
        {"json": {**good, "lat": 91}, "headers": cadre},
        {"json": {k: v for k, v in good.items() if k != "device_time"}, "headers": cadre},
        {"json": [good], "headers": cadre},
        {"json": good, "headers": cadre, "params": {"dry_run": "1"}},  # unknown parameter
        {"json": good, "headers": cadre, "params": {"x": "a\x00b"}},
        {"content": b'{"lat": 1,', "headers": {"content-type": "application/json"}},
    ]
    for case in cases:
        through_lane, through_twin = await both(system, **case)
        assert through_lane.status_code >= 400, case
        same(through_lane, through_twin)
    assert await f.events(system, "assessment.signin.recorded") == []


async def test_a_key_stored_by_one_is_replayed_by_the_other(system, posted):
    cadre = system.headers(Role.cadre, cadre_id=posted)
    first = f.sign_in_body(posted, f.local(2026, 11, 25, 9), key="k-1")
    through_lane, through_twin = await both(system, json=first, headers=cadre)
    assert (through_lane.status_code, through_twin.status_code) == (201, 200)
    assert through_lane.json() == through_twin.json()
    reused = {**first, "lat": first["lat"] + 0.01}
    conflicts = await both(system, json=reused, headers=cadre)
    assert [r.status_code for r in conflicts] == [409, 409]
    same(*conflicts)
    rows = [r for r in await audit_rows(system) if r[1].startswith("POST")]
    # the first answer and its replay leave a request row each, under the twin's template
    assert rows == [("request", f"POST {PATH}"), ("request", f"POST {PATH}")]
