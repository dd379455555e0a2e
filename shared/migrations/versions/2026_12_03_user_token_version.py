"""kernel: user_token_version, each service's projection of users' token versions

Revision ID: kernel_0004
Revises: kernel_0003
Create Date: 2026-12-03

See shared/revocation.py. Written by hand, like every kernel revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "kernel_0004"
down_revision: str | Sequence[str] | None = "kernel_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_token_version",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_token_version"),
    )
    op.create_index("ix_user_token_version_updated_at", "user_token_version", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_user_token_version_updated_at", table_name="user_token_version")
    op.drop_table("user_token_version")
