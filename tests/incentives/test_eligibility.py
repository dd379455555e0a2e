"""GET /incentives/v1/eligibility/{cadre_id}: §7.1 shape, pro-rating, the honor rule, each
deduction with its reason and source, recomputation on events, and who may read it."""

from datetime import date

import pytest
from sqlalchemy import select

from services.incentives.models import outbox
from shared.contracts.enums import Role
from tests.incentives.factories import (
    BASE,
    action,
    cadre,
    eligibility,
    end_posting,
    entry,
    honor,
    posting,
    revoke_entry,
    revoke_honor,
    unit_tree,
    verdict,
)


@pytest.fixture
async def units(system):
    return await unit_tree(system)


def kinds(items: list[dict]) -> list[tuple[str, str]]:
    return [(i["kind"], i["amount"]) for i in items]


async def test_shape_and_posted_subsidy_from_mid_month(system, units):
    cid, _ = await cadre(system)
    pid, event_id = await posting(system, cid, units["village_a"], start=date(2026, 11, 10))
    body = await eligibility(system, cid, "2026-11")
    assert set(body) == {
        "cadre_id", "cadre_name", "month", "components", "deductions", "gross",
        "total_deductions", "deductions_applied", "carried_forward", "net",
    }  # fmt: skip
    assert body["cadre_name"] == "Wei Kongcheng"
    assert body["cadre_id"] == str(cid) and body["month"] == "2026-11"
    [item] = body["components"]
    assert item["kind"] == "posted_subsidy"
    assert item["amount"] == "1400.00"  # 2,000.00 x 21 / 30
    assert item["source"] == {"type": "registry.posting.opened", "id": event_id}
    assert item["policy_version"] == "posted_subsidy@2018-01-01"
    assert "21/30 days" in item["reason"] and str(pid) in item["reason"]
    assert (body["gross"], body["total_deductions"], body["net"]) == (
        "1400.00", "0.00", "1400.00"
    )  # fmt: skip


async def test_posting_ending_mid_month_and_in_later_months(system, units):
    cid, _ = await cadre(system)
    start = date(2026, 9, 1)
    pid, _ = await posting(system, cid, units["village_a"], start=start)
    assert (await eligibility(system, cid, "2026-10"))["gross"] == "2000.00"  # 31 days
    ended = await end_posting(
        system, pid, cid, units["village_a"], start=start, end=date(2026, 10, 20)
    )
    october = await eligibility(system, cid, "2026-10")
    assert kinds(october["components"]) == [("posted_subsidy", "1290.32")]  # 20/31, inclusive
    assert october["components"][0]["source"] == {"type": "registry.posting.ended", "id": ended}
    november = await eligibility(system, cid, "2026-11")
    assert november["components"] == [] and november["net"] == "0.00"


async def test_february_and_31_day_months(system, units):
    # (The clock stays before the machine's real date: tokens carry it as `iat`.)
    cid, _ = await cadre(system)
    await posting(system, cid, units["village_a"], start=date(2026, 1, 17))
    assert (await eligibility(system, cid, "2026-01"))["gross"] == "967.74"  # 15/31
    assert (await eligibility(system, cid, "2026-02"))["gross"] == "2000.00"  # 28/28
    cid2, _ = await cadre(system)
    pid, _ = await posting(system, cid2, units["village_b"], start=date(2026, 2, 1))
    await end_posting(
        system, pid, cid2, units["village_b"], start=date(2026, 2, 1), end=date(2026, 2, 14)
    )
    assert (await eligibility(system, cid2, "2026-02"))["gross"] == "1000.00"  # 14/28
    assert (await eligibility(system, cid2, "2026-03"))["gross"] == "0.00"


async def test_roles_outside_the_subsidy_get_none(system, units):
    cid, _ = await cadre(system, category="county_leader")
    await posting(system, cid, units["town_a"], start=date(2026, 1, 1), role="commander")
    assert (await eligibility(system, cid, "2026-11"))["components"] == []


async def test_village_cadre_pay_by_position(system):
    cid, first = await cadre(system, category="village_cadre", position="committee_director")
    body = await eligibility(system, cid, "2026-11")
    [item] = body["components"]
    assert (item["kind"], item["amount"]) == ("village_cadre_pay", "2800.00")
    assert item["source"] == {"type": "registry.cadre.upserted", "id": first}
    assert item["policy_version"] == "village_cadre_pay@2018-01-01"
    await cadre(
        system,
        cadre_id=cid,
        category="village_cadre",
        position="party_secretary",
        effective_date=date(2026, 11, 21),
    )
    body = await eligibility(system, cid, "2026-11")
    # 20 days as director (2,800) and 10 as secretary (3,000)
    assert kinds(body["components"]) == [
        ("village_cadre_pay", "1866.67"), ("village_cadre_pay", "1000.00")
    ]  # fmt: skip
    assert body["gross"] == "2866.67"


async def secretary(system):
    cid, _ = await cadre(system, category="village_cadre", position="party_secretary")
    return cid


def treatment(body):
    return [i for i in body["components"] if i["kind"] == "deputy_section_treatment"]


async def test_provincial_honor_alone_gives_treatment_the_year_after(system):
    cid = await secretary(system)
    _, event_id = await honor(system, cid, level="province", year=2025, title="全省优秀共产党员")
    [item] = treatment(await eligibility(system, cid, "2026-11"))
    assert item["amount"] == "1500.00"
    assert item["source"] == {"type": "registry.honor.awarded", "id": event_id}
    assert item["policy_version"] == "deputy_section_treatment@2018-01-01"
    assert "province honor 2025" in item["reason"] and "全省优秀共产党员" in item["reason"]
    assert treatment(await eligibility(system, cid, "2025-11")) == []


async def test_two_consecutive_prefecture_years_but_not_with_a_gap(system):
    with_gap = await secretary(system)
    await honor(system, with_gap, level="prefecture", year=2023)
    await honor(system, with_gap, level="prefecture", year=2025)
    assert treatment(await eligibility(system, with_gap, "2026-11")) == []
    consecutive = await secretary(system)
    await honor(system, consecutive, level="prefecture", year=2024)
    _, last = await honor(system, consecutive, level="prefecture", year=2025)
    [item] = treatment(await eligibility(system, consecutive, "2026-11"))
    assert item["source"]["id"] == last and "2024, 2025" in item["reason"]


async def test_three_county_years_and_a_revoked_one(system):
    cid = await secretary(system)
    await honor(system, cid, level="county", year=2023)
    middle, _ = await honor(system, cid, level="county", year=2024)
    assert treatment(await eligibility(system, cid, "2026-11")) == []
    await honor(system, cid, level="county", year=2025)
    assert treatment(await eligibility(system, cid, "2026-11"))[0]["amount"] == "1500.00"
    await revoke_honor(system, cid, middle, level="county", year=2024)
    assert treatment(await eligibility(system, cid, "2026-11")) == []


async def test_honors_of_a_member_give_no_treatment(system):
    cid, _ = await cadre(system, category="village_cadre", position="committee_member")
    await honor(system, cid, level="national", year=2024)
    assert treatment(await eligibility(system, cid, "2026-11")) == []


@pytest.mark.parametrize(
    ("rung", "count", "amount"),
    [("study_class", 1, "200.00"), ("admonition_talk", 2, "500.00"), ("penalty", 3, "1000.00")],
)
async def test_each_rung_deducts_with_its_reason(system, units, rung, count, amount):
    cid, _ = await cadre(system)
    await posting(system, cid, units["village_a"], start=date(2026, 1, 1))
    entry_id, _ = await entry(system, cid, day=date(2026, 11, 12))
    action_id, event_id = await action(
        system, cid, entry_id, day=date(2026, 11, 12), rung=rung, count=count
    )
    body = await eligibility(system, cid, "2026-11")
    [item] = body["deductions"]
    assert (item["kind"], item["amount"]) == (rung, amount)
    assert item["source"] == {"type": "assessment.accountability.opened", "id": event_id}
    assert item["policy_version"] == f"{rung}@2018-01-01"
    assert str(entry_id) in item["reason"] and str(action_id) in item["reason"]
    assert "2026-11-12" in item["reason"]
    assert body["net"] == f"{2000 - int(amount[:-3])}.00"
    # in the month of the entry, not another
    assert (await eligibility(system, cid, "2026-10"))["deductions"] == []


async def test_carried_out_still_deducts_cancelled_does_not(system, units):
    cid, _ = await cadre(system)
    await posting(system, cid, units["village_a"], start=date(2026, 1, 1))
    entry_id, _ = await entry(system, cid, day=date(2026, 11, 2))
    action_id, _ = await action(
        system, cid, entry_id, day=date(2026, 11, 2), rung="penalty", count=3
    )
    _, carried = await action(
        system, cid, entry_id, day=date(2026, 11, 2), rung="penalty", count=3,
        status="carried_out", action_id=action_id, measure="admonishment",
    )  # fmt: skip
    [item] = (await eligibility(system, cid, "2026-11"))["deductions"]
    assert item["source"] == {"type": "assessment.accountability.carried_out", "id": carried}
    other_entry, _ = await entry(system, cid, day=date(2026, 11, 20))
    other, _ = await action(
        system, cid, other_entry, day=date(2026, 11, 20), rung="penalty", count=4
    )
    assert len((await eligibility(system, cid, "2026-11"))["deductions"]) == 2
    await action(
        system, cid, other_entry, day=date(2026, 11, 20), rung="penalty", count=4,
        status="cancelled", action_id=other,
    )  # fmt: skip
    body = await eligibility(system, cid, "2026-11")
    assert kinds(body["deductions"]) == [("penalty", "1000.00")]
    assert body["net"] == "1000.00"


async def test_revoked_entry_recomputes_a_pending_action_away(system, units):
    cid, _ = await cadre(system)
    await posting(system, cid, units["village_a"], start=date(2026, 1, 1))
    entry_id, _ = await entry(system, cid, day=date(2026, 11, 5))
    await action(system, cid, entry_id, day=date(2026, 11, 5), rung="study_class", count=1)
    assert (await eligibility(system, cid, "2026-11"))["net"] == "1800.00"
    await revoke_entry(system, cid, entry_id, day=date(2026, 11, 5))
    body = await eligibility(system, cid, "2026-11")
    assert body["deductions"] == [] and body["net"] == "2000.00"


async def test_non_compliant_week_in_the_month_of_its_sunday(system, units):
    cid, _ = await cadre(system)
    await posting(system, cid, units["village_a"], start=date(2026, 1, 1))
    # ISO week 2026-W44: Monday 26 October, Sunday 1 November
    event_id = await verdict(system, cid, sunday=date(2026, 11, 1), compliant=False)
    assert (await eligibility(system, cid, "2026-10"))["deductions"] == []
    [item] = (await eligibility(system, cid, "2026-11"))["deductions"]
    assert (item["kind"], item["amount"]) == ("non_compliant_week", "200.00")
    assert item["source"] == {"type": "assessment.presence.judged", "id": event_id}
    assert "2026-W44" in item["reason"] and "3 days, 2 nights" in item["reason"]
    # a re-judgement replaces the verdict: the latest wins
    await verdict(system, cid, sunday=date(2026, 11, 1), compliant=True, days=5, nights=4)
    assert (await eligibility(system, cid, "2026-11"))["deductions"] == []


async def test_revoked_presence_entry_clears_the_week(system, units):
    cid, _ = await cadre(system)
    await posting(system, cid, units["village_a"], start=date(2026, 1, 1))
    sunday = date(2026, 11, 8)
    await verdict(system, cid, sunday=sunday, compliant=False)
    entry_id, _ = await entry(system, cid, day=sunday, reason="presence_week")
    assert len((await eligibility(system, cid, "2026-11"))["deductions"]) == 1
    await revoke_entry(system, cid, entry_id, day=sunday, reason="presence_week")
    assert (await eligibility(system, cid, "2026-11"))["deductions"] == []


async def test_net_never_below_zero(system, units):
    cid, _ = await cadre(system)
    await posting(system, cid, units["village_a"], start=date(2026, 11, 30))
    entry_id, _ = await entry(system, cid, day=date(2026, 11, 30))
    await action(system, cid, entry_id, day=date(2026, 11, 30), rung="penalty", count=3)
    body = await eligibility(system, cid, "2026-11")
    assert (body["gross"], body["total_deductions"], body["net"]) == (
        "66.67", "1000.00", "0.00"
    )  # fmt: skip


async def test_changes_are_announced_once(system, units):
    cid, _ = await cadre(system)
    await posting(system, cid, units["village_a"], start=date(2026, 11, 10))
    await cadre(system, cadre_id=cid, name="Renamed")  # nothing due changes

    async with system.transaction("incentives") as s:
        rows = (
            (
                await s.execute(
                    select(outbox.c.body).where(outbox.c.type == "incentives.eligibility.changed")
                )
            )
            .scalars()
            .all()
        )
    import json

    payloads = [json.loads(b)["payload"] for b in rows]
    assert payloads == [
        {
            "cadre_id": str(cid),
            "month": "2026-11",
            "gross": "1400.00",
            "total_deductions": "0.00",
            "net": "1400.00",
            "deductions_applied": "0.00",
            "carried_forward": "0.00",
        }
    ]


async def test_who_may_read(system, units):
    cid, _ = await cadre(system)
    url = f"{BASE}/eligibility/{cid}"
    q = {"month": "2026-11"}
    assert (
        await system.client.get(url, params=q, headers=system.headers(Role.cadre, cadre_id=cid))
    ).status_code == 200
    for role in (Role.finance, Role.auditor):
        assert (
            await system.client.get(url, params=q, headers=system.headers(role))
        ).status_code == 200
    other = await system.client.get(
        url, params=q, headers=system.headers(Role.cadre, cadre_id=units["county"])
    )
    assert other.status_code == 403
    assert other.headers["content-type"].startswith("application/problem+json")
    for role in (Role.org_admin, Role.inspector):
        assert (
            await system.client.get(url, params=q, headers=system.headers(role))
        ).status_code == 403
    assert (await system.client.get(url, params=q)).status_code == 401


async def test_a_scoped_reader_sees_the_subtree_only(system, units):
    cid, _ = await cadre(system)
    await posting(system, cid, units["group_a"], start=date(2026, 1, 1))
    url, q = f"{BASE}/eligibility/{cid}", {"month": "2026-11"}
    inside = system.headers(Role.finance, unit_id=units["town_a"])
    assert (await system.client.get(url, params=q, headers=inside)).status_code == 200
    outside = system.headers(Role.auditor, unit_id=units["town_b"])
    r = await system.client.get(url, params=q, headers=outside)
    assert r.status_code == 403 and r.json()["code"] == "out_of_scope"


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "November", ""])
async def test_bad_month_is_422_naming_month(system, month):
    r = await system.client.get(
        f"{BASE}/eligibility/{units_free_id()}",
        params={"month": month},
        headers=system.headers(Role.finance),
    )
    assert r.status_code == 422 and r.json()["field"] == "month"


def units_free_id():
    import uuid

    return uuid.uuid4()
