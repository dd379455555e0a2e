"""entity versions: policy versions and stipend batches count their changes

Revision ID: 9e8091bac865
Revises: a426bdce96c2
Create Date: 2026-12-03

Each event about one of these carries its `entity_version` (shared.versions; the column is
not `version` because a policy version's label already is); existing rows start at 1.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9e8091bac865"
down_revision: str | Sequence[str] | None = "a426bdce96c2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("policy_versions", "stipend_batches")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(
                sa.Column("entity_version", sa.Integer(), server_default="1", nullable=False)
            )


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("entity_version")
