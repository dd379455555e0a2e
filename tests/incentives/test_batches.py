"""Stipend batches: build, filters, totals, kept current while draft, locked for good,
adjustment lines in the next open batch, paid; and who may do what."""

import hashlib
import json
import re
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from services.incentives.models import outbox
from shared.contracts.enums import Role
from tests.incentives.factories import (
    BASE,
    action,
    build,
    cadre,
    county,
    eligibility,
    end_posting,
    entry,
    finance,
    lines_of,
    posting,
    unit_tree,
)


@pytest.fixture
async def world(system):
    return await county(system)


def by_cadre(lines: list[dict]) -> dict[str, dict]:
    return {line["cadre_id"]: line for line in lines}


async def events(system, type_name: str) -> list[dict]:
    async with system.transaction("incentives") as s:
        rows = await s.execute(select(outbox.c.body).where(outbox.c.type == type_name))
        return [json.loads(b)["payload"] for b in rows.scalars()]


async def test_build_a_draft_with_totals_per_township(system, world):
    c, u = world["cadres"], world["units"]
    batch = await build(system, "2026-11")
    assert batch["month"] == "2026-11" and batch["status"] == "draft"
    assert batch["content_hash"] is None
    lines = await lines_of(system, batch["id"])
    got = {line["cadre_name"]: line["net"] for line in lines}
    assert got == {"An": "2000.00", "Bo": "1400.00", "Chen": "3000.00", "Du": "1800.00"}
    du = by_cadre(lines)[str(c["d"])]
    items = {k: du.pop(k) for k in ("components", "deductions")}
    assert du == {
        "cadre_id": str(c["d"]),
        "cadre_name": "Du",
        "village_id": str(u["village_b"]),
        "village_name": "Village B",
        "township_id": str(u["town_b"]),
        "township_name": "Town B",
        "kind": "regular",
        "for_month": "2026-11",
        "gross": "2000.00",
        "deductions_total": "200.00",
        "deductions_applied": "200.00",
        "carried_forward": "0.00",
        "net": "1800.00",
        "policy_version": "posted_subsidy@2018-01-01,study_class@2018-01-01",
    }
    assert [(i["kind"], i["amount"]) for i in items["components"]] == [
        ("posted_subsidy", "2000.00")
    ]
    assert [(i["kind"], i["amount"]) for i in items["deductions"]] == [("study_class", "200.00")]
    assert by_cadre(lines)[str(c["b"])]["township_id"] == str(u["town_a"])  # group's township
    assert by_cadre(lines)[str(c["c"])]["township_id"] is None
    totals = batch["totals"]
    assert (totals["lines"], totals["gross"], totals["deductions_total"], totals["net"]) == (
        4, "8400.00", "200.00", "8200.00"
    )  # fmt: skip
    towns = {t["township_id"]: t for t in totals["by_township"]}
    assert towns[str(u["town_a"])]["net"] == "3400.00"
    assert towns[str(u["town_a"])]["township_name"] == "Town A"
    assert towns[str(u["town_b"])]["net"] == "1800.00" and towns[None]["net"] == "3000.00"
    assert sum(Decimal(x["net"]) for x in lines) == Decimal(totals["net"])
    assert batch["policy_versions"] == [
        "posted_subsidy@2018-01-01", "study_class@2018-01-01", "village_cadre_pay@2018-01-01"
    ]  # fmt: skip
    [drafted] = await events(system, "incentives.batch.drafted")
    assert drafted["batch_id"] == batch["id"] and drafted["total_net"] == "8200.00"
    assert drafted["lines"] == 4 and drafted["entity_version"] == 1
    listed = await system.client.get(
        f"{BASE}/stipend-batches", params={"month": "2026-11"}, headers=finance(system)
    )
    assert [b["id"] for b in listed.json()["items"]] == [batch["id"]]


async def test_one_batch_per_month(system, world):
    first = await build(system, "2026-11")
    r = await system.client.post(
        f"{BASE}/stipend-batches", json={"month": "2026-11"}, headers=finance(system)
    )
    assert r.status_code == 409
    assert r.json()["code"] == "batch_exists" and r.json()["existing_id"] == first["id"]


@pytest.mark.parametrize("month", ["2026-13", "26-11", "", "2026/11"])
async def test_bad_month_is_422_naming_month(system, month):
    r = await system.client.post(
        f"{BASE}/stipend-batches", json={"month": month}, headers=finance(system)
    )
    assert r.status_code == 422 and r.json()["field"] == "month"
    r = await system.client.get(
        f"{BASE}/stipend-batches", params={"month": month or "x"}, headers=finance(system)
    )
    assert r.status_code == 422 and r.json()["field"] == "month"


async def test_a_month_not_started_has_no_batch(system):
    r = await system.client.post(
        f"{BASE}/stipend-batches", json={"month": "2026-12"}, headers=finance(system)
    )
    assert r.status_code == 409 and r.json()["code"] == "month_not_started"


async def test_only_finance_writes_auditor_reads(system, world):
    batch = await build(system, "2026-11")
    bid = batch["id"]
    for role in (Role.org_admin, Role.auditor, Role.cadre, Role.inspector):
        h = system.headers(role)
        for path in ("", f"/{bid}/lock", f"/{bid}/pay"):
            body = {"month": "2026-10"} if not path else None
            r = await system.client.post(f"{BASE}/stipend-batches{path}", json=body, headers=h)
            assert r.status_code == 403, (role, path)
        r = await system.client.get(f"{BASE}/stipend-batches/{bid}/export", headers=h)
        assert r.status_code == 403
    auditor = system.headers(Role.auditor)
    for path in ("", f"/{bid}", f"/{bid}/lines"):
        assert (
            await system.client.get(f"{BASE}/stipend-batches{path}", headers=auditor)
        ).status_code == 200
    for role in (Role.org_admin, Role.cadre):
        r = await system.client.get(f"{BASE}/stipend-batches/{bid}", headers=system.headers(role))
        assert r.status_code == 403
    missing = "00000000-0000-0000-0000-000000000000"
    for path in ("", "/lines"):
        r = await system.client.get(f"{BASE}/stipend-batches/{missing}{path}", headers=auditor)
        assert r.status_code == 404


async def test_line_filters_and_pages(system, world):
    c, u = world["cadres"], world["units"]
    bid = (await build(system, "2026-11"))["id"]
    names = lambda lines: sorted(x["cadre_name"] for x in lines)  # noqa: E731
    assert names(await lines_of(system, bid, unit_id=str(u["town_a"]))) == ["An", "Bo"]
    assert names(await lines_of(system, bid, unit_id=str(u["village_a"]))) == ["An", "Bo"]
    assert names(await lines_of(system, bid, unit_id=str(u["group_a"]))) == ["Bo"]
    assert names(await lines_of(system, bid, unit_id=str(u["town_b"]))) == ["Du"]
    assert names(await lines_of(system, bid, cadre_id=str(c["c"]))) == ["Chen"]
    assert names(await lines_of(system, bid, with_deductions="true")) == ["Du"]
    assert names(await lines_of(system, bid, kind="adjustment")) == []
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        r = await system.client.get(
            f"{BASE}/stipend-batches/{bid}/lines", params=params, headers=finance(system)
        )
        seen += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert names(seen) == ["An", "Bo", "Chen", "Du"]
    # a finance user scoped to a unit sees that subtree only
    scoped = system.headers(Role.finance, unit_id=u["town_b"])
    r = await system.client.get(f"{BASE}/stipend-batches/{bid}/lines", headers=scoped)
    assert names(r.json()["items"]) == ["Du"]


async def test_a_draft_is_kept_current_by_events(system, world):
    c, u = world["cadres"], world["units"]
    bid = (await build(system, "2026-11"))["id"]
    entry_id, _ = await entry(system, c["a"], day=date(2026, 11, 20))
    await action(system, c["a"], entry_id, day=date(2026, 11, 20), rung="admonition_talk", count=1)
    newcomer, _ = await cadre(system, name="Fan")
    pid, _ = await posting(system, newcomer, u["village_b"], start=date(2026, 11, 16))
    lines = by_cadre(await lines_of(system, bid))
    assert lines[str(c["a"])]["net"] == "1500.00"
    assert lines[str(newcomer)]["net"] == "1000.00"
    # a posting withdrawn before it began leaves nothing to pay: the line goes
    await end_posting(
        system, pid, newcomer, u["village_b"], start=date(2026, 11, 16), end=date(2026, 11, 15)
    )
    assert str(newcomer) not in by_cadre(await lines_of(system, bid))
    batch = (
        await system.client.get(f"{BASE}/stipend-batches/{bid}", headers=finance(system))
    ).json()
    assert batch["totals"]["net"] == "7700.00"


async def test_lock_freezes_the_batch_and_late_events_become_adjustments(system, world):
    c = world["cadres"]
    october = await build(system, "2026-10")
    assert october["totals"]["net"] == "7000.00"  # a, c, d; b not yet posted
    bid = october["id"]
    locked = await system.client.post(f"{BASE}/stipend-batches/{bid}/lock", headers=finance(system))
    assert locked.status_code == 200
    body = locked.json()
    assert body["status"] == "locked" and re.fullmatch(r"[0-9a-f]{64}", body["content_hash"])
    again = await system.client.post(f"{BASE}/stipend-batches/{bid}/lock", headers=finance(system))
    assert again.status_code == 409 and again.json()["code"] == "batch_locked"
    frozen = (
        await system.client.get(f"{BASE}/stipend-batches/{bid}", headers=finance(system))
    ).content
    assert frozen == locked.content
    lines_before = await lines_of(system, bid)
    # anyone holding the lines can check the hash (README: the recipe)
    ordered = sorted(lines_before, key=lambda x: (x["cadre_id"], x["for_month"], x["kind"]))
    text = json.dumps({"month": "2026-10", "lines": ordered}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)  # fmt: skip
    assert hashlib.sha256(text.encode()).hexdigest() == body["content_hash"]

    # A late October deduction for An, before November has a batch
    entry_id, _ = await entry(system, c["a"], day=date(2026, 10, 28))
    late, late_event = await action(
        system, c["a"], entry_id, day=date(2026, 10, 28), rung="study_class", count=1
    )
    assert (await eligibility(system, c["a"], "2026-10"))["net"] == "1800.00"
    after = await system.client.get(f"{BASE}/stipend-batches/{bid}", headers=finance(system))
    assert after.content == frozen
    assert await lines_of(system, bid) == lines_before

    november = await build(system, "2026-11")
    [adj] = await lines_of(system, november["id"], kind="adjustment")
    assert adj["components"] == []  # only what changed since October was locked
    assert [(d["kind"], d["amount"], d["source"]["id"]) for d in adj["deductions"]] == [
        ("study_class", "200.00", late_event)
    ]
    del adj["components"], adj["deductions"]
    assert adj == {
        "cadre_id": str(c["a"]),
        "cadre_name": "An",
        "village_id": str(world["units"]["village_a"]),
        "village_name": "Village A",
        "township_id": str(world["units"]["town_a"]),
        "township_name": "Town A",
        "kind": "adjustment",
        "for_month": "2026-10",
        "gross": "0.00",
        "deductions_total": "200.00",
        "deductions_applied": "200.00",
        "carried_forward": "0.00",
        "net": "-200.00",
        "policy_version": "posted_subsidy@2018-01-01,study_class@2018-01-01",
    }
    assert november["totals"]["net"] == "8000.00"  # 8,200.00 regular - 200.00

    # while November is a draft its adjustments follow October's changes
    await action(
        system, c["a"], entry_id, day=date(2026, 10, 28), rung="study_class", count=1,
        status="cancelled", action_id=late,
    )  # fmt: skip
    assert await lines_of(system, november["id"], kind="adjustment") == []
    # Bo's earlier posting, recorded late: 17..31 October is 15/31 of 2,000.00
    await posting(
        system, c["b"], world["units"]["village_a"], start=date(2026, 10, 17),
        end=date(2026, 11, 9), role="member",
    )  # fmt: skip
    [adj] = await lines_of(system, november["id"], kind="adjustment")
    assert (adj["cadre_id"], adj["for_month"], adj["net"]) == (str(c["b"]), "2026-10", "967.74")
    assert adj["gross"] == "967.74" and adj["deductions_total"] == "0.00"
    regular = await lines_of(system, november["id"], cadre_id=str(c["b"]), kind="regular")
    assert regular[0]["net"] == "2000.00"  # 9/30 from the earlier posting + 21/30
    current = (
        await system.client.get(f"{BASE}/stipend-batches/{november['id']}", headers=finance(system))
    ).json()
    lines = await lines_of(system, november["id"])
    assert sum(Decimal(x["net"]) for x in lines) == Decimal(current["totals"]["net"])
    assert (
        await system.client.get(f"{BASE}/stipend-batches/{bid}", headers=finance(system))
    ).content == frozen
    [locked_event] = await events(system, "incentives.batch.locked")
    assert locked_event["content_hash"] == body["content_hash"]


async def test_pay_a_locked_batch(system, world):
    bid = (await build(system, "2026-11"))["id"]
    h = finance(system)
    early = await system.client.post(f"{BASE}/stipend-batches/{bid}/pay", headers=h)
    assert early.status_code == 409 and early.json()["code"] == "batch_not_locked"
    locked = (await system.client.post(f"{BASE}/stipend-batches/{bid}/lock", headers=h)).json()
    paid = await system.client.post(f"{BASE}/stipend-batches/{bid}/pay", headers=h)
    assert paid.status_code == 200
    assert paid.json()["status"] == "paid" and paid.json()["paid_at"]
    assert paid.json()["content_hash"] == locked["content_hash"]
    assert paid.json()["totals"] == locked["totals"]
    twice = await system.client.post(f"{BASE}/stipend-batches/{bid}/pay", headers=h)
    assert twice.status_code == 409
    got = await system.client.get(f"{BASE}/stipend-batches/{bid}", headers=h)
    assert got.content == paid.content
    [paid_event] = await events(system, "incentives.batch.paid")
    assert paid_event["status"] == "paid"
    # Drafted, locked, paid: each announcement is the batch's next version.
    [locked_event] = await events(system, "incentives.batch.locked")
    assert (locked_event["entity_version"], paid_event["entity_version"]) == (2, 3)


async def test_a_build_is_set_based(system):
    """The statements a build runs do not grow with its cadres (no query per cadre)."""
    from uuid import uuid4

    from sqlalchemy import event

    from services.incentives.models import cadre_states, cadres, postings

    src = {"event_id": str(uuid4()), "event_type": "test"}
    unit = uuid4()

    def posted(first: date, last: date) -> tuple[list, list, list]:
        c, s, p = [], [], []
        for i in range(first.day, last.day + 1):
            cid = uuid4()
            c.append({"cadre_id": cid, "name": f"c{i}", "category": "resident_cadre",
                      "active": True, "effective_date": first} | src)  # fmt: skip
            s.append({"cadre_id": cid, "effective_date": first, "category": "resident_cadre",
                      "active": True} | src)  # fmt: skip
            p.append({"posting_id": uuid4(), "cadre_id": cid, "unit_id": unit, "role": "member",
                      "start_date": first, "end_date": last} | src)  # fmt: skip
        return c, s, p

    async with system.transaction("incentives") as s:
        for first, last in (
            (date(2026, 8, 1), date(2026, 8, 3)),
            (date(2026, 9, 1), date(2026, 9, 30)),
        ):
            c, st, p = posted(first, last)
            await s.execute(cadres.insert(), c)
            await s.execute(cadre_states.insert(), st)
            await s.execute(postings.insert(), p)
    engine = system.runtime("incentives").engine.sync_engine
    counted = []

    def listener(conn, cursor, statement, *args):
        # not the relay's polling nor the token-version refresh, which run meanwhile
        background = ("outbox", "advisory", "user_token_version")
        if not any(w in statement for w in background):
            counted.append(statement)

    statements = {}
    for month, lines in (("2026-08", 3), ("2026-09", 30)):
        counted.clear()
        event.listen(engine, "before_cursor_execute", listener)
        try:
            batch = await build(system, month)
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert batch["totals"]["lines"] == lines
        statements[month] = list(counted)
    assert len(statements["2026-08"]) == len(statements["2026-09"])


async def test_a_unit_announced_late_refiles_draft_lines(system):
    """Units and cadres travel on different keys: a posting may arrive before its unit."""
    from shared.contracts.registry import UnitUpserted
    from tests.incentives.factories import emit, new_id

    county_id, town, village = new_id(), new_id(), new_id()
    cid, _ = await cadre(system, name="Gao")
    await posting(system, cid, village, start=date(2026, 1, 1))
    bid = (await build(system, "2026-11"))["id"]
    assert (await lines_of(system, bid))[0]["township_id"] is None
    for unit, kind, parent, ancestors in (
        (county_id, "county", None, []),
        (town, "township", county_id, [county_id]),
        (village, "village", town, [county_id, town]),
    ):
        payload = UnitUpserted(
            unit_id=unit, code=kind, name=kind.title(), kind=kind, parent_id=parent,
            ancestors=ancestors, entity_version=1,
        )  # fmt: skip
        await emit(system, payload, unit)
    [line] = await lines_of(system, bid, unit_id=str(county_id))
    assert line["township_id"] == str(town)
    batch = (
        await system.client.get(f"{BASE}/stipend-batches/{bid}", headers=finance(system))
    ).json()
    assert batch["totals"]["by_township"][0]["township_name"] == "Township"


async def test_a_lock_waits_for_a_handler_in_flight(system, world):
    """A handler writing lines holds the guard: a lock started meanwhile waits and hashes
    what the handler committed, so a locked batch never changes after its hash."""
    import asyncio
    from uuid import UUID

    from services.incentives.models import lines
    from services.incentives.service.lines import share_guard

    bid = (await build(system, "2026-11"))["id"]
    an = world["cadres"]["a"]
    async with system.transaction("incentives") as s:  # as an event handler does
        await share_guard(s)
        await s.execute(
            lines.update()
            .where(lines.c.batch_id == UUID(bid), lines.c.cadre_id == an)
            .values(net=Decimal("1.00"))
        )
        locking = asyncio.create_task(
            system.client.post(f"{BASE}/stipend-batches/{bid}/lock", headers=finance(system))
        )
        await asyncio.sleep(0.3)
        assert not locking.done()
    locked = (await locking).json()
    current = await lines_of(system, bid)
    assert by_cadre(current)[str(an)]["net"] == "1.00"
    ordered = sorted(current, key=lambda x: (x["cadre_id"], x["for_month"], x["kind"]))
    text = json.dumps({"month": "2026-11", "lines": ordered}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)  # fmt: skip
    assert hashlib.sha256(text.encode()).hexdigest() == locked["content_hash"]


async def test_a_village_cadre_never_posted_files_under_their_home_township(system):
    units = await unit_tree(system)
    cid, _ = await cadre(
        system,
        name="Fan",
        category="village_cadre",
        position="committee_member",
        unit_id=units["village_b"],
    )
    batch = await build(system, "2026-11")
    [line] = [x for x in await lines_of(system, batch["id"]) if x["cadre_id"] == str(cid)]
    assert (line["township_id"], line["net"]) == (str(units["town_b"]), "2040.00")
