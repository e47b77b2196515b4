"""Observation values of any length: metrics may be text (DARTS' ``Best-Genotype``).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("observations") as batch:
        batch.alter_column("value", type_=sa.Text, existing_type=sa.String(64), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("observations") as batch:
        batch.alter_column("value", type_=sa.String(64), existing_type=sa.Text, existing_nullable=False)
