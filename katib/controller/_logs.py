"""A trial's output, as the executor that ran it reads it (``Executor.logs``), found from
the store's records: what the API's log routes and ``katib logs`` show."""

from __future__ import annotations

from pathlib import Path

from katib.names import RunLayout
from katib.store import ExperimentRecord, TrialRecord
from trials import trial_log_since as _since
from trials import trial_log_size as _size
from trials import trial_logs


def trial_log(runs_root: Path, rec: ExperimentRecord, t: TrialRecord, tail: int | None = None,
              max_bytes: int = 1 << 20) -> str:
    """The trial's output, or its last ``tail`` lines, at most ``max_bytes`` of it."""
    return trial_logs(t.handle, RunLayout(runs_root).trial(rec.namespace, rec.name, t.name), tail, max_bytes)


def trial_log_since(runs_root: Path, rec: ExperimentRecord, t: TrialRecord, offset: int,
                    max_bytes: int = 1 << 20) -> tuple[bytes, int] | None:
    """What the trial wrote since byte ``offset`` (at most ``max_bytes``) and where to read
    on; None: no log here."""
    return _since(t.handle, RunLayout(runs_root).trial(rec.namespace, rec.name, t.name), offset, max_bytes)


def trial_log_size(runs_root: Path, rec: ExperimentRecord, t: TrialRecord) -> int | None:
    """How many bytes the trial has written so far; None: no log here."""
    return _size(t.handle, RunLayout(runs_root).trial(rec.namespace, rec.name, t.name))


__all__ = ["trial_log", "trial_log_since", "trial_log_size"]
