"""Where the read commands read: the store here, or a katib server (``katib --server URL``).

``source(db)`` is the one place that chooses. Both sources hand out the same things, so a
command says only what it reads: store records (what the tables render; a server's Katib
objects become records of the same shape, ``_api``), Katib's objects (what ``-o json|yaml``
prints), whether a controller runs an experiment (the server's word; ``None`` here, where
this machine's processes tell) and a hint that works as printed. Nothing here opens the
store or imports the loop at module level (``katib validate`` stays light).
"""

from __future__ import annotations

import codecs
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from katib.cli import _api as _r
from katib.cli._app import Remote, _hint, _locate, _remote, _runs_root, _store
from katib.errors import KatibError, NotFoundError
from katib.names import RunLayout


@dataclass
class Found:
    """An experiment as a command shows it."""

    rec: Any  # an ExperimentRecord: what the tables render
    active: bool | None  # whether a controller runs it (a server's word; None: this machine's processes tell)
    obj: Callable[[], dict[str, Any]]  # Katib's object (-o json|yaml)


@dataclass
class FoundTrial:
    rec: Any  # its experiment's record
    trial: Any  # a TrialRecord
    obj: Callable[[], dict[str, Any]]


class Here:
    """The store on this machine (``--db``, ``$KATIB_DB``)."""

    def __init__(self, db: str | None) -> None:
        self.db = db
        self.store = _store(db, create=False)

    def experiments(self, namespace: str | None) -> list[Found]:
        from katib import views

        return [Found(r, None, _bind(views.experiment_object, r)) for r in self.store.list_experiments(namespace)]

    def experiment(self, name: str, namespace: str | None) -> Found:
        from katib import views

        rec = self.store.get_experiment(_locate(self.store, name, namespace), name)
        return Found(rec, None, _bind(views.experiment_object, rec))

    def trials(self, found: Found) -> list[FoundTrial]:
        from katib import views

        rec = found.rec
        return [FoundTrial(rec, t, _bind(views.trial_object, rec, t)) for t in self.store.list_trials(rec.id)]

    def trial(self, name: str, namespace: str | None) -> FoundTrial:
        from katib import views

        rec, t = self.store.get_trial(_locate(self.store, name, namespace, "trial"), name)
        return FoundTrial(rec, t, _bind(views.trial_object, rec, t))

    def hint(self, words: list[str], name: str, namespace: str) -> str:
        return _hint(self.store, self.db, words, name, namespace)

    def print_log(self, trial: str, namespace: str | None, follow: bool) -> None:
        """What the trial wrote, from its log file here, read on while it runs (``-f``)."""
        from katib.controller import trial_log_since

        store = self.store
        namespace = _locate(store, trial, namespace, "trial")
        rec, t = store.get_trial(namespace, trial)
        runs_root = _runs_root(store)
        if trial_log_since(runs_root, rec, t, 0, 0) is None:  # as the trial's executor reads it (Executor.log_since)
            raise NotFoundError(f"no log for trial {trial} (it has not started on this machine)")
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span two reads
        offset, ended = 0, False
        while True:
            chunk, offset = trial_log_since(runs_root, rec, t, offset) or (b"", offset)
            if chunk:
                sys.stdout.write(decoder.decode(chunk))
                sys.stdout.flush()
                continue  # more may be waiting (one read holds at most a MiB)
            if not follow or ended:
                sys.stdout.write(decoder.decode(b"", final=True))
                break
            _, t = store.get_trial(namespace, trial)
            if t.state not in ("Created", "Running"):
                ended = True  # one last read to its end
                continue
            time.sleep(0.5)

    def delete(self, name: str, namespace: str | None) -> str:
        """Delete the experiment, its trials and their folder, unless a controller runs it;
        returns its namespace."""
        import shutil

        from trials import owner_alive, owner_text

        store = self.store
        namespace = _locate(store, name, namespace)
        folder = RunLayout(_runs_root(store)).experiment(namespace, name)  # checks the names first
        rec = store.get_experiment(namespace, name)
        if rec.owner and owner_alive(rec.owner):
            raise KatibError(f"experiment {name} is running (a katib run, resume or server, {owner_text(rec.owner)}); "
                             f"stop it first: `{self.hint(['stop'], name, namespace)}`")
        from katib.controller import end_left_trials

        end_left_trials(store, rec)  # a killed controller's trials ran on: nothing could stop them once deleted
        # That one, as long as no controller took it up since the check above.
        store.delete_experiment(namespace, name, rec.uid, owner=rec.owner)
        shutil.rmtree(folder, ignore_errors=True)
        return namespace


class Server:
    """A katib server's API (``--server``, ``$KATIB_SERVER``)."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self.client = _r.client(remote)

    def experiments(self, namespace: str | None) -> list[Found]:
        c = self.client
        objs = c.list_experiments(namespace) if namespace else c.list_experiments(all_namespaces=True)
        return [Found(_r.experiment_record(o), bool(o.get("active")), _bind(_r.katib_object, o)) for o in objs]

    def experiment(self, name: str, namespace: str | None) -> Found:
        rec, active, obj = _r.experiment(self.client, self.remote, name, namespace)
        return Found(rec, active, _bind(_r.katib_object, obj))

    def trials(self, found: Found) -> list[FoundTrial]:
        objs = self.client.list_trials(found.rec.name, found.rec.namespace)
        return [FoundTrial(found.rec, _r.trial_record(o, i), _bind(dict, o)) for i, o in enumerate(objs)]

    def trial(self, name: str, namespace: str | None) -> FoundTrial:
        rec, t, obj = _r.trial(self.client, self.remote, name, namespace)
        return FoundTrial(rec, t, _bind(dict, obj))

    def hint(self, words: list[str], name: str, namespace: str) -> str:
        return _r.hint(self.remote, words, name, namespace)

    def print_log(self, trial: str, namespace: str | None, follow: bool) -> None:
        """What the trial wrote, read through the server on from where the last read ended
        while it runs (``-f``)."""
        c = self.client
        _, t, obj = _r.trial(c, self.remote, trial, namespace)
        namespace = obj["metadata"]["namespace"]
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        offset = 0
        while True:
            chunk, offset = c.get_trial_log_since(trial, offset, namespace)
            if not offset and t.state == "Created" and not follow:
                raise NotFoundError(f"no log for trial {trial} (it has not started)")
            sys.stdout.write(decoder.decode(chunk))
            sys.stdout.flush()
            if chunk:
                continue  # more may be waiting (one answer holds at most the server's log_bytes)
            if not follow or t.state not in ("Created", "Running"):
                break
            time.sleep(0.5)
            t = _r.trial_record(c.get_trial(trial, namespace))
            if t.state not in ("Created", "Running"):
                continue  # one more read: what it wrote before it ended
        sys.stdout.write(decoder.decode(b"", final=True))

    def delete(self, name: str, namespace: str | None) -> str:
        """Delete the experiment through the server, unless a controller runs it; returns
        its namespace."""
        found = self.experiment(name, namespace)
        if found.active:
            raise KatibError(f"experiment {name} is running on {self.remote.url}; stop it first: "
                             f"`{self.hint(['stop'], name, found.rec.namespace)}`")
        self.client.delete_experiment(name, found.rec.namespace)
        return str(found.rec.namespace)


Source = Here | Server


def source(db: str | None) -> Source:
    """The store here, or the server of ``--server``: where a read command reads."""
    remote = _remote()
    return Here(db) if remote is None else Server(remote)


def _bind(fn: Callable[..., dict[str, Any]], *args: Any) -> Callable[[], dict[str, Any]]:
    return lambda: fn(*args)


__all__ = ["Found", "FoundTrial", "Here", "Server", "Source", "source"]
