"""entity versions: presence weeks, negative entries, actions and monthly scores count
their changes

Revision ID: 8e99a622d8ab
Revises: 9dc279f9d3bb
Create Date: 2026-12-03

Each event about one of these carries its `version` (shared.versions); existing rows
start at 1.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8e99a622d8ab"
down_revision: str | Sequence[str] | None = "9dc279f9d3bb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("presence_weeks", "negative_entries", "accountability_actions", "monthly_scores")


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
