"""Bulk import from CSV and XLSX: all rows or none, a per-row report, events for each row."""

import csv
import io
from datetime import date

from openpyxl import Workbook
from sqlalchemy import func, select

from services.registry.models import Cadre, OrgUnit, Posting
from shared.contracts.enums import Role
from tests.registry.factories import API, admin, bus_events, get, make_cadre, make_tree

UNIT_COLUMNS = [
    "code",
    "name",
    "kind",
    "parent_code",
    "lat",
    "lon",
    "radius_m",
    "special_difficulty",
]
CADRE_COLUMNS = [
    "name",
    "phone",
    "category",
    "position",
    "unit_code",
    "role",
    "start_date",
    "end_date",
]


def csv_bytes(columns: list[str], rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def xlsx_bytes(columns: list[str], rows: list[list]) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(columns)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def upload(system, kind: str, content: bytes, filename: str, headers=None, **params):
    return await system.client.post(
        f"{API}/imports/{kind}",
        files={"file": (filename, content)},
        params=params,
        headers=headers or admin(system),
    )


async def counts(system) -> tuple[int, int, int]:
    async with system.transaction("registry") as s:
        return tuple(
            [await s.scalar(select(func.count()).select_from(m)) for m in (OrgUnit, Cadre, Posting)]
        )


async def test_csv_units_then_cadres_with_postings(system):
    t = await make_tree(system)
    units = [
        {
            "code": "V-NEW",
            "name": "纳黑村",
            "kind": "village",
            "parent_code": t["town"]["code"],
            "lat": "25.1",
            "lon": "105.4",
            "radius_m": "900",
        },
        {
            "code": "G-NEW",
            "name": "一组",
            "kind": "group",
            "parent_code": "V-NEW",
            "special_difficulty": "true",
        },
    ]
    r = await upload(system, "org-units", csv_bytes(UNIT_COLUMNS, units[::-1]), "units.csv")
    assert r.status_code == 200, r.text
    assert r.json() == {"dry_run": False, "rows": 2, "created": {"units": 2}}
    by_code = {
        u["code"]: u for u in (await get(system, "/org-units", unit_id=t["town"]["id"]))["items"]
    }
    village, group = by_code["V-NEW"], by_code["G-NEW"]
    assert village["geofence"] == {"lat": 25.1, "lon": 105.4, "radius_m": 900.0}
    assert group["parent_id"] == village["id"] and group["special_difficulty"] is True
    detail = await get(system, f"/org-units/{group['id']}")
    assert detail["ancestors"] == [t["county"]["id"], t["town"]["id"], village["id"]]
    cadres = [
        {
            "name": "张永方",
            "phone": "13800000001",
            "category": "first_secretary",
            "unit_code": "V-NEW",
            "role": "first_secretary",
            "start_date": "2017-03-01",
        },
        {
            "name": "聂顺江",
            "phone": "13800000002",
            "category": "village_cadre",
            "position": "party_secretary",
            "unit_code": "V-NEW",
            "role": "member",
            "start_date": "2017-01-01",
            "end_date": "2026-12-31",
        },
        {"name": "韦孔成", "phone": "13800000003", "category": "responsible_person"},
    ]
    r = await upload(system, "cadres", csv_bytes(CADRE_COLUMNS, cadres), "cadres.csv")
    assert r.status_code == 200, r.text
    assert r.json()["created"] == {"cadres": 3, "postings": 2}
    posted = await get(system, "/cadres", unit_id=village["id"], posted_on="2026-11-25")
    assert {c["name"] for c in posted["items"]} == {"张永方", "聂顺江"}
    events = await bus_events(system)
    new_units = {e["code"]: e for e in events if e["type"] == "registry.unit.upserted"}
    assert new_units["G-NEW"]["ancestors"] == [t["county"]["id"], t["town"]["id"], village["id"]]
    assert new_units["V-NEW"]["geofence"]["radius_m"] == 900.0
    assert {e["name"] for e in events if e["type"] == "registry.cadre.upserted"} == {
        "张永方",
        "聂顺江",
        "韦孔成",
    }
    opened = [e for e in events if e["type"] == "registry.posting.opened"]
    assert {(e["role"], e["start_date"], e["end_date"]) for e in opened} == {
        ("first_secretary", "2017-03-01", None),
        ("member", "2017-01-01", "2026-12-31"),
    }
    history = await get(system, f"/org-units/{village['id']}/history")
    assert [h["change"] for h in history["items"]] == ["created"]


async def test_xlsx_with_numbers_and_dates(system):
    t = await make_tree(system)
    rows = [
        [
            "王五",
            13900000001,
            "front_group_member",
            None,
            t["group"]["code"],
            "member",
            date(2026, 3, 1),
            None,
        ],
        [
            "赵六",
            13900000002,
            "agricultural_expert",
            None,
            t["village"]["code"],
            "expert",
            "2026-04-01",
            None,
        ],
    ]
    r = await upload(system, "cadres", xlsx_bytes(CADRE_COLUMNS, rows), "cadres.xlsx")
    assert r.status_code == 200, r.text
    listed = await get(system, "/cadres", posted_on="2026-04-01")
    assert {(c["name"], c["phone"]) for c in listed["items"]} == {
        ("王五", "13900000001"),
        ("赵六", "13900000002"),
    }
    postings = await get(system, "/postings", unit_id=t["group"]["id"])
    assert [p["start_date"] for p in postings["items"]] == ["2026-03-01"]


async def test_bad_rows_import_nothing_and_are_reported(system):
    t = await make_tree(system)
    existing = await make_cadre(system)
    before, events_before = await counts(system), len(await bus_events(system))
    rows = [
        {
            "name": "ok",
            "phone": "13700000001",
            "category": "resident_cadre",
            "unit_code": t["village"]["code"],
            "role": "member",
            "start_date": "2026-01-01",
        },
        {"name": "dup", "phone": "13700000001", "category": "resident_cadre"},
        {"name": "taken", "phone": existing["phone"], "category": "resident_cadre"},
        {"name": "", "phone": "13700000004", "category": "wizard"},
        {"name": "vc", "phone": "13700000005", "category": "village_cadre"},
        {
            "name": "commander",
            "phone": "13700000006",
            "category": "county_leader",
            "unit_code": t["village"]["code"],
            "role": "commander",
            "start_date": "2026-01-01",
        },
        {
            "name": "nowhere",
            "phone": "13700000007",
            "category": "resident_cadre",
            "unit_code": "NOPE",
            "role": "member",
            "start_date": "2026-01-01",
        },
        {
            "name": "backwards",
            "phone": "13700000008",
            "category": "resident_cadre",
            "unit_code": t["village"]["code"],
            "role": "member",
            "start_date": "2026-02-01",
            "end_date": "2026-01-01",
        },
        {
            "name": "nostart",
            "phone": "13700000009",
            "category": "resident_cadre",
            "unit_code": t["village"]["code"],
            "role": "member",
            "start_date": "someday",
        },
    ]
    r = await upload(system, "cadres", csv_bytes(CADRE_COLUMNS, rows), "cadres.csv")
    assert r.status_code == 422, r.text
    body = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert body["code"] == "import_invalid"
    report = {(e["row"], e["field"]) for e in body["errors"]}
    assert report == {
        (3, "phone"),
        (4, "phone"),
        (5, "name"),
        (5, "category"),
        (6, "position"),
        (7, "role"),
        (8, "unit_code"),
        (9, "end_date"),
        (10, "start_date"),
    }
    assert all(e["problem"] for e in body["errors"])
    assert body["error_count"] == len(report)
    assert await counts(system) == before
    assert len(await bus_events(system)) == events_before


async def test_unit_import_problems(system):
    t = await make_tree(system)
    before = await counts(system)
    rows = [
        {"code": "T-X", "name": "x", "kind": "township", "parent_code": t["county"]["code"]},
        {"code": "T-X", "name": "again", "kind": "township", "parent_code": t["county"]["code"]},
        {
            "code": t["town"]["code"],
            "name": "taken",
            "kind": "township",
            "parent_code": t["county"]["code"],
        },
        {"code": "G-X", "name": "bad parent", "kind": "group", "parent_code": "T-X"},
        {"code": "V-X", "name": "no parent", "kind": "village", "parent_code": "MISSING"},
        {"code": "V-Y", "name": "half fence", "kind": "village", "parent_code": "T-X", "lat": "25"},
        {
            "code": "V-Z",
            "name": "flagged",
            "kind": "village",
            "parent_code": "T-X",
            "special_difficulty": "yes",
        },
    ]
    r = await upload(system, "org-units", csv_bytes(UNIT_COLUMNS, rows), "units.csv")
    assert r.status_code == 422
    assert {(e["row"], e["field"]) for e in r.json()["errors"]} == {
        (3, "code"),
        (4, "code"),
        (5, "parent_code"),
        (6, "parent_code"),
        (7, "geofence"),
        (8, "special_difficulty"),
    }
    assert await counts(system) == before


async def test_file_level_problems(system):
    r = await upload(system, "cadres", b"name,phone,colour\nx,13800000000,red\n", "c.csv")
    assert r.status_code == 422
    assert {(e["row"], e["field"]) for e in r.json()["errors"]} == {(1, "colour"), (1, "category")}
    r = await upload(system, "cadres", b"", "c.csv")
    assert r.status_code == 422 and r.json()["field"] == "file"
    r = await upload(system, "cadres", b"not a workbook", "c.xlsx")
    assert r.status_code == 422 and r.json()["field"] == "file"
    r = await upload(system, "cadres", b"\xff\xfe\x00", "c.csv")
    assert r.status_code == 422 and r.json()["field"] == "file"
    r = await upload(system, "cadres", b"x", "c.pdf")
    assert r.status_code == 422 and r.json()["field"] == "file"
    r = await system.client.post(f"{API}/imports/cadres", headers=admin(system))
    assert r.status_code == 422 and r.json()["field"] == "file"


async def test_dry_run_checks_without_writing(system):
    t = await make_tree(system)
    before = await counts(system)
    rows = [
        {
            "name": "a",
            "phone": "13600000001",
            "category": "resident_cadre",
            "unit_code": t["village"]["code"],
            "role": "member",
            "start_date": "2026-01-01",
        }
    ]
    r = await upload(system, "cadres", csv_bytes(CADRE_COLUMNS, rows), "c.csv", dry_run="true")
    assert r.status_code == 200 and r.json() == {
        "dry_run": True,
        "rows": 1,
        "created": {"cadres": 1, "postings": 1},
    }
    assert await counts(system) == before


async def test_import_access(system):
    t = await make_tree(system)
    rows = [
        {
            "name": "a",
            "phone": "13600000001",
            "category": "resident_cadre",
            "unit_code": t["village2"]["code"],
            "role": "member",
            "start_date": "2026-01-01",
        }
    ]
    content = csv_bytes(CADRE_COLUMNS, rows)
    for role in (Role.cadre, Role.inspector, Role.finance, Role.auditor):
        r = await upload(system, "cadres", content, "c.csv", headers=system.headers(role))
        assert r.status_code == 403
    assert (
        await system.client.post(f"{API}/imports/cadres", files={"file": ("c.csv", content)})
    ).status_code == 401
    scoped = admin(system, unit_id=t["town"]["id"])
    r = await upload(system, "cadres", content, "c.csv", headers=scoped)
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"row": 2, "field": "unit_code", "problem": "outside your unit scope"}
    ]
    units = [
        {"code": "V-Q", "name": "q", "kind": "village", "parent_code": t["town2"]["code"]},
        {"code": "C-Q", "name": "q", "kind": "county"},
    ]
    r = await upload(system, "org-units", csv_bytes(UNIT_COLUMNS, units), "u.csv", headers=scoped)
    assert {(e["row"], e["field"]) for e in r.json()["errors"]} == {(2, "parent_code"), (3, "kind")}


POSTING_COLUMNS = ["phone", "unit_code", "role", "start_date", "end_date"]


async def test_postings_of_registered_cadres(system):
    t = await make_tree(system)
    a = await make_cadre(system)
    b = await make_cadre(system)
    held = await system.client.post(
        f"{API}/postings",
        json={
            "cadre_id": b["id"],
            "unit_id": t["village"]["id"],
            "role": "member",
            "start_date": "2026-01-01",
        },
        headers=admin(system),
    )
    assert held.status_code == 201
    before, events_before = await counts(system), len(await bus_events(system))
    bad = [
        {
            "phone": a["phone"],
            "unit_code": t["village"]["code"],
            "role": "member",
            "start_date": "2025-01-01",
            "end_date": "2025-12-31",
        },
        {
            "phone": a["phone"],
            "unit_code": t["group"]["code"],
            "role": "member",
            "start_date": "2025-06-01",
        },
        {
            "phone": b["phone"],
            "unit_code": t["village2"]["code"],
            "role": "member",
            "start_date": "2026-05-01",
        },
        {
            "phone": "13000000000",
            "unit_code": t["town"]["code"],
            "role": "member",
            "start_date": "2026-01-01",
        },
    ]
    r = await upload(system, "postings", csv_bytes(POSTING_COLUMNS, bad), "p.csv")
    assert r.status_code == 422
    assert {(e["row"], e["field"]) for e in r.json()["errors"]} == {
        (3, "start_date"),
        (4, "start_date"),
        (5, "phone"),
        (5, "role"),
    }
    assert await counts(system) == before and len(await bus_events(system)) == events_before
    good = [bad[0], {**bad[1], "start_date": "2026-01-01"}]
    r = await upload(system, "postings", csv_bytes(POSTING_COLUMNS, good), "p.csv")
    assert r.status_code == 200 and r.json()["created"] == {"postings": 2}
    history = await get(system, "/postings", cadre_id=a["id"])
    assert sorted(p["start_date"] for p in history["items"]) == ["2025-01-01", "2026-01-01"]
    assert (await get(system, f"/cadres/{a['id']}"))["unit_id"] == t["group"]["id"]
    opened = [
        e for e in await bus_events(system, "registry.posting.opened") if e["cadre_id"] == a["id"]
    ]
    assert len(opened) == 2


async def test_an_oversized_csv_field_is_a_row_error(system):
    t = await make_tree(system)
    before = await counts(system)
    good = {"name": "a", "phone": "13600000001", "category": "resident_cadre"}
    huge = good | {"name": "x" * 140_000, "phone": "13600000002"}
    nul = good | {"name": "b\x00c", "phone": "13600000003", "unit_code": t["village"]["code"]}
    content = csv_bytes(CADRE_COLUMNS, [good, huge, nul, good | {"phone": "13600000004"}])
    r = await upload(system, "cadres", content, "c.csv")
    assert r.status_code == 422 and r.json()["code"] == "import_invalid", r.text
    assert [(e["row"], e["field"]) for e in r.json()["errors"]] == [(3, "row")]
    assert "131072" in r.json()["errors"][0]["problem"]
    # Once readable, a control character is a row error like any other bad value.
    content = csv_bytes(CADRE_COLUMNS, [good, nul])
    r = await upload(system, "cadres", content, "c.csv")
    assert [(e["row"], e["field"]) for e in r.json()["errors"]] == [(3, "name")]
    assert await counts(system) == before


async def test_files_over_the_limits_are_refused_before_they_are_validated(system, monkeypatch):
    before = await counts(system)
    settings = system.runtime("registry").settings
    wide = xlsx_bytes(UNIT_COLUMNS + [f"extra{i}" for i in range(32)], [["x"] * 40])
    r = await upload(system, "org-units", wide, "u.xlsx")
    assert (r.status_code, r.json()["field"]) == (422, "file")
    assert "more than 32 columns" in r.json()["detail"]
    r = await upload(system, "org-units", csv_bytes([f"c{i}" for i in range(33)], []), "u.csv")
    assert "more than 32 columns" in r.json()["detail"]
    rows = [[f"u{i}", "Unit", "village_group"] for i in range(5)]
    monkeypatch.setattr(settings, "import_max_rows", 3)
    r = await upload(system, "org-units", xlsx_bytes(UNIT_COLUMNS[:3], rows), "u.xlsx")
    assert r.status_code == 422 and "more than 3 rows" in r.json()["detail"]
    monkeypatch.setattr(settings, "import_max_rows", 100)
    monkeypatch.setattr(settings, "import_max_cells", 10)
    for content, name in [
        (xlsx_bytes(UNIT_COLUMNS[:3], rows), "u.xlsx"),
        (
            csv_bytes(
                UNIT_COLUMNS[:3], [dict(zip(UNIT_COLUMNS[:3], r, strict=True)) for r in rows]
            ),
            "u.csv",
        ),
    ]:
        r = await upload(system, "org-units", content, name)
        assert r.status_code == 422 and "more than 10 cells" in r.json()["detail"], name
    monkeypatch.setattr(settings, "import_max_cells", 1000)
    monkeypatch.setattr(settings, "import_max_unzipped_mib", 0)
    r = await upload(system, "org-units", xlsx_bytes(UNIT_COLUMNS[:3], rows), "u.xlsx")
    assert r.status_code == 422 and "uncompressed" in r.json()["detail"]
    assert await counts(system) == before


async def test_health_answers_while_an_xlsx_is_parsed(system, monkeypatch):
    """The parse runs off the event loop: held inside it, the service still answers.

    The parser normally runs in another process; here it runs in a thread of this one, so
    the test can hold it mid-parse with an event.
    """
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from services.registry.service import imports as import_service

    t = await make_tree(system)
    inside, release = threading.Event(), threading.Event()
    read = import_service._read_in_child

    def held(*args):
        inside.set()
        release.wait(30)  # on the event loop this would hold every request below
        return read(*args)

    with ThreadPoolExecutor(1) as pool:
        monkeypatch.setattr(import_service, "parser_pool", lambda: pool)
        monkeypatch.setattr(import_service, "_read_in_child", held)
        rows = [["Group A", "GA-1", "group", t["village"]["code"]]]
        content = xlsx_bytes(["name", "code", "kind", "parent_code"], rows)
        upload_task = asyncio.create_task(upload(system, "org-units", content, "u.xlsx"))
        assert await asyncio.to_thread(inside.wait, 30)
        health = await system.client.get("/registry/health")
        units = await system.client.get(f"{API}/org-units", headers=admin(system))
        assert health.status_code == 200 and units.status_code == 200
        assert not upload_task.done()
        release.set()
        r = await upload_task
    assert r.status_code == 200, r.text
    assert r.json()["created"] == {"units": 1}
