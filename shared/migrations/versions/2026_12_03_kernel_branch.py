"""kernel branch: the root of the tables every service needs, migrated once for all

Revision ID: kernel_0001
Revises:
Create Date: 2026-12-03

Kernel revisions are written by hand (no autogenerate): each creates its tables with
`op`, chained on the previous kernel revision, and drops them on the way down.
"""

from collections.abc import Sequence

revision: str = "kernel_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("kernel",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
