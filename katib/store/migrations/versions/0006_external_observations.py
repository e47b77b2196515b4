"""Observation logs of trials the store does not hold, by trial name (Katib's DBManager API).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "external_observations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("trial_name", sa.String(253), nullable=False),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("metric_name", sa.String(255), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_index("ix_external_observations_trial", "external_observations", ["trial_name", "time"])


def downgrade() -> None:
    op.drop_index("ix_external_observations_trial", "external_observations")
    op.drop_table("external_observations")
