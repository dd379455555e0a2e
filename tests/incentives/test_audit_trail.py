"""An eligibility item leads back to the HTTP request and the user that caused it: its
source event's audit row in incentives carries the request id and actor of the finding
posted in assessment, through every event caused in between.
"""

import uuid

import pytest
from sqlalchemy import select

from shared.contracts.enums import Role
from shared.events import decode
from shared.outbox import OUTBOX
from tests.assessment import factories as f


@pytest.fixture
def services() -> list[str]:
    return ["assessment", "incentives"]


async def test_a_deduction_leads_back_to_the_finding_request_and_its_inspector(system):
    t = await f.tree(system)
    cadre = await f.posted_cadre(system, t.village)
    inspector = uuid.uuid4()
    r = await system.client.post(
        "/assessment/v1/findings",
        json={
            "subject_type": "cadre",
            "subject_id": str(cadre),
            "kind": "absent_from_post",
            "severity": "major",
            "observed_at": f.local(2026, 11, 23, 15).isoformat(),
            "description": "not at the post during an unannounced check",
            "evidence_urls": [],
        },
        headers={
            **system.headers(Role.inspector, user_id=inspector, username="ducha-li"),
            "X-Request-ID": "check-1123-li",
        },
    )
    assert r.status_code == 201, r.text
    assert r.headers["x-request-id"] == "check-1123-li"
    await system.settle()

    r = await system.client.get(
        f"/incentives/v1/eligibility/{cadre}",
        params={"month": "2026-11"},
        headers=system.headers(Role.finance),
    )
    assert r.status_code == 200, r.text
    [deduction] = r.json()["deductions"]
    source = deduction["source"]["id"]

    auditor = system.headers(Role.auditor)
    r = await system.client.get(
        "/incentives/v1/audit", params={"request_id": "check-1123-li"}, headers=auditor
    )
    rows = r.json()["items"]
    [applied] = [row for row in rows if row["summary"]["event_id"] == source]
    assert applied["kind"] == "event"
    assert (applied["actor_id"], applied["actor_name"]) == (str(inspector), "ducha-li")
    assert applied["target_id"] == str(cadre)
    # Every event the finding caused and incentives applied names it.
    assert all(
        (row["request_id"], row["actor_id"]) == ("check-1123-li", str(inspector)) for row in rows
    )
    assert {row["action"] for row in rows} >= {
        "assessment.negative_entry.recorded",
        "assessment.accountability.opened",
    }

    # What incentives publishes in turn carries the same request and actor on.
    async with system.transaction("incentives") as s:
        bodies = (await s.execute(select(OUTBOX.c.body))).scalars().all()
    caused = [e for e in map(decode, bodies) if e.request_id == "check-1123-li"]
    assert {e.type for e in caused} == {"incentives.eligibility.changed"}
    assert {(e.actor_id, e.actor_name) for e in caused} == {(inspector, "ducha-li")}

    r = await system.client.get(
        "/assessment/v1/audit", params={"request_id": "check-1123-li"}, headers=auditor
    )
    [request_row] = [row for row in r.json()["items"] if row["kind"] == "request"]
    assert request_row["action"] == "POST /assessment/v1/findings"
    assert (request_row["actor_id"], request_row["roles"]) == (str(inspector), ["inspector"])
    assert request_row["summary"]["body"]["subject_id"] == str(cadre)
    assert "assessment.finding.posted" in {e["type"] for e in request_row["summary"]["events"]}
