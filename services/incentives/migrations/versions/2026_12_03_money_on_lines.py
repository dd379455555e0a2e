"""money on lines: deductions applied and carried forward, line items and names

Revision ID: 7c1d2e3f4a5b
Revises: 9e8091bac865
Create Date: 2026-12-03

Eligibility and stipend lines gain `deductions_applied` and `carried_forward` (gross -
deductions_applied = net); lines gain their items (JSON) and the names of their village
and township. Existing rows: applied = gross - net, carried = deductions - applied.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c1d2e3f4a5b"
down_revision: str | Sequence[str] | None = "9e8091bac865"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = ("deductions_applied", "carried_forward")


def _money(name: str) -> sa.Column:
    return sa.Column(name, sa.Numeric(12, 2), server_default="0", nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("eligibility") as batch_op:
        for name in MONEY:
            batch_op.add_column(_money(name))
    with op.batch_alter_table("stipend_lines") as batch_op:
        batch_op.add_column(sa.Column("township_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("village_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("village_name", sa.String(length=200), nullable=True))
        for name in MONEY:
            batch_op.add_column(_money(name))
        batch_op.add_column(sa.Column("items", sa.Text(), nullable=True))
    for table, deductions in (("eligibility", "total_deductions"), ("stipend_lines", "deductions_total")):
        op.execute(
            f"UPDATE {table} SET deductions_applied = gross - net, "
            f"carried_forward = {deductions} - (gross - net)"
        )


def downgrade() -> None:
    with op.batch_alter_table("stipend_lines") as batch_op:
        for name in ("items", *MONEY, "village_name", "village_id", "township_name"):
            batch_op.drop_column(name)
    with op.batch_alter_table("eligibility") as batch_op:
        for name in MONEY:
            batch_op.drop_column(name)
