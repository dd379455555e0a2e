"""fair scores and the ladder by date

Revision ID: 5b7d0c4e2f61
Revises: 3c1f2a9e7b10
Create Date: 2026-12-03 12:00:00.000000

Monthly scores may be unranked (no judged week) or unscored (nothing judged), and keep the
unit of the month's posting for names. An entry may have several accountability actions
as the ladder is re-sequenced by date, only one of them not cancelled.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '5b7d0c4e2f61'
down_revision: Union[str, Sequence[str], None] = '3c1f2a9e7b10'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LIVE = sa.text("status <> 'cancelled'")


def upgrade() -> None:
    with op.batch_alter_table('monthly_scores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unit_id', sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column('ranked', sa.Boolean(), server_default=sa.text('true'), nullable=False)
        )
        batch_op.add_column(sa.Column('not_ranked_reason', sa.String(length=40), nullable=True))
        batch_op.alter_column('score', existing_type=sa.Numeric(7, 2), nullable=True)
        batch_op.alter_column('rank', existing_type=sa.Integer(), nullable=True)
    with op.batch_alter_table('accountability_actions', schema=None) as batch_op:
        batch_op.drop_constraint('uq_accountability_actions_entry_id', type_='unique')
        batch_op.create_index('ix_accountability_actions_entry', ['entry_id'], unique=False)
        batch_op.create_index(
            'uq_accountability_actions_live_entry',
            ['entry_id'],
            unique=True,
            sqlite_where=LIVE,
            postgresql_where=LIVE,
        )


def downgrade() -> None:
    # Cancelled actions of re-sequenced entries go with the constraint they would break.
    op.execute(
        "DELETE FROM accountability_actions WHERE status = 'cancelled' AND entry_id IN "
        "(SELECT entry_id FROM accountability_actions GROUP BY entry_id HAVING count(*) > 1)"
    )
    with op.batch_alter_table('accountability_actions', schema=None) as batch_op:
        batch_op.drop_index('uq_accountability_actions_live_entry')
        batch_op.drop_index('ix_accountability_actions_entry')
        batch_op.create_unique_constraint('uq_accountability_actions_entry_id', ['entry_id'])
    op.execute("DELETE FROM monthly_scores WHERE score IS NULL OR rank IS NULL")
    with op.batch_alter_table('monthly_scores', schema=None) as batch_op:
        batch_op.alter_column('rank', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('score', existing_type=sa.Numeric(7, 2), nullable=False)
        batch_op.drop_column('not_ranked_reason')
        batch_op.drop_column('ranked')
        batch_op.drop_column('unit_id')
