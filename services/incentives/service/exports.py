"""CSV and XLSX exports of a batch for the finance office: the batch header (a draft is
marked DRAFT), every line, totals overall and per township, and the policy versions used.

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
]
MONEY = ("gross", "deductions_total", "net")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def _formula_like(value: object) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.match(value)


def _csv_safe(row: list) -> list:
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
    out = [
        ["scope", "township_id", "township_name", "lines", *MONEY],
        ["total", "", "", str(t["lines"]), t["gross"], t["deductions_total"], t["net"]],
    ]
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
    w.writerows(_csv_safe(row) for row in _header(batch))
    w.writerow([])
    w.writerow(COLUMNS)
    for r in rows:
        line = line_wire(r)
        w.writerow(_csv_safe(["" if line[c] is None else line[c] for c in COLUMNS]))
    w.writerow([])
    w.writerows(_csv_safe(row) for row in _totals(batch))
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(batch: dict, rows: list) -> bytes:
    """Sheets: Batch (header, DRAFT marked), Lines, Totals; money as numbers with 2 places."""
    wb = Workbook()
    head = wb.active
    head.title = "Batch"
    if batch["status"] == "draft":
        head.append(["DRAFT: not approved, amounts may still change"])
        head["A1"].font = Font(bold=True, color="C00000")
    for row in _header(batch):
        head.append(row)
    sheet = wb.create_sheet("Lines")
    sheet.append(COLUMNS)
    for r in rows:
        line = line_wire(r)
        sheet.append([Decimal(line[c]) if c in MONEY else line[c] for c in COLUMNS])
    totals = wb.create_sheet("Totals")
    for i, row in enumerate(_totals(batch)):
        if i:  # after the column names: counts and money as numbers
            row = [*row[:3], int(row[3]), *(Decimal(v) for v in row[4:])]
        totals.append(row)
    for ws in (head, sheet, totals):
        _xlsx_text(ws)
    for ws, first_money in ((sheet, 6), (totals, 5)):
        for col in ws.iter_cols(min_col=first_money, max_col=first_money + 2, min_row=2):
            for cell in col:
                cell.number_format = "0.00"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
