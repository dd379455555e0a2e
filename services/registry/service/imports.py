"""Bulk import of org units and of cadres with their postings, from CSV or XLSX.

All rows or none: every row is checked first (fields, references to existing units and
phones, duplicates inside the file), and the report names each problem by row number
(the header is row 1), field and problem. Only a clean file is written, with set-based
multi-row inserts and its events in the same transaction.
"""

import asyncio
import csv
import functools
import io
import multiprocessing
import uuid
import zipfile
from collections.abc import Iterable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from openpyxl import load_workbook
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.identity import (
    SECRET_FIELDS,
    BankAccount,
    BankName,
    IdCardNo,
    bank_problem,
    sealed,
)
from services.registry.models import Cadre, OrgUnit, Posting, UnitChange, UnitTree
from services.registry.schemas import Code, Name, Phone, Title
from services.registry.service.cadres import cadre_event, position_problem, position_since_problem
from services.registry.service.common import emit
from services.registry.service.postings import opened_event, role_problem
from services.registry.service.units import PARENT_KIND, ancestors_of, check_shape, unit_event
from shared.auth import Principal
from shared.clock import Clock
from shared.contracts.enums import CadreCategory, Position, PostingRole, UnitKind
from shared.errors import DomainError, InvalidInput
from shared.fieldcrypt import FieldCipher
from shared.types import Day

CHUNK = 1000
MAX_ERRORS = 1000
KIND_ORDER = list(PARENT_KIND)


class ImportInvalid(DomainError):
    status, code, title = 422, "import_invalid", "Import rejected"


class Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.total = 0

    def add(self, row: int, field: str, problem: str) -> None:
        self.total += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append({"row": row, "field": field, "problem": problem})

    def raise_if_any(self) -> None:
        if self.total:
            raise ImportInvalid(
                f"{self.total} problem(s); nothing was imported",
                errors=sorted(self.items, key=lambda e: (e["row"], e["field"])),
                error_count=self.total,
            )


# Reading files


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # spreadsheets keep phone numbers and codes as numbers
    return str(value).strip()


@dataclass(frozen=True)
class Limits:
    """What one import file may hold; checked while reading, before anything is validated."""

    rows: int = 50_000
    columns: int = 32
    cells: int = 500_000
    unzipped_bytes: int = 32 * 1024 * 1024


def read_table(content: bytes, filename: str, limits: Limits) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV (UTF-8, BOM allowed) or the first sheet of an XLSX.

    Synchronous and CPU-bound: the API runs it through `parse`, in another process.
    """
    name = filename.lower()
    problems = Problems()
    if name.endswith(".xlsx"):
        rows_iter: Iterable[list[str]] = _xlsx_rows(content, limits)
    elif name.endswith(".csv") or name.endswith(".txt") or "." not in name:
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInput("file", "a CSV file must be UTF-8") from exc
        rows_iter = _csv_rows(text, problems)
    else:
        raise InvalidInput("file", "expected a .csv or .xlsx file")
    header: list[str] | None = None
    rows: list[list[str]] = []
    cells = 0
    for row in rows_iter:
        while row and row[-1] == "":
            row.pop()
        if len(row) > limits.columns:
            raise InvalidInput("file", f"more than {limits.columns} columns")
        cells += len(row)
        if cells > limits.cells:
            raise InvalidInput("file", f"more than {limits.cells} cells")
        if header is None:
            header = [c.strip().lower() for c in row]
            continue
        rows.append(row)
        if len(rows) > limits.rows:
            raise InvalidInput("file", f"more than {limits.rows} rows")
    problems.raise_if_any()
    if not header:
        raise InvalidInput("file", "the file is empty")
    return header, rows


def _read_in_child(content: bytes, filename: str, limits: Limits) -> tuple:
    """read_table in the parsing process; domain errors come back as data (they don't pickle)."""
    try:
        return ("ok", *read_table(content, filename, limits))
    except ImportInvalid as exc:
        return ("problems", exc.message, exc.extra)
    except InvalidInput as exc:
        return ("invalid", exc.field, exc.message.split(": ", 1)[-1])


_pool: Executor | None = None


def parser_pool() -> Executor:
    """One process that parses uploads: XML parsing holds the GIL, so a thread would still
    starve the event loop; a process leaves every service answering meanwhile."""
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    return _pool


async def parse(content: bytes, filename: str, limits: Limits) -> tuple[list[str], list[list[str]]]:
    """Header and rows of an uploaded file, parsed off the event loop (see parser_pool)."""
    global _pool
    if filename.lower().endswith(".xlsx"):
        check_zip(content, limits)  # cheap, and refuses most oversized files at once
    loop = asyncio.get_running_loop()
    try:
        kind, *rest = await loop.run_in_executor(
            parser_pool(), _read_in_child, content, filename, limits
        )
    except BrokenProcessPool:  # the parser died (killed, out of memory): a new one next time
        _pool = None
        raise
    if kind == "problems":
        raise ImportInvalid(rest[0], **rest[1])
    if kind == "invalid":
        raise InvalidInput(rest[0], rest[1])
    return rest[0], rest[1]


def _csv_rows(text: str, problems: Problems) -> Iterable[list[str]]:
    reader = csv.reader(io.StringIO(text))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # An oversized field (over csv.field_size_limit(), 131,072 characters) or a
            # broken quote: that row is reported, the rest of the file is still checked.
            problems.add(reader.line_num, "row", f"unreadable CSV row: {exc}")
            continue
        yield [c.strip() for c in row]


def check_zip(content: bytes, limits: Limits) -> None:
    """An XLSX is a zip: its central directory tells the uncompressed size without inflating."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            unzipped = sum(i.file_size for i in archive.infolist())
    except (zipfile.BadZipFile, ValueError) as exc:
        raise InvalidInput("file", "not a readable XLSX workbook") from exc
    if unzipped > limits.unzipped_bytes:
        mib = limits.unzipped_bytes // (1024 * 1024)
        raise InvalidInput("file", f"more than {mib} MiB once uncompressed")


def _xlsx_rows(content: bytes, limits: Limits) -> Iterable[list[str]]:
    """Rows of the first sheet, refused early when the file claims or turns out too big."""
    check_zip(content, limits)
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        sheet = book.worksheets[0]
        # The sheet's declared size (<dimension>), when it has one: refused before reading.
        declared_rows, declared_cols = sheet.max_row or 0, sheet.max_column or 0
    except Exception as exc:  # openpyxl raises many kinds for a broken file
        raise InvalidInput("file", "not a readable XLSX workbook") from exc
    if declared_cols > limits.columns:
        raise InvalidInput("file", f"more than {limits.columns} columns")
    if declared_rows > limits.rows + 1:
        raise InvalidInput("file", f"more than {limits.rows} rows")
    if declared_rows * declared_cols > limits.cells:
        raise InvalidInput("file", f"more than {limits.cells} cells")
    try:
        for row in sheet.iter_rows(values_only=True):
            yield [_cell(v) for v in row]
    except InvalidInput:
        raise
    except Exception as exc:  # a sheet whose XML breaks half-way
        raise InvalidInput("file", "not a readable XLSX workbook") from exc
    finally:
        book.close()


def _records(
    header: list[str],
    rows: list[list[str]],
    model: type[BaseModel],
    problems: Problems,
    partial: bool = False,
) -> list[tuple[int, BaseModel]]:
    """Validate each non-blank row against `model`; (row number, record) for the good ones.

    With `partial`, a row with bad fields comes back too, those fields unset and named in
    its `bad`, so the checks against the database and across fields still run on the rest
    and the report names every bad field of the row (the file is refused either way).

    CPU work over up to import_max_rows rows: callers run it in a worker thread.
    """
    known = set(model.model_fields)
    for col in header:
        if col not in known:
            problems.add(1, col or "(blank)", "unknown column")
    required = {n for n, f in model.model_fields.items() if f.is_required()}
    for col in sorted(required - set(header)):
        problems.add(1, col, "missing column")
    if problems.total:
        problems.raise_if_any()
    out = []
    for number, row in enumerate(rows, start=2):
        if not any(row):
            continue
        # A blank cell is an absent value: the field's default applies, or it is missing.
        values = {col: row[i] for i, col in enumerate(header) if i < len(row) and row[i] != ""}
        try:
            out.append((number, model.model_validate(values)))
        except ValidationError as exc:
            bad = set()
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or "row"
                bad.add(str(err["loc"][0]) if err["loc"] else "row")
                problems.add(number, field, err["msg"])
            if partial:
                out.append((number, _partial(model, values, bad)))
    if not out and not problems.total:
        problems.add(2, "row", "no rows to import")
    return out


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    _bad: frozenset[str] = PrivateAttr(default=frozenset())

    @property
    def bad(self) -> frozenset[str]:
        """Fields of the row that failed (a partial record, see `_records`)."""
        return self._bad


@functools.cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter:
    info = model.model_fields[name]
    if not info.metadata:
        return TypeAdapter(info.annotation)
    return TypeAdapter(Annotated[info.annotation, *info.metadata])


def _partial(model: type[BaseModel], values: dict[str, str], bad: set[str]) -> BaseModel:
    """The row's good fields validated one by one; bad and missing ones left as None."""
    good: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in bad:
            continue
        if name in values:
            try:
                good[name] = _field_adapter(model, name).validate_python(values[name])
            except ValidationError:
                bad.add(name)
        elif not info.is_required():
            good[name] = info.get_default(call_default_factory=True)
    record = model.model_construct(**{n: None for n in model.model_fields} | good)
    record._bad = frozenset(bad)  # type: ignore[attr-defined]
    return record


class UnitRow(_Row):
    code: Code
    name: Title
    kind: UnitKind
    parent_code: Code | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    radius_m: float | None = Field(default=None, gt=0, le=100_000)
    special_difficulty: bool = False


class CadreRow(_Row):
    name: Name
    phone: Phone
    category: CadreCategory
    position: Position | None = None
    unit_code: Code | None = None
    role: PostingRole | None = None
    start_date: Day | None = None
    end_date: Day | None = None
    position_since: Day | None = None
    id_card_no: IdCardNo | None = None
    bank_name: BankName | None = None
    bank_account: BankAccount | None = None


async def _existing(session: AsyncSession, column, values: list[str], *cols) -> dict[str, Any]:
    """Rows whose `column` is among `values`, by that value (one query per chunk)."""
    found: dict[str, Any] = {}
    for i in range(0, len(values), CHUNK):
        rows = await session.execute(select(column, *cols).where(column.in_(values[i : i + CHUNK])))
        for r in rows:
            found[r[0]] = r
    return found


async def _out_of_scope(
    session: AsyncSession, principal: Principal, unit_ids: set[uuid.UUID]
) -> set[uuid.UUID]:
    if principal.unit_id is None or not unit_ids:
        return set()
    inside: set[uuid.UUID] = set()
    ids = list(unit_ids)
    for i in range(0, len(ids), CHUNK):
        inside.update(
            await session.scalars(
                select(UnitTree.unit_id).where(
                    UnitTree.ancestor_id == principal.unit_id,
                    UnitTree.unit_id.in_(ids[i : i + CHUNK]),
                )
            )
        )
    return unit_ids - inside


async def _insert(session: AsyncSession, table, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), CHUNK):
        await session.execute(insert(table), rows[i : i + CHUNK])


async def _emit(session: AsyncSession, clock: Clock, events: list) -> None:
    for i in range(0, len(events), CHUNK):
        await emit(session, clock, *events[i : i + CHUNK])


async def import_units(
    session: AsyncSession,
    *,
    clock: Clock,
    principal: Principal,
    header: list[str],
    rows: list[list[str]],
    dry_run: bool,
) -> dict[str, int]:
    problems = Problems()
    records: list[tuple[int, UnitRow]] = await asyncio.to_thread(
        _records, header, rows, UnitRow, problems
    )  # type: ignore[assignment]
    by_code: dict[str, tuple[int, UnitRow]] = {}
    for number, r in records:
        if r.code in by_code:
            problems.add(number, "code", f"code {r.code} repeats row {by_code[r.code][0]}")
        else:
            by_code[r.code] = (number, r)
        fence = [r.lat, r.lon, r.radius_m]
        if any(v is not None for v in fence) and any(v is None for v in fence):
            problems.add(number, "geofence", "lat, lon and radius_m go together")
    codes = list(by_code) + [r.parent_code for _, r in records if r.parent_code]
    existing = await _existing(session, OrgUnit.code, codes, OrgUnit.id, OrgUnit.kind)
    for number, r in records:
        if r.code in existing:
            problems.add(number, "code", f"unit code {r.code} already exists")
    parents_in_db: set[uuid.UUID] = set()
    for number, r in records:
        parent_kind = None
        if r.parent_code:
            if r.parent_code in by_code:
                parent_kind = by_code[r.parent_code][1].kind
            elif r.parent_code in existing:
                parent_kind = existing[r.parent_code].kind
                parents_in_db.add(existing[r.parent_code].id)
            else:
                problems.add(number, "parent_code", f"no unit {r.parent_code}")
                continue
        if r.kind == UnitKind.county and principal.unit_id is not None:
            problems.add(number, "kind", "a scoped admin cannot add a county")
        shape = check_shape(
            r.kind,
            parent_kind,
            has_geofence=r.lat is not None,
            special_difficulty=r.special_difficulty,
        )
        if shape:
            field = "parent_code" if shape[0] in ("kind", "parent_id") else shape[0]
            problems.add(number, field, shape[1])
    outside = await _out_of_scope(session, principal, parents_in_db)
    for number, r in records:
        if r.parent_code in existing and existing[r.parent_code].id in outside:
            problems.add(number, "parent_code", "outside your unit scope")
    problems.raise_if_any()
    if dry_run:
        return {"units": len(records)}

    now = clock.now()
    ids = {code: uuid.uuid4() for code in by_code}
    ancestry = await ancestors_of(session, list(parents_in_db))
    chain: dict[str, list[uuid.UUID]] = {}  # code -> ancestors from the county down

    def ancestors(r: UnitRow) -> list[uuid.UUID]:
        if r.code not in chain:
            if not r.parent_code:
                chain[r.code] = []
            elif r.parent_code in by_code:
                parent = by_code[r.parent_code][1]
                chain[r.code] = ancestors(parent) + [ids[parent.code]]
            else:
                pid = existing[r.parent_code].id
                chain[r.code] = ancestry.get(pid, []) + [pid]
        return chain[r.code]

    ordered = sorted((r for _, r in records), key=lambda r: KIND_ORDER.index(r.kind))
    units, tree, changes, events = [], [], [], []
    for r in ordered:
        uid, above = ids[r.code], ancestors(r)
        unit = OrgUnit(
            id=uid,
            code=r.code,
            name=r.name,
            kind=r.kind,
            parent_id=above[-1] if above else None,
            lat=r.lat,
            lon=r.lon,
            radius_m=r.radius_m,
            special_difficulty=r.special_difficulty,
            active=True,
            created_at=now,
            updated_at=now,
        )
        units.append(unit.model_dump())
        tree.append({"ancestor_id": uid, "unit_id": uid, "depth": 0})
        tree.extend(
            {"ancestor_id": a, "unit_id": uid, "depth": len(above) - i} for i, a in enumerate(above)
        )
        changes.append(
            {
                "id": uuid.uuid4(),
                "unit_id": uid,
                "change": "created",
                "before": None,
                "after": {"code": r.code, "name": r.name, "source": "import"},
                "changed_by": principal.user_id,
                "changed_at": now,
            }
        )
        events.append(unit_event(unit, above))
    await _insert(session, OrgUnit.__table__, units)
    await _insert(session, UnitTree.__table__, tree)
    await _insert(session, UnitChange.__table__, changes)
    await _emit(session, clock, events)
    return {"units": len(units)}


async def import_cadres(
    session: AsyncSession,
    *,
    clock: Clock,
    principal: Principal,
    header: list[str],
    rows: list[list[str]],
    dry_run: bool,
    cipher: FieldCipher,
) -> dict[str, int]:
    """New cadres, each with a posting when the row names a role."""
    problems = Problems()
    records: list[tuple[int, CadreRow]] = await asyncio.to_thread(
        _records, header, rows, CadreRow, problems, True
    )  # type: ignore[assignment]
    phones: dict[str, int] = {}
    for number, r in records:
        # Each check runs unless a field it reads was itself bad (already reported).
        if r.phone is None:
            pass
        elif r.phone in phones:
            problems.add(number, "phone", f"phone repeats row {phones[r.phone]}")
        else:
            phones[r.phone] = number
        if not r.bad & {"category", "position"}:
            if problem := position_problem(r.category, r.position):
                problems.add(number, "position", problem)
            if problem := position_since_problem(r.category, r.position_since):
                problems.add(number, "position_since", problem)
        if r.role is not None:
            for field in ("unit_code", "start_date"):
                if getattr(r, field) is None and field not in r.bad:
                    problems.add(number, field, "a posting needs a unit and a start date")
        if r.start_date and r.end_date and r.end_date < r.start_date:
            problems.add(number, "end_date", "must not be before the start date")
        if r.end_date and not r.start_date and "start_date" not in r.bad:
            problems.add(number, "start_date", "an end date needs a start date")
        if not r.bad & {"bank_name", "bank_account"}:
            if problem := bank_problem(r.bank_name, r.bank_account):
                problems.add(number, *problem)
    taken = await _existing(session, Cadre.phone, list(phones))
    units = await _existing(
        session,
        OrgUnit.code,
        sorted({r.unit_code for _, r in records if r.unit_code}),
        OrgUnit.id,
        OrgUnit.kind,
    )
    outside = await _out_of_scope(session, principal, {u.id for u in units.values()})
    for number, r in records:
        if r.phone is not None and r.phone in taken:
            problems.add(number, "phone", f"phone {r.phone} is already registered")
        if r.unit_code is None:
            continue  # no posting: the cadre lands in the admin's own unit, if any
        unit = units.get(r.unit_code)
        if unit is None:
            problems.add(number, "unit_code", f"no unit {r.unit_code}")
            continue
        if unit.id in outside:
            problems.add(number, "unit_code", "outside your unit scope")
        if r.role is not None and (problem := role_problem(r.role, unit.kind)):
            problems.add(number, "role", problem)
    problems.raise_if_any()
    with_posting = sum(1 for _, r in records if r.role is not None)
    if dry_run:
        return {"cadres": len(records), "postings": with_posting}

    now, today = clock.now(), clock.today()
    cadres, postings, events = [], [], []
    for _, r in records:
        unit_id = units[r.unit_code].id if r.unit_code else principal.unit_id
        personal = {"bank_name": r.bank_name}
        for name in SECRET_FIELDS:
            personal |= sealed(cipher, name, getattr(r, name))
        cadre = Cadre(
            id=uuid.uuid4(),
            name=r.name,
            phone=r.phone,
            category=r.category,
            position=r.position,
            position_since=(r.position_since or today) if r.position else None,
            unit_id=unit_id,
            active=True,
            created_at=now,
            updated_at=now,
            **personal,
        )
        cadres.append(cadre.model_dump())
        events.append(cadre_event(cadre, today))
        if r.role is not None:
            posting = Posting(
                id=uuid.uuid4(),
                cadre_id=cadre.id,
                unit_id=unit_id,
                role=r.role,
                start_date=r.start_date,
                end_date=r.end_date,
                created_at=now,
            )
            postings.append(posting.model_dump())
            events.append(opened_event(posting))
    await _insert(session, Cadre.__table__, cadres)
    await _insert(session, Posting.__table__, postings)
    await _emit(session, clock, events)
    return {"cadres": len(cadres), "postings": len(postings)}


class PostingRow(_Row):
    phone: Phone
    unit_code: Code
    role: PostingRole
    start_date: Day
    end_date: Day | None = None


async def import_postings(
    session: AsyncSession,
    *,
    clock: Clock,
    principal: Principal,
    header: list[str],
    rows: list[list[str]],
    dry_run: bool,
) -> dict[str, int]:
    """Postings of registered cadres (by phone): no overlap with their postings or each other."""
    problems = Problems()
    records: list[tuple[int, PostingRow]] = await asyncio.to_thread(
        _records, header, rows, PostingRow, problems
    )  # type: ignore[assignment]
    cadres = await _existing(
        session,
        Cadre.phone,
        sorted({r.phone for _, r in records}),
        Cadre.id,
        Cadre.unit_id,
        Cadre.active,
    )
    units = await _existing(
        session, OrgUnit.code, sorted({r.unit_code for _, r in records}), OrgUnit.id, OrgUnit.kind
    )
    outside = await _out_of_scope(
        session,
        principal,
        {u.id for u in units.values()} | {c.unit_id for c in cadres.values() if c.unit_id},
    )
    windows: dict[uuid.UUID, list[tuple[date, date | None, str]]] = {}
    cadre_ids = [c.id for c in cadres.values()]
    for i in range(0, len(cadre_ids), CHUNK):
        held = await session.execute(
            select(Posting.cadre_id, Posting.start_date, Posting.end_date).where(
                Posting.cadre_id.in_(cadre_ids[i : i + CHUNK])
            )
        )
        for cadre_id, start, end in held:
            windows.setdefault(cadre_id, []).append((start, end, "a registered posting"))
    for number, r in records:
        cadre, unit = cadres.get(r.phone), units.get(r.unit_code)
        if cadre is None:
            problems.add(number, "phone", f"no cadre with phone {r.phone}")
        elif not cadre.active:
            problems.add(number, "phone", "the cadre is inactive")
        elif principal.unit_id is not None and (cadre.unit_id is None or cadre.unit_id in outside):
            problems.add(number, "phone", "the cadre is outside your unit scope")
        if unit is None:
            problems.add(number, "unit_code", f"no unit {r.unit_code}")
        elif unit.id in outside:
            problems.add(number, "unit_code", "outside your unit scope")
        elif problem := role_problem(r.role, unit.kind):
            problems.add(number, "role", problem)
        if r.end_date and r.end_date < r.start_date:
            problems.add(number, "end_date", "must not be before the start date")
            continue
        if cadre is None:
            continue
        mine = windows.setdefault(cadre.id, [])
        for start, end, what in mine:
            if start <= (r.end_date or date.max) and (end is None or end >= r.start_date):
                problems.add(number, "start_date", f"overlaps {what} of the cadre")
                break
        mine.append((r.start_date, r.end_date, f"row {number}"))
    problems.raise_if_any()
    if dry_run:
        return {"postings": len(records)}

    now = clock.now()
    postings, events = [], []
    for _, r in records:
        cadre = cadres[r.phone]
        posting = Posting(
            id=uuid.uuid4(),
            cadre_id=cadre.id,
            unit_id=units[r.unit_code].id,
            role=r.role,
            start_date=r.start_date,
            end_date=r.end_date,
            created_at=now,
        )
        postings.append(posting.model_dump())
        events.append(opened_event(posting))
    await _insert(session, Posting.__table__, postings)
    # The cadre belongs where their latest posting is, as when posted one at a time.
    latest_unit = (
        select(Posting.unit_id)
        .where(Posting.cadre_id == Cadre.id)
        .order_by(Posting.start_date.desc())
        .limit(1)
        .scalar_subquery()
    )
    moved = sorted({p["cadre_id"] for p in postings})
    for i in range(0, len(moved), CHUNK):
        await session.execute(
            update(Cadre).where(Cadre.id.in_(moved[i : i + CHUNK])).values(unit_id=latest_unit)
        )
    await _emit(session, clock, events)
    return {"postings": len(postings)}
