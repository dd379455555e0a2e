"""Four eyes on pay policy (#13 finding 11, DESIGN §8): a version is proposed by one user
and takes effect only when a different user with the right role approves it."""

import uuid
from datetime import date, datetime

from shared.contracts.enums import Role
from tests.incentives.factories import BASE, cadre, eligibility, posting, unit_tree


def raise_subsidy(**overrides) -> dict:
    return {
        "kind": "posted_subsidy",
        "effective_from": "2026-11-01",
        "amounts": {"monthly": "2500.00"},
        "params": {"roles": ["first_secretary", "team_leader", "member"]},
        "note": "raise",
    } | overrides


class People:
    def __init__(self, system):
        self.system = system
        self.alice_id, self.bob_id = uuid.uuid4(), uuid.uuid4()

    def alice(self) -> dict:  # county-wide finance, proposes
        return self.system.headers(Role.finance, user_id=self.alice_id, username="alice")

    def bob(self) -> dict:  # county-wide finance, the second pair of eyes
        return self.system.headers(Role.finance, user_id=self.bob_id, username="bob")


async def propose(system, headers, body=None) -> dict:
    r = await system.client.post(f"{BASE}/policies", json=body or raise_subsidy(), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def decide(system, ref: str, what: str, headers, **kw):
    return await system.client.post(f"{BASE}/policies/{ref}/{what}", headers=headers, **kw)


def problem(r, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code, r.text


async def test_one_person_cannot_change_pay_policy_alone(system):
    """#13 finding 11: one finance user changed pay policy on their own."""
    units = await unit_tree(system)
    cid, _ = await cadre(system)
    await posting(system, cid, units["village_a"], start=date(2026, 1, 1))
    people = People(system)
    assert (await eligibility(system, cid, "2026-11"))["gross"] == "2000.00"

    proposed = await propose(system, people.alice())
    assert proposed["status"] == "proposed"
    assert proposed["proposed_by"] == {"id": str(people.alice_id), "username": "alice"}
    assert proposed["proposed_at"] == system.clock.now().isoformat()
    assert proposed["approved_by"] is None and proposed["approved_at"] is None
    # A proposal pays nothing, and is not in force on any day.
    assert (await eligibility(system, cid, "2026-11"))["gross"] == "2000.00"
    on = await system.client.get(
        f"{BASE}/policies",
        params={"kind": "posted_subsidy", "on": "2026-11-15"},
        headers=people.bob(),
    )
    assert [p["version"] for p in on.json()["items"]] == ["posted_subsidy@2018-01-01"]

    # The proposer cannot approve their own version; nor can the wrong roles or scopes.
    problem(await decide(system, proposed["id"], "approve", people.alice()), 403, "same_user")
    for headers, code in (
        (system.headers(Role.org_admin), "wrong_role"),  # pay is finance's, both pairs of eyes
        (system.headers(Role.auditor), "wrong_role"),
        (system.headers(Role.finance, unit_id=units["town_a"]), "county_only"),
    ):
        problem(await decide(system, proposed["id"], "approve", headers), 403, code)
    assert (await eligibility(system, cid, "2026-11"))["gross"] == "2000.00"

    system.clock.advance(hours=2)
    approved = await decide(system, proposed["version"], "approve", people.bob())
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved"
    assert body["proposed_by"]["username"] == "alice"
    assert body["approved_by"] == {"id": str(people.bob_id), "username": "bob"}
    assert datetime.fromisoformat(body["approved_at"]) == system.clock.now()
    assert body["approved_at"] > body["proposed_at"]
    # In force now: the month is recomputed, and the old open version ends before it.
    after = await eligibility(system, cid, "2026-11")
    assert after["gross"] == "2500.00"
    assert after["components"][0]["policy_version"] == "posted_subsidy@2026-11-01"
    old = await system.client.get(
        f"{BASE}/policies/posted_subsidy@2018-01-01", headers=people.bob()
    )
    assert old.json()["effective_to"] == "2026-10-31"
    # Shown on the version as read later, too.
    again = await system.client.get(
        f"{BASE}/policies/posted_subsidy@2026-11-01", headers=people.bob()
    )
    assert again.json() == body

    # Deciding twice is a conflict, whoever asks.
    problem(await decide(system, proposed["id"], "approve", people.bob()), 409, "not_proposed")
    problem(await decide(system, proposed["id"], "reject", people.bob()), 409, "not_proposed")
    problem(await decide(system, proposed["id"], "approve", people.alice()), 409, "not_proposed")


async def test_a_proposal_is_rejected_or_withdrawn_and_its_month_proposed_again(system):
    people = People(system)
    first = await propose(system, people.alice())
    r = await decide(
        system, first["id"], "reject", people.bob(), json={"note": "not in this year's budget"}
    )
    assert r.status_code == 200, r.text
    rejected = r.json()
    assert rejected["status"] == "rejected"
    assert rejected["rejected_by"]["username"] == "bob" and rejected["rejected_at"]
    assert rejected["decision_note"] == "not in this year's budget"
    assert rejected["approved_by"] is None
    problem(await decide(system, first["id"], "approve", people.bob()), 409, "not_proposed")

    # The month is free again; the proposer withdraws the second try themself.
    second = await propose(system, people.alice(), raise_subsidy(amounts={"monthly": "2400.00"}))
    assert second["version"] == first["version"] and second["id"] != first["id"]
    withdrawn = (await decide(system, second["version"], "reject", people.alice())).json()
    assert withdrawn["status"] == "withdrawn"
    assert withdrawn["rejected_by"]["username"] == "alice"

    # Refused versions stay readable by id, never in force.
    listed = await system.client.get(
        f"{BASE}/policies", params={"kind": "posted_subsidy"}, headers=people.bob()
    )
    statuses = {p["id"]: p["status"] for p in listed.json()["items"]}
    assert statuses[first["id"]] == "rejected" and statuses[second["id"]] == "withdrawn"
    refused = await system.client.get(
        f"{BASE}/policies", params={"status": "rejected"}, headers=people.bob()
    )
    assert [p["id"] for p in refused.json()["items"]] == [first["id"]]
    one = await system.client.get(f"{BASE}/policies/{first['id']}", headers=people.bob())
    assert one.json()["amounts"] == {"monthly": "2500.00"}


async def test_proposals_do_not_overlap_each_other(system):
    people = People(system)
    await propose(system, people.alice(), raise_subsidy(effective_to="2027-03-31"))
    r = await system.client.post(
        f"{BASE}/policies", json=raise_subsidy(effective_from="2027-01-01"), headers=people.bob()
    )
    problem(r, 409, "policy_overlap")
    assert r.json()["conflicting_version"] == "posted_subsidy@2026-11-01"


async def test_promotion_thresholds_take_two_org_admins_or_finance(system):
    params = {
        "window_months": 3,
        "max_rank": 2,
        "min_score": "90",
        "categories": ["resident_cadre"],
    }
    body = {"kind": "priority_promotion", "effective_from": "2026-12-01", "params": params}
    r = await system.client.post(
        f"{BASE}/policies", json=body, headers=system.headers(Role.org_admin)
    )
    assert r.status_code == 201, r.text
    ok = await decide(system, r.json()["id"], "approve", system.headers(Role.org_admin))
    assert ok.status_code == 200 and ok.json()["status"] == "approved", ok.text


async def test_unknown_versions_are_404(system):
    h = system.headers(Role.finance)
    for ref in ("nope@2026-11-01", str(uuid.uuid4())):
        problem(await decide(system, ref, "approve", h), 404, "not_found")
