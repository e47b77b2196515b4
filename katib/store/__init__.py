"""Persistence: one database (SQLite file or PostgreSQL) holding every experiment."""

from ._store import (
    DB_ENV,
    ExperimentRecord,
    ObservationRow,
    Store,
    TrialRecord,
    default_db_url,
    normalise_url,
)

__all__ = [
    "DB_ENV",
    "ExperimentRecord",
    "ObservationRow",
    "Store",
    "TrialRecord",
    "default_db_url",
    "normalise_url",
]
