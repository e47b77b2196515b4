"""Persistence: one database (SQLite file or PostgreSQL) holding every experiment."""

from ._columns import SummaryRow, parameter_names, summary_columns, summary_rows, trial_stamp
from ._derived import stored as stored_status
from ._heads import (
    CensusRow,
    ExperimentHead,
    experiment_census,
    experiment_heads,
    list_flags,
    refresh_list_flags,
)
from ._leases import LeaseLost, Leases, Replica, Request
from ._logs import TrialLogs
from ._notes import MAX_NOTE_CHARS, Note, NoteStore
from ._paging import (
    InvalidContinueToken,
    ObservationPage,
    experiment_page,
    iter_trials,
    latest_trial,
    observation_page,
    open_token,
    seal_token,
    trial_page,
)
from ._records import (
    DB_ENV,
    ExperimentRecord,
    ObservationRow,
    TrialRecord,
    default_db_url,
    normalise_url,
    sqlite_path,
)
from ._stops import record_stop
from ._store import Store
from ._users import ROLES, TokenInfo, User, UserStore, hash_token

__all__ = [
    "CensusRow",
    "DB_ENV",
    "ExperimentHead",
    "MAX_NOTE_CHARS",
    "Note",
    "NoteStore",
    "ROLES",
    "TokenInfo",
    "User",
    "UserStore",
    "ExperimentRecord",
    "LeaseLost",
    "Leases",
    "InvalidContinueToken",
    "ObservationPage",
    "ObservationRow",
    "Replica",
    "Request",
    "Store",
    "SummaryRow",
    "TrialLogs",
    "TrialRecord",
    "default_db_url",
    "sqlite_path",
    "experiment_census",
    "experiment_heads",
    "hash_token",
    "experiment_page",
    "iter_trials",
    "latest_trial",
    "list_flags",
    "normalise_url",
    "observation_page",
    "parameter_names",
    "record_stop",
    "refresh_list_flags",
    "stored_status",
    "summary_columns",
    "summary_rows",
    "open_token",
    "seal_token",
    "trial_page",
    "trial_stamp",
]
