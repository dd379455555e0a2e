"""sign-in request hash

Revision ID: 3c1f2a9e7b10
Revises: 8e99a622d8ab
Create Date: 2026-12-03 08:20:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '3c1f2a9e7b10'
down_revision: Union[str, Sequence[str], None] = '8e99a622d8ab'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """A hash of the request a sign-in was stored from (idempotency_key_reused)."""
    with op.batch_alter_table('sign_ins', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_hash', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sign_ins', schema=None) as batch_op:
        batch_op.drop_column('request_hash')
