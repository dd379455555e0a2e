"""The bank payment file of a locked (or paid) stipend batch, for the finance office.

CSV (UTF-8), in three sections separated by a blank line (layout in the README):
1. the batch: `batch_id`, `month`, `status`, `content_hash`;
2. `payments`: one row per line with net > 0 whose cadre has an ID-card number, a bank and
   an account: `cadre_name, id_card_no, bank_name, bank_account, amount, month, line_id`
   (amount = the line's net, 2 places; month = the month the line pays for);
3. `missing_bank_details`: the lines with net > 0 that cannot be paid that way, each with
   what is missing (`id_card_no`, `bank_name`, `bank_account`, or `unreadable` when the
   ciphertext does not open under this service's key): never silently dropped.
Then the count and sum of each section. The ID-card number and the account are decrypted
here only, while writing; text a spreadsheet would take for a formula is written as text.
"""

import csv
import io
import logging
from decimal import Decimal
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.incentives.models import cadres, lines
from services.incentives.rules import fmt
from services.incentives.service.batches import get_row
from services.incentives.service.exports import csv_safe
from shared.errors import Conflict
from shared.fieldcrypt import FieldCipher, FieldCryptError

log = logging.getLogger(__name__)
PAYABLE = ("locked", "paid")
PAYMENT_COLUMNS = [
    "cadre_name",
    "id_card_no",
    "bank_name",
    "bank_account",
    "amount",
    "month",
    "line_id",
]
MISSING_COLUMNS = ["cadre_name", "cadre_id", "amount", "month", "line_id", "missing"]


async def payment_file(
    session: AsyncSession, *, batch_id: UUID, cipher: FieldCipher
) -> tuple[dict, bytes]:
    """(facts for the audit row, the CSV); 409 `batch_not_locked` for a draft."""
    batch = await get_row(session, batch_id)
    if batch.status not in PAYABLE:
        raise Conflict(
            f"batch {batch_id} is {batch.status}: lock it before exporting its payment file",
            code="batch_not_locked",
            status=batch.status,
        )
    rows = (
        await session.execute(
            select(
                lines.c.id,
                lines.c.cadre_id,
                lines.c.cadre_name,
                lines.c.for_month,
                lines.c.net,
                cadres.c.id_card_no_enc,
                cadres.c.bank_name,
                cadres.c.bank_account_enc,
            )
            .select_from(lines.outerjoin(cadres, cadres.c.cadre_id == lines.c.cadre_id))
            .where(lines.c.batch_id == batch_id, lines.c.net > 0)
            .order_by(lines.c.cadre_name, lines.c.cadre_id, lines.c.for_month, lines.c.id)
        )
    ).all()
    paid, missing = [], []
    for r in rows:
        amount = fmt(r.net)
        gaps = [
            name
            for name, value in (
                ("id_card_no", r.id_card_no_enc),
                ("bank_name", r.bank_name),
                ("bank_account", r.bank_account_enc),
            )
            if not value
        ]
        if not gaps:
            try:
                id_card = cipher.decrypt("id_card_no", r.id_card_no_enc)
                account = cipher.decrypt("bank_account", r.bank_account_enc)
            except FieldCryptError as exc:
                log.warning("payment file of batch %s, line %s: %s", batch_id, r.id, exc)
                gaps = ["unreadable"]
            else:
                paid.append(
                    [r.cadre_name, id_card, r.bank_name, account, amount, r.for_month, str(r.id)]
                )
                continue
        missing.append(
            [r.cadre_name, str(r.cadre_id), amount, r.for_month, str(r.id), ";".join(gaps)]
        )

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    for row in (
        ["batch_id", str(batch.id)],
        ["month", batch.month],
        ["status", batch.status],
        ["content_hash", batch.content_hash or ""],
        [],
        ["payments"],
        PAYMENT_COLUMNS,
        *paid,
        [],
        ["missing_bank_details"],
        MISSING_COLUMNS,
        *missing,
        [],
        ["payments_count", str(len(paid))],
        ["payments_total", fmt(sum((Decimal(p[4]) for p in paid), Decimal(0)))],
        ["missing_count", str(len(missing))],
        ["missing_total", fmt(sum((Decimal(m[2]) for m in missing), Decimal(0)))],
    ):
        w.writerow(csv_safe(row))
    facts = {
        "batch_id": str(batch.id),
        "month": batch.month,
        "payments": len(paid),
        "missing": len(missing),
    }
    return facts, out.getvalue().encode("utf-8")
