"""Many experiments at once: what ``katib server`` runs.

The manager owns one controller thread per running experiment (each with its own
executor), starts the unfinished ones when the server starts, applies budget edits to the
running loop, and tells subscribers (the API's event stream) what happens.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katib.errors import ConflictError, NotFoundError, TemporaryError
from katib.names import RunLayout
from katib.spec import Experiment
from katib.store import ExperimentRecord, Store, TrialRecord
from trials import Executor, LocalExecutor, owner_alive

from ._controller import Controller
from ._run import ExperimentRun, is_completed
from ._status import rfc3339, set_condition

log = logging.getLogger("katib.controller")

Subscriber = Callable[[dict[str, Any]], None]


@dataclass
class _Running:
    thread: threading.Thread
    stop: threading.Event
    run: ExperimentRun | None = None
    error: BaseException | None = field(default=None)


class ExperimentManager:
    """Runs experiments in background threads of this process.

    >>> manager = ExperimentManager(Store("sqlite://"), Path("/tmp/runs"))  # doctest: +SKIP
    >>> rec, action = manager.submit(experiment, Path("."))  # doctest: +SKIP
    """

    def __init__(self, store: Store, runs_root: Path, tick: float = 1.0,
                 executor_factory: Callable[[], Executor] = LocalExecutor) -> None:
        self.store = store
        self.runs_root = runs_root
        self.tick = tick
        self.executor_factory = executor_factory
        self._running: dict[tuple[str, str], _Running] = {}
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self.errors: dict[tuple[str, str], str] = {}  # the last failure of each experiment's controller
        # The DBManager its trials' Custom collectors report to ("host:port": the server's
        # --grpc-port); None: each run starts one on a loopback port when it needs one.
        self.db_manager_address: str | None = None

    # -- events ------------------------------------------------------------------------

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(fn)
        return lambda: self._unsubscribe(fn)

    def _unsubscribe(self, fn: Subscriber) -> None:
        with self._lock:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

    def _publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for fn in subscribers:
            fn(event)

    def _listener(self, key: tuple[str, str]) -> Callable[[str, ExperimentRun, TrialRecord | None], None]:
        def listen(event: str, run: ExperimentRun, trial: TrialRecord | None) -> None:
            running = self._running.get(key)
            if running is not None and running.run is None:
                running.run = run
            payload: dict[str, Any] = {"type": event, "namespace": key[0], "experiment": key[1]}
            if trial is not None:
                payload.update(trial=trial.name, state=trial.state)
            self._publish(payload)

        return listen

    # -- lifecycle ---------------------------------------------------------------------

    def _controller(self, key: tuple[str, str]) -> Controller:
        ctl = Controller(self.store, self.executor_factory(), runs_root=self.runs_root, tick=self.tick,
                         listener=self._listener(key))
        ctl.db_manager_address = self.db_manager_address
        return ctl

    def submit(self, exp: Experiment, workdir: Path) -> tuple[ExperimentRecord, str]:
        """Store (or edit) an admitted experiment and run it unless it has finished."""
        key = (exp.namespace, exp.name)
        rec, action = self._controller(key).submit(exp, workdir)
        if exp.spec.executor == "external":
            return self.store.get_experiment(*key), action  # an outside loop drives it (ask and tell)
        if action in ("created", "restarted") or (action == "resumed" and key not in self._running):
            self.start(*key)
        elif action == "resumed":
            running = self._running.get(key)
            if running is not None and running.run is not None:
                running.run.update_budget(exp.to_dict()["spec"])
        return self.store.get_experiment(*key), action

    def start(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._lock:
            if key in self._running and self._running[key].thread.is_alive():
                return
            stop = threading.Event()
            thread = threading.Thread(target=self._run, args=(key, stop), name=f"katib-{namespace}-{name}", daemon=True)
            self._running[key] = _Running(thread, stop)
        thread.start()

    def _run(self, key: tuple[str, str], stop: threading.Event) -> None:
        try:
            self._controller(key).run(*key, stop=stop)
        except (TemporaryError, ConflictError) as exc:  # a retry can fix it: the experiment stays resumable
            self._fail(key, exc, permanent=False)
        except Exception as exc:  # the controller cannot run this experiment: say so, in its status
            self._fail(key, exc, permanent=True)
        finally:
            with self._lock:
                current = self._running.get(key)
                if current is not None and current.thread is threading.current_thread():
                    del self._running[key]
            self._publish({"type": "stopped", "namespace": key[0], "experiment": key[1]})

    def _fail(self, key: tuple[str, str], exc: Exception, permanent: bool) -> None:
        message = f"the controller failed: {type(exc).__name__}: {exc}"
        self._running[key].error = exc
        self.errors[key] = message
        if permanent:
            log.error("experiment %s/%s: %s", *key, message, exc_info=exc)
            self._mark_failed(key, message)
        else:
            log.warning("experiment %s/%s: %s (resume carries on)", *key, message)
        self._publish({"type": "error", "namespace": key[0], "experiment": key[1], "message": message})

    def _mark_failed(self, key: tuple[str, str], message: str) -> None:
        """Mark the experiment Failed (``ExperimentControllerFailed``): re-running it would
        crash the same way, and a stuck ``Running`` would hide that."""
        try:
            rec = self.store.get_experiment(*key)
            status = rec.status
            set_condition(status.conditions, "Running", "False", "ExperimentControllerFailed", message)
            set_condition(status.conditions, "Failed", "True", "ExperimentControllerFailed", message)
            status.completion_time = status.completion_time or rfc3339(time.time())
            self.store.update_experiment(rec.id, status=status)
        except Exception:  # the store itself is what failed: the log has it
            log.exception("experiment %s/%s: could not record the failure", *key)

    def is_running(self, namespace: str, name: str) -> bool:
        running = self._running.get((namespace, name))
        return running is not None and running.thread.is_alive()

    def stop(self, namespace: str, name: str, timeout: float = 30.0) -> None:
        """Stop the experiment's controller and its running trials (resume carries on)."""
        running = self._running.get((namespace, name))
        if running is None:
            return
        running.stop.set()
        running.thread.join(timeout)

    def stop_trial_early(self, namespace: str, experiment: str, trial: str, reason: str) -> bool:
        """Ask the experiment's running controller to stop ``trial`` early (it ends
        ``EarlyStopped``); False when no controller of this process runs the experiment."""
        running = self._running.get((namespace, experiment))
        if running is None or running.run is None or not running.thread.is_alive():
            return False
        running.run.request_early_stop(trial, reason)
        return True

    def retry_trial(self, namespace: str, experiment: str, trial: str, timeout: float = 10.0) -> str | None:
        """Ask the experiment's running controller to run an ended, unsuccessful trial's
        parameters again (``_retry.py``); the original's name once the request is recorded,
        None when no controller of this process runs the experiment. Raises ConflictError
        with the reason when the request is refused."""
        running = self._running.get((namespace, experiment))
        if running is None or running.run is None or not running.thread.is_alive():
            return None
        try:
            return running.run.request_retry(trial).result(timeout)
        except TimeoutError:
            raise ConflictError(f"experiment {namespace}/{experiment} did not take the retry of {trial} "
                                f"within {timeout:g} s (it may be ending)") from None

    def resume(self, namespace: str, name: str, settle: float = 0.5) -> str | None:
        """Start the experiment's controller; the error of one that fails within ``settle``
        seconds, or None."""
        rec = self.store.get_experiment(namespace, name)
        if (rec.spec.get("spec") or {}).get("executor") == "external":
            raise ConflictError(f"experiment {namespace}/{name} is driven from outside (ask and tell)")
        if is_completed(rec.status):
            raise ConflictError(f"experiment {namespace}/{name} has finished; raise maxTrialCount to restart it")
        if rec.owner and owner_alive(rec.owner) and not self.is_running(namespace, name):
            from trials import owner_id

            if rec.owner != owner_id():
                raise ConflictError(f"experiment {namespace}/{name} is being run by {rec.owner}")
        self.errors.pop((namespace, name), None)
        self.start(namespace, name)
        running = self._running.get((namespace, name))
        if running is not None:
            running.thread.join(settle)
        return self.errors.get((namespace, name))

    def resume_all(self) -> list[str]:
        """Start every unfinished experiment no live controller holds (after a restart)."""
        started = []
        for rec in self.store.list_experiments():
            if is_completed(rec.status) or (rec.owner and owner_alive(rec.owner)):
                continue
            if (rec.spec.get("spec") or {}).get("executor") == "external":
                continue
            self.start(rec.namespace, rec.name)
            started.append(f"{rec.namespace}/{rec.name}")
        return started

    def delete(self, namespace: str, name: str) -> None:
        folder = RunLayout(self.runs_root).experiment(namespace, name)  # checks the names first
        self.store.get_experiment(namespace, name)
        self.stop(namespace, name)
        self.store.delete_experiment(namespace, name)
        shutil.rmtree(folder, ignore_errors=True)

    def shutdown(self, timeout: float = 30.0) -> None:
        with self._lock:
            running = list(self._running.values())
        for r in running:
            r.stop.set()
        for r in running:
            r.thread.join(timeout)



__all__ = ["ExperimentManager", "NotFoundError"]
