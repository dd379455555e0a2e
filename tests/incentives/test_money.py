"""Money that adds up (issue #13, finding 1): gross - deductions_applied = net on every
line, what gross cannot absorb is carried forward to the next month, adjustments are
signed deltas that obey the same identity, and batch totals are the sums of their lines."""

from datetime import date
from decimal import Decimal

from shared.contracts.enums import Role
from tests.incentives.factories import (
    BASE,
    action,
    build,
    cadre,
    eligibility,
    entry,
    finance,
    lines_of,
    posting,
    unit_tree,
)

MONEY = ("gross", "deductions_total", "deductions_applied", "carried_forward", "net")


def identity(line: dict) -> None:
    g, d, a, c, n = (Decimal(line[m]) for m in MONEY)
    assert g - a == n and d - a == c, line
    assert sum(Decimal(i["amount"]) for i in line["components"]) == g, line
    assert sum(Decimal(i["amount"]) for i in line["deductions"]) == d, line


async def check_batch(system, batch_id) -> list[dict]:
    body = (
        await system.client.get(f"{BASE}/stipend-batches/{batch_id}", headers=finance(system))
    ).json()
    lines = await lines_of(system, batch_id)
    for line in lines:
        identity(line)
    for m in MONEY:
        assert Decimal(body["totals"][m]) == sum((Decimal(x[m]) for x in lines), Decimal(0)), m
    assert body["totals"]["lines"] == len(lines)
    return lines


async def penalties(system, cadre_id, day: date, n: int) -> list:
    out = []
    for i in range(n):
        entry_id, _ = await entry(system, cadre_id, day=day)
        action_id, _ = await action(
            system, cadre_id, entry_id, day=day, rung="penalty", count=i + 1
        )
        out.append((entry_id, action_id))
    return out


async def test_deductions_beyond_gross_are_carried_to_the_next_month(system):
    """Finding 1: net was floored at 0 without saying so; totals did not add up."""
    units = await unit_tree(system)
    cid, _ = await cadre(system, name="Hou")
    await posting(system, cid, units["village_a"], start=date(2026, 9, 1))
    await penalties(system, cid, date(2026, 9, 15), 3)  # 3,000.00 against 2,000.00

    september = await eligibility(system, cid, "2026-09")
    assert september["cadre_name"] == "Hou"
    assert (september["gross"], september["total_deductions"], september["deductions_applied"],
            september["carried_forward"], september["net"]) == (
        "2000.00", "3000.00", "2000.00", "1000.00", "0.00")  # fmt: skip
    october = await eligibility(system, cid, "2026-10")
    [carried] = october["deductions"]
    assert carried["kind"] == "carried_forward" and carried["amount"] == "1000.00"
    assert "2026-09" in carried["reason"]
    assert carried["source"] == {"type": "incentives.eligibility", "id": f"{cid}@2026-09"}
    assert carried["policy_version"] == "penalty@2018-01-01"
    assert (october["deductions_applied"], october["carried_forward"], october["net"]) == (
        "1000.00",
        "0.00",
        "1000.00",
    )
    assert (await eligibility(system, cid, "2026-11"))["deductions"] == []

    batch = await build(system, "2026-09")
    [line] = await check_batch(system, batch["id"])
    assert (line["net"], line["carried_forward"]) == ("0.00", "1000.00")
    assert [d["kind"] for d in line["deductions"]] == ["penalty"] * 3


async def test_a_carry_chain_spans_months_without_pay(system):
    units = await unit_tree(system)
    cid, _ = await cadre(system)
    pid, _ = await posting(
        system, cid, units["village_a"], start=date(2026, 7, 1), end=date(2026, 7, 31)
    )
    await penalties(system, cid, date(2026, 7, 10), 5)  # 5,000.00 against 2,000.00
    # nothing in August; posted again from September: the 3,000.00 reach it
    august = await eligibility(system, cid, "2026-08")
    assert (august["gross"], august["carried_forward"]) == ("0.00", "3000.00")
    await posting(system, cid, units["village_a"], start=date(2026, 9, 1))
    september = await eligibility(system, cid, "2026-09")
    [carried] = september["deductions"]
    assert carried["amount"] == "3000.00" and "2026-08" in carried["reason"]
    assert (september["net"], september["carried_forward"]) == ("0.00", "1000.00")
    october = await eligibility(system, cid, "2026-10")
    assert (october["deductions_applied"], october["net"]) == ("1000.00", "1000.00")


async def test_late_changes_to_a_locked_month_are_signed_deltas(system):
    """Finding 1: a December adjustment read gross 0.00, deductions -400.00, net 300.00."""
    units = await unit_tree(system)
    cid, _ = await cadre(system)
    await posting(system, cid, units["village_a"], start=date(2026, 10, 1))
    [(e1, a1), *_] = await penalties(system, cid, date(2026, 10, 5), 2)  # 2,000.00
    entry_id, _ = await entry(system, cid, day=date(2026, 10, 6))
    await action(system, cid, entry_id, day=date(2026, 10, 6), rung="study_class", count=1)
    october = await build(system, "2026-10")
    [line] = await check_batch(system, october["id"])
    assert (line["net"], line["deductions_applied"], line["carried_forward"]) == (
        "0.00", "2000.00", "200.00"
    )  # fmt: skip
    r = await system.client.post(
        f"{BASE}/stipend-batches/{october['id']}/lock", headers=finance(system)
    )
    assert r.status_code == 200
    # a penalty of October cancelled after the lock
    await action(system, cid, e1, day=date(2026, 10, 5), rung="penalty", count=1,
                 status="cancelled", action_id=a1)  # fmt: skip
    november = await build(system, "2026-11")
    lines = await check_batch(system, november["id"])
    [adj] = [x for x in lines if x["kind"] == "adjustment"]
    assert (adj["for_month"], adj["gross"], adj["deductions_total"], adj["deductions_applied"],
            adj["carried_forward"], adj["net"]) == (
        "2026-10", "0.00", "-1000.00", "-800.00", "-200.00", "800.00")  # fmt: skip
    [penalty] = adj["deductions"]
    assert penalty["kind"] == "penalty" and penalty["amount"] == "-1000.00"
    [regular] = [x for x in lines if x["kind"] == "regular"]
    assert regular["deductions"] == [] and regular["net"] == "2000.00"  # nothing carried now


async def test_totals_and_lines_are_read_by_auditors_too(system):
    units = await unit_tree(system)
    cid, _ = await cadre(system)
    await posting(system, cid, units["village_a"], start=date(2026, 10, 1))
    batch = await build(system, "2026-10")
    r = await system.client.get(
        f"{BASE}/stipend-batches/{batch['id']}/lines", headers=system.headers(Role.auditor)
    )
    assert r.status_code == 200 and r.json()["items"][0]["village_name"] == "Village A"


async def test_batch_lines_name_village_and_township_and_explain_themselves(system):
    """Findings 8 and 9: lines had no village and no names; explaining one took an
    eligibility call per cadre."""
    units = await unit_tree(system)
    cid, _ = await cadre(system, name="Lan")
    pid, posted = await posting(
        system, cid, units["group_a"], start=date(2026, 10, 1), role="team_leader"
    )
    entry_id, _ = await entry(system, cid, day=date(2026, 10, 7))
    _, acted = await action(
        system, cid, entry_id, day=date(2026, 10, 7), rung="study_class", count=1
    )
    village_cadre, home = await cadre(
        system, name="Mo", category="village_cadre", position="committee_member",
        unit_id=units["village_b"],
    )  # fmt: skip
    batch = await build(system, "2026-10")
    lines = {x["cadre_name"]: x for x in await check_batch(system, batch["id"])}
    lan, mo = lines["Lan"], lines["Mo"]
    assert (lan["village_id"], lan["village_name"]) == (str(units["village_a"]), "Village A")
    assert (lan["township_id"], lan["township_name"]) == (str(units["town_a"]), "Town A")
    assert (mo["village_name"], mo["township_name"]) == ("Village B", "Town B")
    [component] = lan["components"]
    assert component["kind"] == "posted_subsidy" and component["amount"] == "2000.00"
    assert component["source"] == {"type": "registry.posting.opened", "id": posted}
    assert component["policy_version"] == "posted_subsidy@2018-01-01"
    assert "Group A" in component["reason"] and str(pid) in component["reason"]
    [deduction] = lan["deductions"]
    assert deduction["source"] == {"type": "assessment.accountability.opened", "id": acted}
    assert (deduction["kind"], deduction["amount"]) == ("study_class", "200.00")
    [pay] = mo["components"]
    assert pay["source"]["id"] == home and "Village B" in pay["reason"]


async def test_eligibility_names_the_cadre_and_the_units(system):
    """Finding 8: eligibility reasons carried only uuids."""
    units = await unit_tree(system)
    cid, _ = await cadre(system, name="Niu")
    pid, _ = await posting(system, cid, units["village_b"], start=date(2026, 10, 1))
    body = await eligibility(system, cid, "2026-10")
    assert body["cadre_name"] == "Niu"
    [item] = body["components"]
    assert "Village B" in item["reason"] and str(units["village_b"]) in item["reason"]
    # a renamed village: the reasons follow
    from shared.contracts.registry import UnitUpserted
    from tests.incentives.factories import emit
    from tests.support import next_version

    await emit(
        system,
        UnitUpserted(
            unit_id=units["village_b"], code="village_b", name="Xinzhai", kind="village",
            parent_id=units["town_b"], ancestors=[units["county"], units["town_b"]],
            entity_version=next_version(),
        ),
        units["village_b"],
    )  # fmt: skip
    [item] = (await eligibility(system, cid, "2026-10"))["components"]
    assert "Xinzhai" in item["reason"]


async def test_a_cadre_reads_their_own_lines_across_batches(system):
    units = await unit_tree(system)
    cid, _ = await cadre(system, name="Ou")
    other, _ = await cadre(system, name="Pei")
    for who in (cid, other):
        await posting(system, who, units["village_a"], start=date(2026, 9, 1))
    september = await build(system, "2026-09")
    r = await system.client.post(
        f"{BASE}/stipend-batches/{september['id']}/lock", headers=finance(system)
    )
    assert r.status_code == 200
    entry_id, _ = await entry(system, cid, day=date(2026, 9, 20))
    await action(system, cid, entry_id, day=date(2026, 9, 20), rung="admonition_talk", count=1)
    october = await build(system, "2026-10")
    url = f"{BASE}/cadres/{cid}/lines"
    mine = system.headers(Role.cadre, cadre_id=cid)
    r = await system.client.get(url, headers=mine)
    assert r.status_code == 200, r.text
    got = [(x["batch_month"], x["for_month"], x["kind"], x["net"]) for x in r.json()["items"]]
    assert got == [
        ("2026-09", "2026-09", "regular", "2000.00"),
        ("2026-10", "2026-09", "adjustment", "-500.00"),
        ("2026-10", "2026-10", "regular", "2000.00"),
    ]
    first = r.json()["items"][0]
    assert first["batch_id"] == september["id"] and first["batch_status"] == "locked"
    assert first["components"][0]["kind"] == "posted_subsidy"
    for line in r.json()["items"]:
        identity(line)
    r = await system.client.get(url, params={"month": "2026-10"}, headers=mine)
    assert [x["batch_id"] for x in r.json()["items"]] == [october["id"]]
    r = await system.client.get(url, params={"month": "2026-13"}, headers=mine)
    assert r.status_code == 422 and r.json()["field"] == "month"
    r = await system.client.get(f"{BASE}/cadres/{other}/lines", headers=mine)
    assert r.status_code == 403
    paged = await system.client.get(url, params={"limit": 2}, headers=finance(system))
    rest = await system.client.get(
        url, params={"limit": 2, "cursor": paged.json()["next_cursor"]}, headers=finance(system)
    )
    assert len(paged.json()["items"]) == 2 and len(rest.json()["items"]) == 1
    scoped = system.headers(Role.auditor, unit_id=units["town_b"])
    assert (await system.client.get(url, headers=scoped)).json()["items"] == []
