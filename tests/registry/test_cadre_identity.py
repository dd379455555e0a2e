"""A cadre's ID-card number, bank details and position_since (issue 13, findings 4 and 9):
checked (GB 11643), encrypted at rest, masked in every read, never plain in the database,
the audit log or an event; and the cadre import reporting every bad field of a row
(finding 10)."""

from sqlalchemy import text

from services.registry.identity import id_card_problem
from tests.registry.factories import API, admin, bus_events, get, make_cadre, make_tree
from tests.registry.test_imports import csv_bytes, upload

WEIGHTS = [2 ** (17 - i) % 11 for i in range(17)]


def id_card(body17: str = "52232819900101123") -> str:
    """A valid number: 17 digits and their GB 11643 check character."""
    return (
        body17 + "10X98765432"[sum(int(c) * w for c, w in zip(body17, WEIGHTS, strict=True)) % 11]
    )


ID = id_card()
ACCOUNT = "6228480402564890018"


async def stored_text(system, service: str, *tables: str) -> str:
    async with system.transaction(service) as s:
        rows = []
        for table in tables:
            rows += (await s.execute(text(f"SELECT * FROM {table}"))).all()
    return repr(rows)


def test_the_checksum_and_the_birth_date():
    assert id_card_problem("11010519491231002X") is None  # the standard's own example
    assert id_card_problem(ID) is None
    assert "check digit" in id_card_problem(ID[:17] + ("0" if ID[17] != "0" else "1"))
    assert "birth date" in id_card_problem(id_card("52232819901301123"))  # month 13
    assert "birth date" in id_card_problem(id_card("52232819900230123"))  # 30 February
    assert "18 characters" in id_card_problem(ID[:17])
    assert "18 characters" in id_card_problem(ID[:16] + "A" + ID[17])


async def test_stored_encrypted_masked_in_reads_and_plain_nowhere(system):
    cadre = await make_cadre(
        system,
        category="village_cadre",
        position="party_secretary",
        id_card_no=ID.lower() if ID.endswith("X") else ID,
        bank_name="中国农业银行安龙支行",
        bank_account="6228 4804 0256 4890 018",
    )
    masked = {"id_card_no": ID[:4] + "*" * 10 + ID[-4:], "bank_account": "6228***********0018"}
    assert {k: cadre[k] for k in masked} == masked and cadre["bank_name"] == "中国农业银行安龙支行"
    assert {k: (await get(system, f"/cadres/{cadre['id']}"))[k] for k in masked} == masked
    listed = (await get(system, "/cadres"))["items"]
    assert [{k: c[k] for k in masked} for c in listed if c["id"] == cadre["id"]] == [masked]
    # A PATCH changing something else keeps them; one clearing the bank clears both halves.
    changed = await system.client.patch(
        f"{API}/cadres/{cadre['id']}", json={"name": "改名"}, headers=admin(system)
    )
    assert {k: changed.json()[k] for k in masked} == masked
    # The event carries ciphertext only, which the shared key opens.
    [event] = [
        e
        for e in await bus_events(system, "registry.cadre.upserted")
        if e["cadre_id"] == cadre["id"] and e["name"] == "改名"
    ]
    cipher = system.app.state.field_cipher
    assert cipher.decrypt("id_card_no", event["id_card_no_enc"]) == ID
    assert cipher.decrypt("bank_account", event["bank_account_enc"]) == ACCOUNT
    everywhere = await stored_text(system, "registry", "cadre", "audit_log", "outbox")
    everywhere += repr(await bus_events(system))
    for secret in (ID, ACCOUNT, "6228 4804 0256 4890 018", ID[6:]):
        assert secret not in everywhere


async def test_bad_numbers_are_422_naming_the_field_and_write_nothing(system):
    base = {"name": "甲", "phone": "13911112222", "category": "resident_cadre"}
    bad = [
        ({"id_card_no": ID[:17] + ("1" if ID[17] != "1" else "2")}, "id_card_no"),
        ({"id_card_no": id_card("52232819901301123")}, "id_card_no"),
        ({"bank_name": "农行", "bank_account": "62284804A2564890018"}, "bank_account"),
        ({"bank_name": "农行", "bank_account": "123"}, "bank_account"),
        ({"bank_account": ACCOUNT}, "bank_name"),
        ({"bank_name": "农行"}, "bank_account"),
        ({"position_since": "2026-01-01"}, "position_since"),  # not a village cadre
    ]
    for extra, field in bad:
        r = await system.client.post(f"{API}/cadres", json=base | extra, headers=admin(system))
        assert r.status_code == 422 and r.json()["field"] == field, (extra, r.text)
        assert ID not in r.text and ACCOUNT not in r.text
    assert (await get(system, "/cadres"))["items"] == []
    cadre = await make_cadre(system)
    r = await system.client.patch(
        f"{API}/cadres/{cadre['id']}", json={"bank_account": ACCOUNT}, headers=admin(system)
    )
    assert r.status_code == 422 and r.json()["field"] == "bank_name"
    assert (await get(system, f"/cadres/{cadre['id']}"))["bank_account"] is None


async def test_position_since_on_create_patch_and_its_default(system):
    default = await make_cadre(system, category="village_cadre", position="committee_member")
    assert default["position_since"] == "2026-11-25"  # registration date when absent
    held = await make_cadre(
        system, category="village_cadre", position="deputy_director", position_since="2025-03-01"
    )
    assert held["position_since"] == "2025-03-01"
    other = await make_cadre(system)
    assert other["position_since"] is None

    async def patch(cadre, body):
        r = await system.client.patch(
            f"{API}/cadres/{cadre['id']}", json=body, headers=admin(system)
        )
        assert r.status_code == 200, r.text
        return r.json()

    assert (await patch(held, {"position_since": "2024-07-01"}))["position_since"] == "2024-07-01"
    # A new position is held from its effective_date (the way that worked before).
    moved = await patch(held, {"position": "party_secretary", "effective_date": "2026-10-01"})
    assert moved["position_since"] == "2026-10-01"
    assert (await patch(held, {"position_since": None}))["position_since"] == "2026-11-25"
    events = [
        (e["effective_date"], e["position_since"])
        for e in await bus_events(system, "registry.cadre.upserted")
        if e["cadre_id"] == held["id"]
    ]
    assert events == [
        ("2026-11-25", "2025-03-01"),
        ("2026-11-25", "2024-07-01"),
        ("2026-10-01", "2026-10-01"),
        ("2026-11-25", "2026-11-25"),
    ]


COLUMNS = ["name", "phone", "category", "position", "position_since"]
COLUMNS += ["id_card_no", "bank_name", "bank_account", "unit_code", "role", "start_date"]


async def test_the_import_takes_the_new_fields(system):
    t = await make_tree(system)
    rows = [
        {
            "name": "村支书",
            "phone": "13600000001",
            "category": "village_cadre",
            "position": "party_secretary",
            "position_since": "2024-01-01",
            "id_card_no": ID,
            "bank_name": "信用社",
            "bank_account": ACCOUNT,
        },
        {"name": "驻村", "phone": "13600000002", "category": "resident_cadre"},
    ]
    r = await upload(system, "cadres", csv_bytes(COLUMNS, rows), "c.csv")
    assert r.status_code == 200, r.text
    got = {c["phone"]: c for c in (await get(system, "/cadres"))["items"]}
    one = got["13600000001"]
    assert one["position_since"] == "2024-01-01" and one["bank_name"] == "信用社"
    assert one["id_card_no"] == ID[:4] + "*" * 10 + ID[-4:]
    assert one["bank_account"] == "6228***********0018"
    assert got["13600000002"]["id_card_no"] is None
    stored = await stored_text(system, "registry", "cadre", "audit_log", "outbox")
    assert ID not in stored and ACCOUNT not in stored
    assert t  # the tree is only there to be named by the next test's rows


async def test_the_import_reports_every_bad_field_of_a_row(system):
    """Finding 10: a row with several bad fields names each of them, whether a field is bad
    by itself (format) or against the database (unknown unit, phone taken)."""
    t = await make_tree(system)
    taken = await make_cadre(system)
    rows = [
        {
            "name": "x",
            "phone": taken["phone"],
            "category": "resident_cadre",
            "id_card_no": ID[:17] + ("1" if ID[17] != "1" else "2"),
            "bank_name": "农行",
            "bank_account": "12ab",
            "unit_code": "NOPE",
            "role": "member",
            "start_date": "someday",
        },
        {
            "name": "y",
            "phone": "13600000009",
            "category": "wizard",
            "position_since": "2026-13-01",
            "unit_code": t["village"]["code"],
            "role": "member",
            "start_date": "2026-01-01",
        },
        {
            "name": "z",
            "phone": "13600000010",
            "category": "resident_cadre",
            "position_since": "2026-01-01",
            "bank_account": ACCOUNT,
        },
    ]
    r = await upload(system, "cadres", csv_bytes(COLUMNS, rows), "c.csv")
    assert r.status_code == 422 and r.json()["code"] == "import_invalid"
    fields = sorted((e["row"], e["field"]) for e in r.json()["errors"])
    assert fields == [
        (2, "bank_account"),
        (2, "id_card_no"),
        (2, "phone"),
        (2, "start_date"),
        (2, "unit_code"),
        (3, "category"),
        (3, "position_since"),
        (4, "bank_name"),
        (4, "position_since"),
    ]
    assert ID[:17] not in r.text and ACCOUNT not in r.text
    assert [c["id"] for c in (await get(system, "/cadres"))["items"]] == [taken["id"]]
