"""four eyes on pay policy: a version is proposed, then approved by another user

Revision ID: 5f0e4c1b2a93
Revises: 7c1d2e3f4a5b
Create Date: 2026-12-03

Policy versions gain `status` (proposed, approved, rejected, withdrawn), the proposer's
username, who decided and when, and `live_version` (the label while proposed or approved,
unique; NULL once refused, so a refused month can be proposed again). The label itself is
no longer unique. Existing versions (the seeded defaults and any added before) count as
approved, decided when they were added.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5f0e4c1b2a93"
down_revision: str | Sequence[str] | None = "7c1d2e3f4a5b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("policy_versions") as batch_op:
        batch_op.add_column(sa.Column("live_version", sa.String(length=80), nullable=True))
        batch_op.add_column(
            sa.Column("status", sa.String(length=20), server_default="approved", nullable=False)
        )
        batch_op.add_column(
            sa.Column("proposed_by_name", sa.String(length=100), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("decided_by", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("decided_by_name", sa.String(length=100), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("decision_note", sa.String(length=500), server_default="", nullable=False)
        )
    op.execute("UPDATE policy_versions SET live_version = version, decided_at = created_at")
    with op.batch_alter_table("policy_versions") as batch_op:
        batch_op.drop_constraint("uq_policy_versions_version", type_="unique")
        batch_op.create_index("ix_policy_versions_version", ["version"], unique=False)
        batch_op.create_unique_constraint("uq_policy_versions_live_version", ["live_version"])


def downgrade() -> None:
    # Refused versions share labels with live ones: they go, as they never took effect.
    op.execute("DELETE FROM policy_versions WHERE live_version IS NULL")
    op.execute("DELETE FROM policy_versions WHERE status = 'proposed'")
    with op.batch_alter_table("policy_versions") as batch_op:
        batch_op.drop_constraint("uq_policy_versions_live_version", type_="unique")
        batch_op.drop_index("ix_policy_versions_version")
        batch_op.create_unique_constraint("uq_policy_versions_version", ["version"])
        for name in (
            "decision_note",
            "decided_at",
            "decided_by_name",
            "decided_by",
            "proposed_by_name",
            "status",
            "live_version",
        ):
            batch_op.drop_column(name)
