"""Which namespace-wide lists an experiment is in, as two small columns written with its
spec: ``optimization_job`` (written from an OptimizationJob) and ``trainjob`` (its trials
may be Trainer TrainJobs), each with an index on (namespace, flag, id). The lists of
OptimizationJobs and TrainJobs walk them instead of decoding every spec of the namespace
on each request. Existing experiments are filled in from their specs, one at a time.

Revision ID: 0013
Revises: 0012
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from katib.store._heads import list_flags

    # Plain ADD COLUMNs: SQLite's batch mode would copy and drop the table, and dropping it
    # cascades to every trial while foreign keys are on.
    op.add_column("experiments", sa.Column("optimization_job", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("experiments", sa.Column("trainjob", sa.Boolean, nullable=False, server_default=sa.false()))
    conn = op.get_bind()
    table = sa.table("experiments", sa.column("id", sa.Integer), sa.column("spec", sa.Text),
                     sa.column("optimization_job", sa.Boolean), sa.column("trainjob", sa.Boolean))
    for (exp_id,) in conn.execute(sa.select(table.c.id)).all():
        spec = conn.execute(sa.select(table.c.spec).where(table.c.id == exp_id)).scalar()
        try:
            doc = json.loads(spec) if spec else {}
        except ValueError:
            doc = {}
        flags = list_flags(doc if isinstance(doc, dict) else {})
        if any(flags.values()):
            conn.execute(table.update().where(table.c.id == exp_id).values(**flags))
    op.create_index("ix_experiments_optimization_job", "experiments", ["namespace", "optimization_job", "id"])
    op.create_index("ix_experiments_trainjob", "experiments", ["namespace", "trainjob", "id"])


def downgrade() -> None:
    op.drop_index("ix_experiments_trainjob", "experiments")
    op.drop_index("ix_experiments_optimization_job", "experiments")
    op.drop_column("experiments", "trainjob")
    op.drop_column("experiments", "optimization_job")
