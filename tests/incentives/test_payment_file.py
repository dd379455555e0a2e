"""Issue 13 through the HTTP API, registry and incentives together: a village cadre is paid
from the date the position has been held since (finding 4), and finance gets a bank payment
file of a locked batch (finding 9): ID card, bank and account decrypted only there, cadres
without bank details listed apart, formula-safe, audited, county-wide finance only."""

import csv
import io
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text

from services.incentives.service.payments import MISSING_COLUMNS, PAYMENT_COLUMNS
from shared.contracts.enums import Role
from tests.registry.test_cadre_identity import ACCOUNT, ID, id_card

REG, INC = "/registry/v1", "/incentives/v1"
ID2 = id_card("52232819851111002")


@pytest.fixture
def services() -> list[str]:
    return ["registry", "incentives"]


async def call(system, method, path, role=Role.org_admin, status=None, **kw):
    r = await system.client.request(method, path, headers=system.headers(role), **kw)
    if status is not None:
        assert r.status_code == status, r.text
    return r


async def post(system, path, body, role=Role.org_admin):
    return (await call(system, "POST", path, role, 201, json=body)).json()


async def village(system) -> dict:
    county = await post(system, f"{REG}/org-units", {"code": "C", "name": "安龙", "kind": "county"})
    town = await post(
        system,
        f"{REG}/org-units",
        {"code": "T", "name": "招堤", "kind": "township", "parent_id": county["id"]},
    )
    fence = {"lat": 25.1, "lon": 105.4, "radius_m": 800}
    body = {
        "code": "V",
        "name": "村",
        "kind": "village",
        "parent_id": town["id"],
        "geofence": fence,
    }
    return await post(system, f"{REG}/org-units", body)


async def pay(system, cadre_id: str, month: str) -> dict[str, Decimal]:
    await system.settle()
    r = await call(
        system, "GET", f"{INC}/eligibility/{cadre_id}", Role.finance, 200, params={"month": month}
    )
    return {c["kind"]: Decimal(c["amount"]) for c in r.json()["components"]}


def cadre_body(n: int, **extra) -> dict:
    return {"name": f"干部{n}", "phone": f"1370000{n:04d}", "category": "village_cadre"} | extra


async def test_pay_starts_from_position_since(system):
    """Finding 4: registered on 25 November, secretary since 10 November: paid 21/30 days of
    November, pay and deputy-section treatment alike; moving position_since back pays
    October too; without it, pay starts on the registration date."""
    since = await post(
        system,
        f"{REG}/cadres",
        cadre_body(1, position="party_secretary", position_since="2026-11-10"),
    )
    honor = {"cadre_id": since["id"], "level": "province", "year": 2025, "title": "优秀"}
    await post(system, f"{REG}/honors", honor)
    assert await pay(system, since["id"], "2026-11") == {
        "village_cadre_pay": Decimal("2100.00"),  # 3,000.00 x 21/30
        "deputy_section_treatment": Decimal("1050.00"),  # 1,500.00 x 21/30
    }
    assert await pay(system, since["id"], "2026-10") == {}
    await call(
        system,
        "PATCH",
        f"{REG}/cadres/{since['id']}",
        status=200,
        json={"position_since": "2026-10-01"},
    )
    assert await pay(system, since["id"], "2026-10") == {
        "village_cadre_pay": Decimal("3000.00"),
        "deputy_section_treatment": Decimal("1500.00"),
    }
    # Later again: the days before it hold no position.
    await call(
        system,
        "PATCH",
        f"{REG}/cadres/{since['id']}",
        status=200,
        json={"position_since": "2026-11-16"},
    )
    assert await pay(system, since["id"], "2026-10") == {}
    assert (await pay(system, since["id"], "2026-11"))["village_cadre_pay"] == Decimal("1500.00")

    plain = await post(system, f"{REG}/cadres", cadre_body(2, position="committee_member"))
    assert await pay(system, plain["id"], "2026-11") == {"village_cadre_pay": Decimal("408.00")}
    # The old way still works: a position change dated by effective_date.
    await call(
        system,
        "PATCH",
        f"{REG}/cadres/{plain['id']}",
        status=200,
        json={"position": "deputy_director", "effective_date": "2026-11-01"},
    )
    assert await pay(system, plain["id"], "2026-11") == {"village_cadre_pay": Decimal("2400.00")}


def sections(body: bytes) -> list[list[list[str]]]:
    out, current = [], []
    for row in csv.reader(io.StringIO(body.decode("utf-8"))):
        if not row:
            out.append(current)
            current = []
        else:
            current.append(row)
    return [*out, current]


async def test_payment_file_of_a_locked_batch(system):
    """Finding 9 (bank part)."""
    v = await village(system)
    banked = await post(
        system,
        f"{REG}/cadres",
        cadre_body(
            3,
            position="party_secretary",
            position_since="2026-01-01",
            id_card_no=ID,
            bank_name="安龙农商银行",
            bank_account=ACCOUNT,
        ),
    )
    formula = await post(
        system,
        f"{REG}/cadres",
        cadre_body(
            4,
            name="=HYPERLINK(1)",
            position="committee_member",
            id_card_no=ID2,
            bank_name="@农行",
            bank_account="6222020200112233",
        ),
    )
    unbanked = await post(
        system, f"{REG}/cadres", cadre_body(5, category="resident_cadre", unit_id=v["id"])
    )
    posting = {"cadre_id": unbanked["id"], "unit_id": v["id"], "role": "member"}
    await post(system, f"{REG}/postings", posting | {"start_date": "2026-11-01"})
    await system.settle()

    batch = await post(system, f"{INC}/stipend-batches", {"month": "2026-11"}, Role.finance)
    url = f"{INC}/stipend-batches/{batch['id']}/payment-file"
    r = await call(system, "GET", url, Role.finance, 409)
    assert r.json()["code"] == "batch_not_locked"
    await call(system, "POST", f"{INC}/stipend-batches/{batch['id']}/lock", Role.finance, 200)

    r = await call(system, "GET", url, Role.finance, 200)
    assert r.headers["content-type"].startswith("text/csv")
    head, payments, missing, totals = sections(r.content)
    assert (
        dict(head)
        == {
            "batch_id": batch["id"],
            "month": "2026-11",
            "status": "locked",
            "content_hash": dict(head)["content_hash"],
        }
        and len(dict(head)["content_hash"]) == 64
    )
    assert payments[0] == ["payments"] and payments[1] == PAYMENT_COLUMNS
    rows = [dict(zip(PAYMENT_COLUMNS, p, strict=True)) for p in payments[2:]]
    rows = sorted(rows, key=lambda p: p["id_card_no"])
    async with system.transaction("incentives") as s:
        line_ids = dict((await s.execute(text("SELECT cadre_id, id FROM stipend_lines"))).all())
    line_ids = {str(uuid.UUID(str(k))): str(uuid.UUID(str(v))) for k, v in line_ids.items()}
    assert [{k: v for k, v in p.items() if k != "line_id"} for p in rows] == [
        {
            "cadre_name": "'=HYPERLINK(1)",
            "id_card_no": ID2,
            "bank_name": "'@农行",
            "bank_account": "6222020200112233",
            "amount": "408.00",  # 2,040.00 x 6/30: no position_since, from 25 November
            "month": "2026-11",
        },
        {
            "cadre_name": "干部3",
            "id_card_no": ID,
            "bank_name": "安龙农商银行",
            "bank_account": ACCOUNT,
            "amount": "3000.00",
            "month": "2026-11",
        },
    ]
    assert [p["line_id"] for p in rows] == [line_ids[formula["id"]], line_ids[banked["id"]]]
    assert missing[0] == ["missing_bank_details"] and missing[1] == MISSING_COLUMNS
    [gap] = [dict(zip(MISSING_COLUMNS, m, strict=True)) for m in missing[2:]]
    assert gap["cadre_id"] == unbanked["id"] and gap["amount"] == "2000.00"
    assert gap["missing"] == "id_card_no;bank_name;bank_account"
    assert dict(totals) == {
        "payments_count": "2",
        "payments_total": "3408.00",
        "missing_count": "1",
        "missing_total": "2000.00",
    }

    # County-wide finance only.
    for role, kw in [
        (Role.org_admin, {}),
        (Role.auditor, {}),
        (Role.finance, {"unit_id": v["id"]}),
    ]:
        r = await system.client.get(url, headers=system.headers(role, **kw))
        assert r.status_code == 403, (role, r.text)

    # Audited: who took which batch's file; the plaintext is nowhere in incentives.
    audit = await call(
        system, "GET", f"{INC}/audit", Role.auditor, 200, params={"target": batch["id"]}
    )
    taken = [a for a in audit.json()["items"] if a["action"].endswith("/payment-file")]
    assert len(taken) == 1 and taken[0]["roles"] == ["finance"]
    assert taken[0]["summary"]["payments"] == 2 and taken[0]["summary"]["missing"] == 1
    async with system.transaction("incentives") as s:
        stored = ""
        for table in ("cadres", "audit_log", "outbox", "stipend_lines"):
            stored += repr((await s.execute(text(f"SELECT * FROM {table}"))).all())
    for secret in (ID, ID2, ACCOUNT, "6222020200112233"):
        assert secret not in stored

    # Paid, the file is still there; an unknown batch is 404.
    await call(system, "POST", f"{INC}/stipend-batches/{batch['id']}/pay", Role.finance, 200)
    assert (await call(system, "GET", url, Role.finance, 200)).content.count(ACCOUNT.encode()) == 1
    missing_url = f"{INC}/stipend-batches/00000000-0000-0000-0000-000000000000/payment-file"
    await call(system, "GET", missing_url, Role.finance, 404)
