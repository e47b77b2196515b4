"""What the store hands out (experiment, trial and observation records), how a path or URL
becomes the store's SQLAlchemy URL, and the JSON columns' encoding."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katib.errors import ConflictError
from katib.names import private_dirs
from katib.spec import Condition, ExperimentStatus

DB_ENV = "KATIB_DB"


def default_db_url() -> str:
    """``$KATIB_DB`` if set, else ``~/.katib/katib.db``."""
    return os.environ.get(DB_ENV) or str(Path.home() / ".katib" / "katib.db")


def normalise_url(db: str) -> str:
    """A SQLAlchemy URL for a path or a URL (``postgresql://`` uses psycopg 3). A SQLite
    file, given as a path or as a ``sqlite:///`` URL, is made private when new."""
    if "://" not in db:
        path = Path(db).expanduser()
        _private_sqlite(path)
        return f"sqlite:///{path.resolve()}"
    if db.startswith("postgresql://") or db.startswith("postgres://"):
        return "postgresql+psycopg://" + db.split("://", 1)[1]
    if (file := _sqlite_file(db)) is not None:
        _private_sqlite(file)
    return db


def _private_sqlite(path: Path) -> None:
    private_dirs(path.parent)  # a new folder is 0700: the store holds every spec, token and log
    try:  # a new database is 0600 (SQLite gives its -wal, -shm and -journal the same mode)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # the user's own file, left as it is


def sqlite_path(db: str) -> Path | None:
    """The SQLite file ``db`` names, as a path or a ``sqlite:///`` URL; None for another
    database or an in-memory one."""
    return Path(db).expanduser() if "://" not in db else _sqlite_file(db)


def _sqlite_file(db: str) -> Path | None:
    """The file of a ``sqlite[+driver]:///path`` URL; None for another database, an
    in-memory one or a ``file:`` URI (``?uri=true``, whose own options SQLite reads)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(db)
    except ArgumentError:
        return None  # SQLAlchemy's own error follows when the store connects
    if url.get_backend_name() != "sqlite" or url.query.get("uri") in ("true", "1") or not url.database:
        return None
    if url.database == ":memory:" or url.database.startswith("file:"):
        return None
    return Path(url.database)


@dataclass
class ExperimentRecord:
    """An experiment as stored: its spec (the YAML as given) and its typed status, whose
    counts and trial lists are derived from the trial rows when read."""

    id: int
    namespace: str
    name: str
    uid: str
    spec: dict[str, Any]
    status: ExperimentStatus
    workdir: str
    owner: str | None
    created_at: float
    updated_at: float
    stopped_at: float | None = None  # when a user stopped it; a starting server leaves it stopped

    def check_uid(self, uid: str | None) -> None:
        """A Kubernetes delete's uid precondition: ``ConflictError`` unless ``uid`` (when
        given) is this experiment's."""
        if uid and uid != self.uid:
            raise ConflictError(f"Precondition failed: UID in precondition: {uid}, UID in object meta: {self.uid}")


@dataclass
class TrialRecord:
    id: int
    experiment_id: int
    name: str
    state: str
    assignments: list[dict[str, str]]
    labels: dict[str, str] = field(default_factory=dict)
    conditions: list[Condition] = field(default_factory=list)
    observation: dict[str, dict[str, str]] | None = None
    objective: float | None = None
    handle: dict[str, Any] | None = None
    attempt: int = 0
    created_at: float = 0.0
    start_time: float | None = None
    completion_time: float | None = None
    updated_at: float | None = field(default=None, compare=False)  # the last write (lastReconcileTime); read only
    # Katib's Trial.spec.earlyStoppingRules ({name, value, comparison, startStep}), fixed at creation
    early_stopping_rules: list[dict[str, Any]] | None = None

    def parameters(self) -> dict[str, str]:
        return {a["name"]: a["value"] for a in self.assignments}


@dataclass
class ObservationRow:
    time: float
    metric_name: str
    value: str


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))
