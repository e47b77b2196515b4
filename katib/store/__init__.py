"""Persistence: one database (SQLite file or PostgreSQL) holding every experiment."""

from ._store import (
    DB_ENV,
    ROLES,
    ExperimentRecord,
    ObservationRow,
    Store,
    TrialRecord,
    User,
    UserStore,
    default_db_url,
    hash_token,
    normalise_url,
)

__all__ = [
    "DB_ENV",
    "ROLES",
    "User",
    "UserStore",
    "ExperimentRecord",
    "ObservationRow",
    "Store",
    "TrialRecord",
    "default_db_url",
    "hash_token",
    "normalise_url",
]
