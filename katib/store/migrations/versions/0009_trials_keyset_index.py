"""An index on each experiment's trials in id order: what keyset paging (``…/trials?continue=``)
reads, so a page is an index range at trial 100,000 as at trial 1, never a sort of them all.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_trials_experiment_id", "trials", ["experiment_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_trials_experiment_id", "trials")
