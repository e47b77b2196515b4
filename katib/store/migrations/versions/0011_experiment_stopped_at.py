"""When a user stopped an experiment (``katib stop``, the API's or the viewer's Stop): a
server that starts does not take it up again; running it again (resume, run) clears it.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: SQLite's batch mode would copy and drop the table, and dropping it
    # cascades to every trial while foreign keys are on.
    op.add_column("experiments", sa.Column("stopped_at", sa.Float, nullable=True))


def downgrade() -> None:
    op.drop_column("experiments", "stopped_at")
