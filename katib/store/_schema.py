"""The tables. Alembic migrations under ``migrations/`` create and evolve them."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace", String(253), nullable=False),
    Column("name", String(63), nullable=False),
    Column("uid", String(36), nullable=False),
    Column("spec", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("workdir", Text, nullable=False),
    Column("owner", String(255), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # When a user stopped it (katib stop, Stop): no server takes it up until it is run again.
    Column("stopped_at", Float, nullable=True),
    # Which namespace-wide lists it is in, said by its spec and written with it (_heads.py):
    # what a list of OptimizationJobs or TrainJobs walks by, never decoding a spec to ask.
    Column("optimization_job", Boolean, nullable=False, server_default=false()),
    Column("trainjob", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("namespace", "name", name="uq_experiments_namespace_name"),
)
# Keyset walks of a namespace's OptimizationJobs and TrainJob experiments: an index range,
# never a read of the rows (in SQLite these columns sit after the spec, pages of it away).
Index("ix_experiments_optimization_job", experiments.c.namespace, experiments.c.optimization_job, experiments.c.id)
Index("ix_experiments_trainjob", experiments.c.namespace, experiments.c.trainjob, experiments.c.id)

trials = Table(
    "trials",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(63), nullable=False),
    Column("state", String(32), nullable=False),
    Column("assignments", Text, nullable=False),
    Column("labels", Text, nullable=False),
    Column("conditions", Text, nullable=False),
    Column("observation", Text, nullable=True),
    Column("objective", Float, nullable=True),
    Column("handle", Text, nullable=True),
    Column("attempt", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("start_time", Float, nullable=True),
    Column("completion_time", Float, nullable=True),
    Column("updated_at", Float, nullable=True),  # every write; the viewer fetches what changed since
    Column("early_stopping_rules", Text, nullable=True),  # Katib's Trial.spec.earlyStoppingRules, JSON
    UniqueConstraint("experiment_id", "name", name="uq_trials_experiment_name"),
)
Index("ix_trials_experiment_state", trials.c.experiment_id, trials.c.state)
Index("ix_trials_experiment_updated", trials.c.experiment_id, trials.c.updated_at)
Index("ix_trials_experiment_id", trials.c.experiment_id, trials.c.id)  # keyset paging (_paging.py)

observations = Table(
    "observations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trial_id", Integer, ForeignKey("trials.id", ondelete="CASCADE"), nullable=False),
    Column("time", Float, nullable=False),
    Column("metric_name", String(255), nullable=False),
    Column("value", Text, nullable=False),  # numbers as text, or text (a DARTS genotype)
)
Index("ix_observations_trial_metric", observations.c.trial_id, observations.c.metric_name, observations.c.time)
Index("ix_observations_trial_time", observations.c.trial_id, observations.c.time, observations.c.id)  # keyset paging

# Katib's DBManager API keyed by trial name alone: the logs of trials this store does not
# hold (a Katib control plane's, when our gRPC server stands in for its DB manager).
external_observations = Table(
    "external_observations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trial_name", String(253), nullable=False),
    Column("time", Float, nullable=False),
    Column("metric_name", String(255), nullable=False),
    Column("value", Text, nullable=False),
)
Index("ix_external_observations_trial", external_observations.c.trial_name, external_observations.c.time)

# Notes a user writes on an experiment or on one of its trials (the viewer's), one per
# subject ("experiment:<id>" or "trial:<id>"); they go with what they are about.
notes = Table(
    "notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subject", String(64), nullable=False, unique=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False),
    Column("trial_id", Integer, ForeignKey("trials.id", ondelete="CASCADE"), nullable=True),
    Column("text", Text, nullable=False),
    Column("author", String(255), nullable=True),
    Column("updated_at", Float, nullable=False),
)
Index("ix_notes_experiment", notes.c.experiment_id)

algorithm_state = Table(
    "algorithm_state",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("admin", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),  # None: until revoked
    Column("last_used_at", Float, nullable=True),  # written at most once a minute
)

grants = Table(
    "grants",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("namespace", String(253), primary_key=True),
    Column("role", String(16), nullable=False),
)

# Several `katib server`s on one database (``_leases.py``): each server (replica) renews its
# heartbeat, stamped with the database's clock; an experiment's ``owner`` names the replica
# that holds its lease, which lapses when that heartbeat is older than the lease time.
replicas = Table(
    "replicas",
    metadata,
    Column("id", String(255), primary_key=True),  # the owner string: host:pid:start
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat", Float, nullable=False),  # seconds since the epoch, the database's clock
)

# What a replica asks of the one that runs an experiment (stop it, apply a budget edit, stop
# a trial early); the owner reads and removes them at its next heartbeat.
experiment_requests = Table(
    "experiment_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False),
    Column("action", String(16), nullable=False),  # stop, budget, stop_trial, retry_trial
    Column("trial", String(63), nullable=True),
    Column("reason", Text, nullable=True),
    Column("created_at", Float, nullable=False),
)
Index("ix_experiment_requests_experiment", experiment_requests.c.experiment_id)
