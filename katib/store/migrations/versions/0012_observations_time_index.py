"""An index on each trial's observations in time order (then id): what keyset paging of
``…/trials/{trial}/observations?continue=`` reads, so a page (and the viewer's "what is new
since") is an index range at report 500,000 as at report 1, never a sort of them all.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_observations_trial_time", "observations", ["trial_id", "time", "id"])


def downgrade() -> None:
    op.drop_index("ix_observations_trial_time", "observations")
