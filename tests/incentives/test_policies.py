"""Policies as data: seeded defaults, reading them, adding a version, overlaps."""

import uuid
from datetime import date

import pytest
from sqlalchemy import select

from services.incentives.models import outbox
from shared.contracts.enums import Role
from tests.incentives.factories import BASE, cadre, eligibility, enact, posting, unit_tree

KINDS = {
    "posted_subsidy", "village_cadre_pay", "deputy_section_treatment", "study_class",
    "admonition_talk", "penalty", "non_compliant_week", "priority_promotion",
    "targeted_recruitment",
}  # fmt: skip


async def test_defaults_are_seeded_once(system):
    r = await system.client.get(f"{BASE}/policies", headers=system.headers(Role.cadre))
    assert r.status_code == 200
    items = r.json()["items"]
    assert {i["kind"] for i in items} == KINDS and len(items) == len(KINDS)
    by_kind = {i["kind"]: i for i in items}
    subsidy = by_kind["posted_subsidy"]
    assert subsidy["version"] == "posted_subsidy@2018-01-01"
    assert subsidy["amounts"] == {"monthly": "2000.00"}
    assert subsidy["params"]["roles"] == ["first_secretary", "member", "team_leader"]
    assert subsidy["effective_from"] == "2018-01-01" and subsidy["effective_to"] is None
    pay = by_kind["village_cadre_pay"]["amounts"]
    average = sum(float(v) for v in pay.values()) / len(pay)
    assert average == 2560.0  # ours per position, around the seed's county average
    # on_start again (a restart) adds nothing
    from services.incentives.service.policy import seed_defaults

    async with system.transaction("incentives") as s:
        await seed_defaults(s)
    again = await system.client.get(f"{BASE}/policies", headers=system.headers(Role.auditor))
    assert len(again.json()["items"]) == len(KINDS)


async def test_read_one_and_filter(system):
    h = system.headers(Role.finance)
    one = await system.client.get(f"{BASE}/policies/penalty@2018-01-01", headers=h)
    assert one.status_code == 200 and one.json()["amounts"] == {"per_action": "1000.00"}
    assert (
        await system.client.get(f"{BASE}/policies/nope@2018-01-01", headers=h)
    ).status_code == 404
    r = await system.client.get(f"{BASE}/policies", params={"kind": "penalty"}, headers=h)
    assert [i["version"] for i in r.json()["items"]] == ["penalty@2018-01-01"]
    r = await system.client.get(f"{BASE}/policies", params={"on": "2017-12-31"}, headers=h)
    assert r.json()["items"] == []
    page = await system.client.get(f"{BASE}/policies", params={"limit": 4}, headers=h)
    rest = await system.client.get(
        f"{BASE}/policies", params={"limit": 100, "cursor": page.json()["next_cursor"]}, headers=h
    )
    assert len(page.json()["items"]) + len(rest.json()["items"]) == len(KINDS)
    assert (await system.client.get(f"{BASE}/policies")).status_code == 401


def raise_subsidy(**overrides):
    return {
        "kind": "posted_subsidy",
        "effective_from": "2027-01-01",
        "amounts": {"monthly": "2200.00"},
        "params": {"roles": ["first_secretary", "team_leader", "member"]},
        "note": "raise",
    } | overrides


@pytest.mark.parametrize("role", [Role.finance])
async def test_add_a_version_supersedes_the_open_one(system, role):
    r = await enact(system, raise_subsidy(), role)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == "posted_subsidy@2027-01-01"
    assert r.json()["amounts"] == {"monthly": "2200.00"}
    old = await system.client.get(
        f"{BASE}/policies/posted_subsidy@2018-01-01", headers=system.headers(role)
    )
    assert old.json()["effective_to"] == "2026-12-31"
    async with system.transaction("incentives") as s:
        types = (await s.execute(select(outbox.c.type))).scalars().all()
    assert "incentives.policy.added" in types


async def test_only_county_wide_finance_changes_pay_policy(system):
    for headers in (
        system.headers(Role.cadre),
        system.headers(Role.auditor),
        system.headers(Role.inspector),
        system.headers(Role.org_admin),
        system.headers(Role.finance, unit_id=uuid.uuid4()),  # a township's finance
    ):
        r = await system.client.post(f"{BASE}/policies", json=raise_subsidy(), headers=headers)
        assert r.status_code == 403, r.text


async def test_overlapping_versions_conflict(system):
    h = system.headers(Role.finance)
    bounded = raise_subsidy(effective_from="2027-01-01", effective_to="2027-06-30")
    assert (await enact(system, bounded)).status_code == 200
    for clash in (
        raise_subsidy(effective_from="2027-06-01"),  # inside the bounded one
        raise_subsidy(effective_from="2026-06-01"),  # starts before, runs into it
        raise_subsidy(effective_from="2018-01-01", effective_to="2018-12-31"),  # same start
    ):
        r = await system.client.post(f"{BASE}/policies", json=clash, headers=h)
        assert r.status_code == 409, clash
        assert r.json()["code"] == "policy_overlap" and r.json()["conflicting_version"]
    after = raise_subsidy(effective_from="2027-07-01", amounts={"monthly": "2300.00"})
    assert (await system.client.post(f"{BASE}/policies", json=after, headers=h)).status_code == 201


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "bonus"}, "kind"),
        ({"effective_from": "2027-01-15"}, "effective_from"),
        ({"effective_from": "soon"}, "effective_from"),
        ({"effective_to": "2027-03-15"}, "effective_to"),
        ({"effective_to": "2026-11-30"}, "effective_to"),
        ({"amounts": {}}, "amounts.monthly"),
        ({"amounts": {"monthly": "-1"}}, "amounts.monthly"),
        ({"amounts": {"monthly": "10.001"}}, "amounts.monthly"),
        ({"amounts": {"monthly": "lots"}}, "amounts.monthly"),
        ({"amounts": {"monthly": "1", "bonus": "2"}}, "amounts.bonus"),
        ({"params": {"roles": ["chef"]}}, "params.roles"),
    ],
)
async def test_bad_versions_are_422_naming_the_field(system, overrides, field):
    h = system.headers(Role.finance)
    r = await system.client.post(f"{BASE}/policies", json=raise_subsidy(**overrides), headers=h)
    assert r.status_code == 422 and r.json()["field"] == field, r.text
    listed = await system.client.get(
        f"{BASE}/policies", params={"kind": "posted_subsidy"}, headers=h
    )
    assert [i["effective_to"] for i in listed.json()["items"]] == [None]  # nothing written


async def test_a_retroactive_version_recomputes_stored_months(system):
    units = await unit_tree(system)
    cid, _ = await cadre(system)
    await posting(system, cid, units["village_a"], start=date(2026, 1, 1))
    assert (await eligibility(system, cid, "2026-11"))["gross"] == "2000.00"
    r = await system.client.post(
        f"{BASE}/policies",
        json=raise_subsidy(effective_from="2026-11-01"),
        headers=system.headers(Role.finance),
    )
    assert r.status_code == 201
    # Proposed only: nothing changes until a second user approves it.
    assert (await eligibility(system, cid, "2026-11"))["gross"] == "2000.00"
    approve = await system.client.post(
        f"{BASE}/policies/{r.json()['id']}/approve", headers=system.headers(Role.finance)
    )
    assert approve.status_code == 200, approve.text
    body = await eligibility(system, cid, "2026-11")
    assert body["gross"] == "2200.00"
    assert body["components"][0]["policy_version"] == "posted_subsidy@2026-11-01"
    assert (await eligibility(system, cid, "2026-10"))["gross"] == "2000.00"
