"""Tokens may expire, and record when they were last used.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tokens", sa.Column("expires_at", sa.Float, nullable=True))
    op.add_column("tokens", sa.Column("last_used_at", sa.Float, nullable=True))


def downgrade() -> None:
    op.drop_column("tokens", "last_used_at")
    op.drop_column("tokens", "expires_at")
