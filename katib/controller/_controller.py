"""The experiment controller: the one writer of experiment and trial state.

``Controller.submit`` stores a new experiment (or applies an allowed edit to an existing
one); ``Controller.run`` claims it and drives it to the end through an ``ExperimentRun``
(``_run.py``: the reconcile loop, with ``_follow.py`` and ``_launch.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from katib import names
from katib.errors import ConflictError, NotFoundError, StaleEditError, ValidationError
from katib.spec import EXPERIMENT_LABEL, Experiment, ExperimentStatus, update_errors
from katib.store import ExperimentRecord, Store, TrialRecord
from trials import Executor, LocalExecutor, owner_alive, owner_id

from ._admission import runnable_errors
from ._run import ExperimentRun, Listener, is_completed
from ._status import (
    UNAVAILABLE,
    WARM_START_LABEL,
    mark_trial,
    metric_names,
    metric_value,
    remove_condition,
    rfc3339,
    set_condition,
    strategies,
)


def warm_start_trials(exp: Experiment) -> list[TrialRecord]:
    """The experiment's ``warmStart`` results as Succeeded trials (``experiment_id`` unset)."""
    if exp.spec.warm_start is None:
        return []
    names = metric_names(exp)
    strategy = strategies(exp)
    objective = names[0]
    now = time.time()
    out = []
    for i, w in enumerate(exp.spec.warm_start.trials or []):
        observation: dict[str, dict[str, str]] = {}
        for m in (w.observation.metrics if w.observation else []):
            given = [v for v in (m.latest, m.min, m.max) if v is not None]
            if m.name in names and given:
                observation[m.name] = {"min": m.min or given[0], "max": m.max or given[0], "latest": m.latest or given[0]}
        for name in names:
            observation.setdefault(name, {"min": UNAVAILABLE, "max": UNAVAILABLE, "latest": UNAVAILABLE})
        t = TrialRecord(
            id=0, experiment_id=0, name=f"{exp.name}-warm-{i + 1}", state="Created",
            assignments=[{"name": a.name, "value": a.value} for a in w.parameter_assignments or []],
            labels={EXPERIMENT_LABEL: exp.name, WARM_START_LABEL: "true"}, observation=observation,
            objective=metric_value(observation, objective, strategy[objective]),
            created_at=now, start_time=now, completion_time=now,
        )
        mark_trial(t, "Created")
        mark_trial(t, "Succeeded", "Known result given in spec.warmStart", reason="TrialWarmStarted")
        out.append(t)
    return out


def _marks(doc: dict[str, Any]) -> tuple[Any, Any]:
    """An experiment document's labels and annotations."""
    metadata = doc.get("metadata") or {}
    return metadata.get("labels") or {}, metadata.get("annotations") or {}


# Reads and writes of one edit while other edits (other servers') keep landing in between.
_EDIT_ATTEMPTS = 20
T = TypeVar("T")


def edit_again_while_stale(edit: Callable[[], T], what: str) -> T:
    """``edit`` (read the experiment, change it, submit it ``based_on`` what it read), made
    again from what is stored whenever another edit landed first (``StaleEditError``), at
    most ``_EDIT_ATTEMPTS`` times; then a ``ConflictError`` naming ``what``."""
    for _ in range(_EDIT_ATTEMPTS):
        try:
            return edit()
        except StaleEditError:
            continue
    raise ConflictError(f"{what} kept changing while it was edited: try again")


class Controller:
    """Stores experiments and runs them to the end.

    >>> ctl = Controller(Store("sqlite://"), runs_root=Path("/tmp/katib-runs"))  # doctest: +SKIP
    >>> rec, action = ctl.submit(experiment, workdir=Path("examples"))  # doctest: +SKIP
    >>> ctl.run(rec.namespace, rec.name)["conditions"][-1]["reason"]  # doctest: +SKIP
    'ExperimentMaxTrialsReached'
    """

    def __init__(
        self,
        store: Store,
        executor: Executor | None = None,
        runs_root: Path | None = None,
        tick: float = 1.0,
        listener: Listener | None = None,
        suggestion_address: str | None = None,
    ) -> None:
        self.store = store
        self.suggestion_address = suggestion_address
        self.executor = executor or LocalExecutor()
        self.runs_root = runs_root or names.runs_root(store.url)
        # The DBManager a Custom collector reports to ("host:port"; the server's --grpc-port);
        # None: each run starts one on a loopback port when it needs one.
        self.db_manager_address: str | None = None
        self.tick = tick
        self.listener = listener
        # Whose the experiments it runs are (None: this process's owner_id()) and how a
        # holder's liveness is judged; a server among several sets both (its replica).
        self.owner: str | None = None
        self.is_alive: Callable[[str], bool] = owner_alive

    # -- submission --------------------------------------------------------------------

    def submit(self, exp: Experiment, workdir: Path, based_on: dict[str, Any] | None = None,
               create_only: bool = False) -> tuple[ExperimentRecord, str]:
        """Store ``exp`` (admitted already). Returns the record and what happened:
        ``created``, ``resumed`` (unfinished, budget possibly edited), ``restarted``
        (finished, budget raised, resumePolicy allows it) or ``unchanged`` (finished).

        ``based_on`` is the stored spec an edit (a patch) was made from: if the experiment
        no longer has it, another edit came in between and ``StaleEditError`` says to read
        and patch again. Without it, ``exp`` replaces whatever is stored (a file applied).
        ``create_only`` (a create, a POST): an experiment stored under the name meanwhile,
        through another server or request, is a ``ConflictError``, not edited."""
        errors = runnable_errors(exp, self.executor.name)
        if errors:
            raise ValidationError(errors)
        spec = exp.model_dump(by_alias=True, exclude_none=True, mode="json", exclude={"status"})
        for _ in range(_EDIT_ATTEMPTS):
            try:
                rec = self.store.get_experiment(exp.namespace, exp.name)
            except NotFoundError:
                if based_on is not None:
                    raise
                now = time.time()
                status = ExperimentStatus(start_time=rfc3339(now))
                set_condition(status.conditions, "Created", "True", "ExperimentCreated", "Experiment is created", now)
                rec = self.store.create_experiment(exp.namespace, exp.name, spec, status, str(workdir.resolve()),
                                                   initial_trials=warm_start_trials(exp))
                return rec, "created"
            if create_only:
                raise ConflictError(f'experiments.kubeflow.org "{exp.name}" already exists')
            if based_on is not None and rec.spec != based_on:
                raise StaleEditError(f"experiment {exp.namespace}/{exp.name} was changed by another edit")
            try:
                return rec, self._edit(rec, spec)
            except StaleEditError:
                if based_on is not None:
                    raise
                # another edit was stored between the read and the write: a whole spec
                # replaces it, read again
        raise ConflictError(f"experiment {exp.namespace}/{exp.name} kept changing while it was edited: try again")

    def _edit(self, rec: ExperimentRecord, spec: dict[str, Any]) -> str:
        """Apply an edited spec as Katib does: its webhook's rules (``update_errors``), then
        its controller's restart of a completed experiment the edit reopened. Written only
        if the stored spec is still ``rec``'s (``StaleEditError`` otherwise)."""
        old, new = rec.spec.get("spec") or {}, spec.get("spec") or {}
        status = rec.status
        errors = update_errors(old, new, status)
        if errors:
            raise ValidationError(errors)
        if old == new:
            # Labels and annotations may change at any time, as on any Kubernetes object
            # (an applied file's, a file run again): they are stored. (The API's patch of
            # them alone stores them without coming here: it starts nothing.)
            if _marks(rec.spec) != _marks(spec):
                self._write(rec, spec=spec)
            return "unchanged" if is_completed(status) else "resumed"
        if not is_completed(status):
            # Only while it runs: if it ended meanwhile, the edit is made again for an
            # ended experiment (a restart, where Katib's rules allow one), not lost.
            self._write(rec, unfinished=True, spec=spec)
            return "resumed"
        # Accepted on a completed experiment: it is restartable (Succeeded with
        # ExperimentMaxTrialsReached, resumePolicy LongRunning or FromVolume) and its
        # maxTrialCount exceeds its trials or is unset, which Katib's controller restarts
        # (MarkExperimentStatusRestarting: Succeeded and Failed go, Restarting comes and stays).
        # startTime and completionTime stay as they are, as Katib's do: completionTime is
        # the previous end's until the experiment ends again (the conditions say it runs).
        conditions = status.conditions
        remove_condition(conditions, "Succeeded")
        remove_condition(conditions, "Failed")
        set_condition(conditions, "Restarting", "True", "ExperimentRestarting", "Experiment is restarted")  # Katib's words
        self._write(rec, spec=spec, status=status)
        return "restarted"

    def _write(self, rec: ExperimentRecord, unfinished: bool = False, **fields: Any) -> None:
        if not self.store.update_experiment(rec.id, if_spec=rec.spec, if_unfinished=unfinished, **fields):
            raise StaleEditError(f"experiment {rec.namespace}/{rec.name} was changed by another edit")

    # -- running -----------------------------------------------------------------------

    def run(self, namespace: str, name: str, stop: threading.Event | None = None) -> ExperimentStatus:
        """Drive the experiment until it ends (or ``stop`` is set); returns its status."""
        rec = self.store.get_experiment(namespace, name)
        if (rec.spec.get("spec") or {}).get("executor") == "external":
            raise ConflictError(f"experiment {namespace}/{name} is driven from outside (spec.executor: external): "
                                "use ask and tell (katib server or KatibClient)")
        me = self.owner or owner_id()
        self.store.claim_experiment(rec.id, me, self.is_alive)
        run: ExperimentRun | None = None
        try:
            run = ExperimentRun(self, rec)
            return run.loop(stop)
        finally:
            if run is not None:
                run.close()
            self.store.update_experiment(rec.id, owner=None)


__all__ = ["Controller", "ExperimentRun", "edit_again_while_stale", "is_completed"]
