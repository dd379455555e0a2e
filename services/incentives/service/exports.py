"""CSV and XLSX exports of a batch for the finance office: the batch header (a draft is
marked DRAFT), every line, totals overall and per township, and the policy versions used.
The XLSX has a Summary sheet (header and totals), Lines, and Items: one row per component
or deduction of each line, so every amount is explained without another call.

Names come from other people's input: a text cell that a spreadsheet would take for a
formula (starting with =, +, -, @, tab or CR) is written as text, with a leading
apostrophe in CSV (OWASP's advice) and as a quote-prefixed string cell in XLSX. Numbers
such as -50.00 stay numbers.
"""

import csv
import io
import re
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.styles import Font

from services.incentives.service.lines import line_wire

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COLUMNS = [
    "cadre_id",
    "cadre_name",
    "township_id",
    "kind",
    "for_month",
    "gross",
    "deductions_total",
    "net",
    "policy_version",
    # added later, at the end so that readers of the first columns keep working
    "deductions_applied",
    "carried_forward",
    "village_id",
    "village_name",
    "township_name",
]
MONEY = ("gross", "deductions_total", "net", "deductions_applied", "carried_forward")
TOTAL_COLUMNS = ["scope", "township_id", "township_name", "lines", *MONEY]
ITEM_COLUMNS = [
    "cadre_id",
    "cadre_name",
    "village_name",
    "township_name",
    "line_kind",
    "for_month",
    "part",
    "kind",
    "amount",
    "reason",
    "policy_version",
    "source_type",
    "source_id",
]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def _formula_like(value: object) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.match(value)


def csv_safe(row: list) -> list:
    return ["'" + v if _formula_like(v) else v for v in row]


def _xlsx_text(ws) -> None:
    for row in ws.iter_rows():
        for cell in row:
            if _formula_like(cell.value):
                cell.data_type = "s"  # openpyxl would store "=..." as a live formula
                cell.quotePrefix = True  # and Excel keeps it text when the cell is edited


def _header(batch: dict) -> list[list[str]]:
    status = batch["status"]
    return [
        ["batch_id", batch["id"]],
        ["month", batch["month"]],
        ["status", "DRAFT (not approved)" if status == "draft" else status],
        ["content_hash", batch["content_hash"] or ""],
        ["policy_versions", ", ".join(batch["policy_versions"])],
    ]


def _totals(batch: dict) -> list[list[str]]:
    t = batch["totals"]
    out = [TOTAL_COLUMNS, ["total", "", "", str(t["lines"]), *(t[k] for k in MONEY)]]
    for town in t["by_township"]:
        out.append(
            [
                "township",
                town["township_id"] or "",
                town["township_name"] or "",
                str(town["lines"]),
                *(town[k] for k in MONEY),
            ]
        )
    return out


def to_csv(batch: dict, rows: list) -> bytes:
    """Sections separated by a blank row; UTF-8 with a BOM so spreadsheets read the names."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerows(csv_safe(row) for row in _header(batch))
    w.writerow([])
    w.writerow(COLUMNS)
    for r in rows:
        line = line_wire(r)
        w.writerow(csv_safe(["" if line[c] is None else line[c] for c in COLUMNS]))
    w.writerow([])
    w.writerows(csv_safe(row) for row in _totals(batch))
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _money_format(ws, columns: list[str], header_row: int, money=MONEY) -> None:
    for i, name in enumerate(columns, start=1):
        if name in money:
            for col in ws.iter_cols(min_col=i, max_col=i, min_row=header_row + 1):
                for cell in col:
                    cell.number_format = "0.00"


def _item_rows(line: dict) -> list[list]:
    out = []
    for part, items in (("component", line["components"]), ("deduction", line["deductions"])):
        for item in items:
            out.append(
                [
                    line["cadre_id"],
                    line["cadre_name"],
                    line["village_name"],
                    line["township_name"],
                    line["kind"],
                    line["for_month"],
                    part,
                    item["kind"],
                    Decimal(item["amount"]),
                    item["reason"],
                    item["policy_version"],
                    item["source"]["type"],
                    item["source"]["id"],
                ]
            )
    return out


def to_xlsx(batch: dict, rows: list) -> bytes:
    """Sheets: Summary (DRAFT marked, status, content hash, policy versions, totals of the
    batch and per township), Lines, Items; money as numbers with 2 places."""
    wb = Workbook()
    summary = wb.active
    summary.title = "Summary"
    if batch["status"] == "draft":
        summary.append(["DRAFT: not approved, amounts may still change"])
        summary["A1"].font = Font(bold=True, color="C00000")
    for row in _header(batch):
        summary.append(row)
    summary.append([])
    totals_at = summary.max_row + 1
    for i, row in enumerate(_totals(batch)):
        if i:  # after the column names: counts and money as numbers
            row = [*row[:3], int(row[3]), *(Decimal(v) for v in row[4:])]
        summary.append(row)
    sheet = wb.create_sheet("Lines")
    sheet.append(COLUMNS)
    items = wb.create_sheet("Items")
    items.append(ITEM_COLUMNS)
    for r in rows:
        line = line_wire(r)
        sheet.append([Decimal(line[c]) if c in MONEY else line[c] for c in COLUMNS])
        for row in _item_rows(line):
            items.append(row)
    for ws in (summary, sheet, items):
        _xlsx_text(ws)
    _money_format(sheet, COLUMNS, 1)
    _money_format(items, ITEM_COLUMNS, 1, ("amount",))
    _money_format(summary, TOTAL_COLUMNS, totals_at)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
