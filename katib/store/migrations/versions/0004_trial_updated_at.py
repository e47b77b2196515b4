"""When each trial was last written, so a reader can fetch only what changed.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("trials", sa.Column("updated_at", sa.Float, nullable=True))
    op.create_index("ix_trials_experiment_updated", "trials", ["experiment_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_trials_experiment_updated", table_name="trials")
    op.drop_column("trials", "updated_at")
