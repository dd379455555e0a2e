"""presence tallies read counted sign-ins only: partial day/night indexes (PostgreSQL)

Revision ID: 7d2e5c91a0b4
Revises: c336f112b85a
Create Date: 2026-12-03 15:40:00.000000

A week close tallies the counted sign-ins of a week; with the index holding only those,
PostgreSQL answers from the index alone (index-only scan) instead of visiting every heap
page of the table. SQLite keeps the full indexes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d2e5c91a0b4"
down_revision: str | Sequence[str] | None = "c336f112b85a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (("ix_sign_ins_day", "day_date"), ("ix_sign_ins_night", "night_date"))


def _recreate(where: sa.TextClause | None) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, column in INDEXES:
        op.drop_index(name, table_name="sign_ins")
        op.create_index(name, "sign_ins", [column, "cadre_id"], postgresql_where=where)


def upgrade() -> None:
    _recreate(sa.text("counted"))


def downgrade() -> None:
    _recreate(None)
