"""Bulk imports from CSV or XLSX: all rows or none, with a per-row problem report."""

from typing import Annotated

from fastapi import APIRouter, File, UploadFile

from services.registry.access import Admin
from services.registry.api.cadres import Cipher
from services.registry.api.deps import Session, Settings
from services.registry.schemas import ImportResult
from services.registry.service import imports as import_service
from shared.errors import InvalidInput
from shared.runtime import ClockDep

router = APIRouter(tags=["registry: imports"])
Upload = Annotated[UploadFile, File(description="a .csv (UTF-8) or .xlsx file, header first")]
MAX_BYTES = 32 * 1024 * 1024


async def _table(file: UploadFile, settings) -> tuple[list[str], list[list[str]]]:
    content = await file.read(MAX_BYTES + 1)
    if len(content) > MAX_BYTES:
        raise InvalidInput("file", f"larger than {MAX_BYTES // (1024 * 1024)} MiB")
    limits = import_service.Limits(
        rows=settings.import_max_rows,
        columns=settings.import_max_columns,
        cells=settings.import_max_cells,
        unzipped_bytes=settings.import_max_unzipped_mib * 1024 * 1024,
    )
    return await import_service.parse(content, file.filename or "", limits)


@router.post("/imports/org-units", response_model=ImportResult)
async def import_units(
    file: Upload,
    session: Session,
    settings: Settings,
    clock: ClockDep,
    principal: Admin,
    dry_run: bool = False,
):
    """Units: code, name, kind, parent_code (in the file or existing), lat, lon, radius_m,
    special_difficulty."""
    header, rows = await _table(file, settings)
    created = await import_service.import_units(
        session, clock=clock, principal=principal, header=header, rows=rows, dry_run=dry_run
    )
    return ImportResult(dry_run=dry_run, rows=sum(created.values()), created=created)


@router.post("/imports/cadres", response_model=ImportResult)
async def import_cadres(
    file: Upload,
    session: Session,
    settings: Settings,
    clock: ClockDep,
    principal: Admin,
    cipher: Cipher,
    dry_run: bool = False,
):
    """Cadres: name, phone, category, position, position_since, id_card_no, bank_name,
    bank_account, and for a posting unit_code, role, start_date, end_date."""
    header, rows = await _table(file, settings)
    created = await import_service.import_cadres(
        session,
        clock=clock,
        principal=principal,
        header=header,
        rows=rows,
        dry_run=dry_run,
        cipher=cipher,
    )
    return ImportResult(dry_run=dry_run, rows=created["cadres"], created=created)


@router.post("/imports/postings", response_model=ImportResult)
async def import_postings(
    file: Upload,
    session: Session,
    settings: Settings,
    clock: ClockDep,
    principal: Admin,
    dry_run: bool = False,
):
    """Postings of registered cadres: phone, unit_code, role, start_date, end_date."""
    header, rows = await _table(file, settings)
    created = await import_service.import_postings(
        session, clock=clock, principal=principal, header=header, rows=rows, dry_run=dry_run
    )
    return ImportResult(dry_run=dry_run, rows=created["postings"], created=created)
