"""Each trial's early stopping rules, fixed when it is created (Katib's
``Trial.spec.earlyStoppingRules``).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("trials", sa.Column("early_stopping_rules", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("trials", "early_stopping_rules")
