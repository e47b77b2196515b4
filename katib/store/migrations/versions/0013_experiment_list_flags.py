"""Which namespace-wide lists an experiment is in, as two small columns written with its
spec: ``optimization_job`` (written from an OptimizationJob) and ``trainjob`` (its trials
may be Trainer TrainJobs), each with an index on (namespace, flag, id). The lists of
OptimizationJobs and TrainJobs walk them instead of decoding every spec of the namespace
on each request. Existing experiments are filled in from their specs, one at a time.

Revision ID: 0013
Revises: 0012
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# The flag rule as it stood when this migration was written (``katib.store._heads.
# list_flags`` then), frozen here so that later changes to the live rule cannot change what
# this migration does to a database: the server rewrites both flags whenever a spec is
# written, by the rule of its own version.
_SOURCE_ANNOTATION = "katib.kubeflow.org/optimization-job"
_TRAINJOB_KIND = "TrainJob"


def _flags(spec: Any) -> dict[str, bool]:
    """``optimization_job``: the source annotation holds a JSON object (the OptimizationJob
    it was written from); ``trainjob``: the trial template's job is of kind ``TrainJob``,
    or of a kind a placeholder fills in."""
    spec = spec if isinstance(spec, dict) else {}
    meta = spec.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    text = annotations.get(_SOURCE_ANNOTATION) if isinstance(annotations, dict) else None
    try:
        source = json.loads(text) if text else None
    except (TypeError, ValueError, RecursionError):
        source = None
    body = spec.get("spec")
    template = body.get("trialTemplate") if isinstance(body, dict) else None
    job = template.get("trialSpec") if isinstance(template, dict) else None
    kind = job.get("kind") if isinstance(job, dict) else None
    return {"optimization_job": isinstance(source, dict),
            "trainjob": isinstance(kind, str) and (kind == _TRAINJOB_KIND or "${" in kind)}


def upgrade() -> None:
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
        except (ValueError, RecursionError):
            doc = {}
        flags = _flags(doc)
        if any(flags.values()):
            conn.execute(table.update().where(table.c.id == exp_id).values(**flags))
    op.create_index("ix_experiments_optimization_job", "experiments", ["namespace", "optimization_job", "id"])
    op.create_index("ix_experiments_trainjob", "experiments", ["namespace", "trainjob", "id"])


def downgrade() -> None:
    op.drop_index("ix_experiments_trainjob", "experiments")
    op.drop_index("ix_experiments_optimization_job", "experiments")
    # Plain DROP COLUMNs, as 0004, 0005 and 0011 drop theirs (on SQLite 3.35 or later; an
    # older one refuses, changing nothing): batch mode would copy and drop the experiments
    # table, and dropping it cascades to every trial while foreign keys are on.
    op.drop_column("experiments", "trainjob")
    op.drop_column("experiments", "optimization_job")
