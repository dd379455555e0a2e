"""entity versions: units, cadres, postings, honors and pairings count their changes

Revision ID: b07f453d78cf
Revises: 79e3dec57f75
Create Date: 2026-12-03

Each event about one of these carries its `version` (shared.versions); existing rows
start at 1.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b07f453d78cf"
down_revision: str | Sequence[str] | None = "79e3dec57f75"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("org_unit", "cadre", "posting", "honor", "pairing")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(
                sa.Column("version", sa.Integer(), server_default="1", nullable=False)
            )


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("version")
