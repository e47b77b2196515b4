"""Notes on experiments and trials: free text a user keeps beside the results (the viewer's
Notes cards), one note per experiment and per trial, stored in the experiments' database.
A note goes when its experiment or trial is deleted (foreign keys, ON DELETE CASCADE).

>>> from katib.store import Store
>>> store = Store("sqlite://")
>>> rec = store.create_experiment("ns", "e", {}, {}, "/w")
>>> notes = NoteStore(store)
>>> notes.set(rec.id, "lr above 0.1 diverges", author="ann").text
'lr above 0.1 diverges'
>>> notes.get(rec.id).author
'ann'
>>> notes.set(rec.id, "") is None and notes.get(rec.id) is None
True
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from katib.errors import FieldError, ValidationError

from ._schema import notes

if TYPE_CHECKING:
    from ._store import Store

MAX_NOTE_CHARS = 20_000


@dataclass(frozen=True)
class Note:
    text: str
    author: str | None  # the user who wrote it last (None without authentication)
    updated_at: float


def _subject(experiment_id: int, trial_id: int | None) -> str:
    return f"trial:{trial_id}" if trial_id is not None else f"experiment:{experiment_id}"


class NoteStore:
    """The note of an experiment (``trial_id=None``) or of one of its trials."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, experiment_id: int, trial_id: int | None = None) -> Note | None:
        with self.store._read() as conn:
            row = conn.execute(sa.select(notes).where(notes.c.subject == _subject(experiment_id, trial_id))).first()
        return None if row is None else Note(row.text, row.author, row.updated_at)

    def set(self, experiment_id: int, text: str, trial_id: int | None = None, author: str | None = None) -> Note | None:
        """Write the note (an empty or blank text removes it); returns it, or None."""
        if not isinstance(text, str):
            raise ValidationError([FieldError("text", f"must be a string (got {type(text).__name__})")], what="note")
        if len(text) > MAX_NOTE_CHARS:
            raise ValidationError([FieldError("text", f"must be at most {MAX_NOTE_CHARS} characters (got {len(text)})")],
                                  what="note")
        text = text.replace("\x00", "\ufffd")  # PostgreSQL's text refuses NUL
        subject, now = _subject(experiment_id, trial_id), time.time()

        def write(conn: Connection) -> None:
            conn.execute(notes.delete().where(notes.c.subject == subject))
            if text.strip():
                conn.execute(notes.insert().values(subject=subject, experiment_id=experiment_id, trial_id=trial_id,
                                                   text=text, author=author, updated_at=now))

        for attempt in range(3):  # two writers at once: the second retries over the first
            try:
                self.store._retry(write)
                break
            except IntegrityError:
                if attempt == 2:
                    raise
        return Note(text, author, now) if text.strip() else None
