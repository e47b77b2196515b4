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
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katib.errors import ConflictError, NotFoundError, TemporaryError
from katib.names import RunLayout
from katib.spec import Experiment
from katib.store import (
    ExperimentRecord,
    LeaseLost,
    Leases,
    Request,
    Store,
    TrialRecord,
    record_stop,
)
from trials import Executor, LocalExecutor, owner_alive

from ._controller import Controller
from ._replica import FencedExecutor, FencedStore, Replica
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
        self.replica: Replica | None = None  # one of several servers on one database (enable_replicas)
        self._failed_at: dict[tuple[str, str], float] = {}

    # -- events ------------------------------------------------------------------------

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(fn)
        return lambda: self._unsubscribe(fn)

    def _unsubscribe(self, fn: Subscriber) -> None:
        with self._lock:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

    def subscribed(self) -> bool:
        return bool(self._subscribers)

    def publish(self, event: dict[str, Any]) -> None:
        """Tell every subscriber (the API's event stream)."""
        self._publish(event)

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

    def _controller(self, key: tuple[str, str], fenced: bool = False) -> Controller:
        store: Any = self.store
        executor: Any = self.executor_factory()
        replica = self.replica
        if fenced and replica is not None:  # a run's writes and launches, under this replica's lease
            store, executor = FencedStore(store, replica.lease), FencedExecutor(executor, replica.lease)
        ctl = Controller(store, executor, runs_root=self.runs_root, tick=self.tick, listener=self._listener(key))
        ctl.db_manager_address = self.db_manager_address
        if replica is not None:
            ctl.owner, ctl.is_alive = replica.id, replica.alive
        return ctl

    def submit(self, exp: Experiment, workdir: Path, based_on: dict[str, Any] | None = None,
               create_only: bool = False) -> tuple[ExperimentRecord, str]:
        """Store (or edit) an admitted experiment and run it unless it has finished
        (``based_on``, ``create_only``: see ``Controller.submit``)."""
        key = (exp.namespace, exp.name)
        rec, action = self._controller(key).submit(exp, workdir, based_on, create_only)
        if exp.spec.executor == "external":
            return self.store.get_experiment(*key), action  # an outside loop drives it (ask and tell)
        if self.replica is not None and action != "unchanged" and key not in self._running:
            owner = self.store.get_experiment(*key).owner  # as it is now: its run may have let it go since
            if self.replica.held_elsewhere(owner):  # another server runs it: it applies the budget
                self.replica.ask(rec.id, "budget")
            elif owner and owner != self.replica.id and self.replica.alive(owner):
                pass  # a live `katib run` on this database holds it: not a server's to place
            else:
                self.replica.leases.withdraw(rec.id, "stop")  # one left for a run that is gone
                self.replica.place(rec.id, *key, owner)
        elif action == "resumed" and key not in self._running and self._forwarded(rec.id, key):
            pass  # a server on this database runs it: it applies the budget
        elif action in ("created", "restarted") or (action == "resumed" and key not in self._running):
            self.start(*key)
        elif action == "resumed":
            running = self._running.get(key)
            if running is not None and running.run is not None:
                running.run.update_budget(exp.to_dict()["spec"])
        return self.store.get_experiment(*key), action

    def _forwarded(self, exp_id: int, key: tuple[str, str]) -> bool:
        """Not a server (``KatibClient(db=…)``, ``katib run``) but on a database servers
        share: when a live server runs the experiment, ask it to take the edited budget.
        Whether one was asked."""
        owner = self.store.get_experiment(*key).owner
        leases = Leases(self.store)
        if not owner or not leases.known(owner) or not leases.alive(owner, owner_alive):
            return False
        leases.request(exp_id, "budget")
        return True

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
            self._controller(key, fenced=True).run(*key, stop=stop)
        except LeaseLost:  # another server adopts it, with its running trials
            log.info("experiment %s/%s: let go (this server's lease lapsed)", *key)
        except (TemporaryError, ConflictError) as exc:  # a retry can fix it: the experiment stays resumable
            self._fail(key, exc, permanent=False)
        except Exception as exc:  # the controller cannot run this experiment: say so, in its status
            self._fail(key, exc, permanent=True)
        finally:
            from trials import release_reserved

            release_reserved(*key)  # what a start counted and its controller did not take over
            with self._lock:
                current = self._running.get(key)
                if current is not None and current.thread is threading.current_thread():
                    del self._running[key]
            self._publish({"type": "stopped", "namespace": key[0], "experiment": key[1]})

    def _fail(self, key: tuple[str, str], exc: Exception, permanent: bool) -> None:
        message = f"the controller failed: {type(exc).__name__}: {exc}"
        self._running[key].error = exc
        self.errors[key] = message
        self._failed_at[key] = time.monotonic()
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
            if rec.owner is not None:  # this run let it go first: another controller has it now, and runs it
                log.warning("experiment %s/%s: not marked Failed: %s runs it now", *key, rec.owner)
                return
            status = rec.status
            # It ends now, as every end in Katib sets completionTime (a restarted
            # experiment still holds its previous end's); one that had ended keeps its own.
            ended = is_completed(status)
            set_condition(status.conditions, "Running", "False", "ExperimentControllerFailed", message)
            set_condition(status.conditions, "Failed", "True", "ExperimentControllerFailed", message)
            if not (ended and status.completion_time):
                status.completion_time = rfc3339(time.time())
            self.store.update_experiment(rec.id, status=status)
        except Exception:  # the store itself is what failed: the log has it
            log.exception("experiment %s/%s: could not record the failure", *key)

    def runs_here(self, namespace: str, name: str) -> bool:
        """Whether a controller of this process runs the experiment."""
        running = self._running.get((namespace, name))
        return running is not None and running.thread.is_alive()

    def is_running(self, namespace: str, name: str) -> bool:
        """Whether a controller runs the experiment: this process's, or (several servers
        on one database) another live server's, as of its last heartbeat."""
        return self.runs_here(namespace, name) or (
            self.replica is not None and (namespace, name) in self.replica.holders)

    def _mark_before_stopping(self, namespace: str, name: str, uid: str | None) -> None:
        """Store a user's stop before this process's controller acts on it ("write before
        acting"): a server killed after stopping the trials and before marking the stop ran
        the experiment again when it started, its stopped trials with it."""
        from trials import owner_id

        rec = self.store.get_experiment(namespace, name)
        if (uid is not None and rec.uid != uid) or is_completed(rec.status):
            return
        mine = self.replica.id if self.replica is not None else owner_id()
        record_stop(self.store, rec.id, lambda owner: owner != mine and self._alive(owner))

    def _alive(self, owner: str) -> bool:
        """Whether ``owner`` runs: a replica holding its lease (several servers), or a live process."""
        return self.replica.alive(owner) if self.replica is not None else owner_alive(owner)

    def stop(self, namespace: str, name: str, timeout: float = 30.0, uid: str | None = None) -> None:
        """A user's stop: stop the experiment's controller and its running trials, and
        remember it, so that no server that starts takes it up again (resume carries on).
        With ``uid``, only that experiment is marked (one made again under the name while
        the stop waited is not)."""
        for _ in range(3):
            if uid is not None and self.store.get_experiment(namespace, name).uid != uid:
                return  # deleted and made again: the one asked of is gone, and this one is not stopped
            running = self._running.get((namespace, name))
            if running is None:
                if self.replica is not None:
                    self._stop_elsewhere(namespace, name, timeout)
            else:
                self._mark_before_stopping(namespace, name, uid)
                running.stop.set()
                running.thread.join(timeout)
            if mark_stopped(self.store, namespace, name, self._alive, uid) or self.replica is None:
                return
            rec = self.store.get_experiment(namespace, name)
            if uid is not None and rec.uid != uid:
                return
            here = rec.owner == self.replica.id
            if is_completed(rec.status) or not rec.owner or (here and running is not None) or (
                    not here and not (self.replica.leases.known(rec.owner) and self.replica.alive(rec.owner))):
                return  # ended; or this server's run did not stop in time, or a `katib run` holds it, as before
            # Not marked: a live server (this one, or another) took it up while this stop
            # waited (the one stopped lapsed, and it was adopted). Stop that run too.
            if here:
                time.sleep(0.5)  # its run is being started: stop it once it is
        raise TemporaryError(f"experiment {namespace}/{name} was taken up by another server each time it was stopped: "
                             "stop it again")

    def _stop_elsewhere(self, namespace: str, name: str, timeout: float) -> None:
        """Ask the server holding the experiment to stop it, and wait until it has."""
        assert self.replica is not None
        rec = self.store.get_experiment(namespace, name)
        owner = rec.owner
        if not owner or owner == self.replica.id or not self.replica.leases.known(owner):
            return  # nothing holds it (or a `katib run` does, which `katib stop` stops)
        self.replica.ask(rec.id, "stop")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.store.get_experiment(namespace, name).owner == owner:
            time.sleep(0.1)
        self.replica.holders.pop((namespace, name), None)
        if self.store.get_experiment(namespace, name).owner == owner:
            raise TemporaryError(f"experiment {namespace}/{name}: the server holding it ({owner}) did not stop it "
                                 f"within {timeout:g} s")

    def stop_trial_early(self, namespace: str, experiment: str, trial: str, reason: str) -> bool:
        """Ask the experiment's running controller to stop ``trial`` early (it ends
        ``EarlyStopped``); False when no controller of this process runs the experiment."""
        running = self._running.get((namespace, experiment))
        if running is None or running.run is None or not running.thread.is_alive():
            if self.replica is not None:  # another server may run it: ask it
                rec = self.store.get_experiment(namespace, experiment)
                if self.replica.held_elsewhere(rec.owner):
                    self.replica.ask(rec.id, "stop_trial", trial, reason)
                    return True
            return False
        running.run.request_early_stop(trial, reason)
        return True

    def retry_trial(self, namespace: str, experiment: str, trial: str, timeout: float = 10.0) -> str | None:
        """Ask the experiment's running controller to run an ended, unsuccessful trial's
        parameters again (``_retry.py``): "recorded" once its controller here has recorded
        the request, "asked" when another server runs it (that one checks it), None when no
        controller runs the experiment. Raises ConflictError with the reason when refused."""
        running = self._running.get((namespace, experiment))
        if running is None or running.run is None or not running.thread.is_alive():
            if self.replica is not None:  # another server may run it: ask it
                rec = self.store.get_experiment(namespace, experiment)
                if self.replica.held_elsewhere(rec.owner):
                    self.replica.ask(rec.id, "retry_trial", trial)
                    return "asked"
            return None
        try:
            running.run.request_retry(trial).result(timeout)
            return "recorded"
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
        replica = self.replica
        if rec.owner and self._alive(rec.owner) and not self.runs_here(namespace, name):
            from trials import owner_id, owner_text

            if rec.owner != (replica.id if replica is not None else owner_id()):
                if replica is not None and replica.leases.known(rec.owner):
                    return None  # another server runs it
                raise ConflictError(f"experiment {namespace}/{name} is being run by another controller "
                                    f"({owner_text(rec.owner)})")
        if rec.stopped_at is not None:  # resumed: the user's stop is over (before a replica sees it held)
            self.store.update_experiment(rec.id, stopped_at=None)
        if replica is not None:
            replica.leases.withdraw(rec.id, "stop")  # one left from before it was last stopped
            if rec.owner is None:  # held from here on, should its run let go before it claims it
                replica.leases.hand_over(rec.id, None, replica.id)
        self.errors.pop((namespace, name), None)
        self.start(namespace, name)
        running = self._running.get((namespace, name))
        if running is not None:
            running.thread.join(settle)
        return self.errors.get((namespace, name))

    def resume_all(self) -> list[str]:
        """Start every unfinished experiment no live controller holds and no user stopped
        (after a restart)."""
        started = []
        replica = self.replica
        taken = []
        for rec in self.store.list_experiments():
            if is_completed(rec.status) or (rec.owner and self._alive(rec.owner)):
                continue
            if rec.stopped_at is not None:  # a user stopped it: it stays stopped until resumed
                if replica is None:  # its stop is stored before its trials are stopped: a crash between left them running
                    end_left_trials(self.store, rec)
                continue
            if (rec.spec.get("spec") or {}).get("executor") == "external":
                self._settle_outside_loop(rec)
                continue
            taken.append(rec)
        if replica is None:
            # What every experiment's running trials hold is counted before any controller
            # starts: each starts on its own, and one launched a waiting trial on the GPU of
            # another's running trial not adopted yet (which kept it, too).
            from trials import reserve_running

            for rec in taken:
                running = self.store.list_trials(rec.id, states=("Running",))
                reserve_running(rec.namespace, rec.name, [(t.name, t.handle) for t in running if t.handle])
        for rec in taken:
            if replica is None:
                self.start(rec.namespace, rec.name)
            elif rec.owner and replica.leases.known(rec.owner):
                continue  # a server whose lease lapsed: its experiments are shared out with their trials
            else:
                replica.place(rec.id, rec.namespace, rec.name, rec.owner)
            started.append(f"{rec.namespace}/{rec.name}")
        return started

    def _settle_outside_loop(self, rec: Any) -> None:
        """An outside loop's experiment whose last tell was cut off by a crash (its trial
        stored, the end not): ended now, as that tell would have."""
        from ._ask_tell import AskTell

        try:
            if AskTell(self.store).settle(rec.namespace, rec.name):
                self._publish({"type": "ended", "namespace": rec.namespace, "experiment": rec.name})
        except Exception as exc:  # a spec or algorithm that no longer loads: left to the next ask, as before
            log.warning("experiment %s/%s: could not check its end: %s", rec.namespace, rec.name, exc)

    def delete(self, namespace: str, name: str, uid: str | None = None, dry_run: bool = False) -> None:
        """Stop and delete the experiment, its trials and their files; with ``uid``, only
        the experiment of that uid (a Kubernetes delete's precondition), else a 409. A dry
        run checks as much and does nothing."""
        folder = RunLayout(self.runs_root).experiment(namespace, name)  # checks the names first
        rec = self.store.get_experiment(namespace, name)
        rec.check_uid(uid)
        if dry_run:
            return
        self.stop(namespace, name, uid=rec.uid)
        # The one found, by its uid: one deleted and made again under the name while this
        # stop waited is a 409 here, and its rows and folder are left alone.
        try:
            self.store.delete_experiment(namespace, name, rec.uid)
        except ConflictError:
            if uid:
                raise  # the caller's precondition, in Kubernetes' words
            raise ConflictError(f"experiment {namespace}/{name} was deleted and made again while this delete "
                                "stopped it: the new one was left as it is") from None
        shutil.rmtree(folder, ignore_errors=True)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop every controller of this process and their running trials, or, when other
        servers share the database, hand the experiments over to them with their trials
        still running."""
        replica = self.replica
        if replica is not None:
            replica.quiet = True  # its heartbeat goes on while the runs stop, starting nothing more
        handing_off = replica is not None and replica.hand_off()
        with self._lock:
            running = list(self._running.values())
        for r in running:
            r.stop.set()
        for r in running:
            r.thread.join(timeout)
        if replica is not None:
            replica.close()
            if handing_off:
                replica.leases.expire(replica.id)  # lapsed now: the others adopt at their next beat
            else:
                replica.leases.retire(replica.id)
            replica.leases.close()

    # -- several servers on one database (_replica.py) ----------------------------------

    def enable_replicas(self, ttl: float = 5.0, interval: float | None = None,
                        replica_id: str | None = None) -> Replica:
        """Run as one of several servers on this database: heartbeat, share experiments out
        by lease, adopt those of a server whose lease lapsed."""
        self.replica = Replica(self, ttl, interval, replica_id)
        self.replica.start()
        return self.replica

    def abandon(self) -> None:
        """Let every run go without touching its trials (the lease lapsed: they are another
        server's now). Their fenced writes and launches raise ``LeaseLost``."""
        with self._lock:
            running = list(self._running.values())
        for r in running:
            r.stop.set()

    def start_held(self, exp_id: int, namespace: str, name: str, retry_after: float) -> None:
        """Start an experiment this server holds but does not run (handed to it, or left
        by a run that let go); give it up when there is nothing to run."""
        assert self.replica is not None
        key = (namespace, name)
        if time.monotonic() - self._failed_at.get(key, -retry_after) < retry_after:
            return  # its controller failed a moment ago
        rec = self.store.get_experiment(namespace, name)
        if is_completed(rec.status) or (rec.spec.get("spec") or {}).get("executor") == "external" \
                or rec.stopped_at is not None:  # a user stopped it: it stays stopped until resumed
            self.replica.leases.release(exp_id, self.replica.id)
            return
        self.start(namespace, name)

    def apply_request(self, request: Request) -> None:
        """Carry out what another server asked of an experiment this one holds."""
        assert self.replica is not None
        running = self._running.get((request.namespace, request.name))
        run = running.run if running is not None and running.thread.is_alive() else None
        if request.action == "stop":
            if running is not None and running.thread.is_alive():
                running.stop.set()
            else:
                self.replica.leases.release(request.experiment_id, self.replica.id)
        elif request.action == "budget" and run is not None:
            run.update_budget(self.store.get_experiment(request.namespace, request.name).spec["spec"])
        elif request.action == "stop_trial" and run is not None:
            run.request_early_stop(request.trial or "", request.reason or "stopped by a user")
        elif request.action in ("budget", "stop_trial", "retry_trial") and run is None:
            log.warning("%s/%s: %s asked of a server that no longer runs it (it ended or was handed on): dropped",
                        request.namespace, request.name, request.action)
        elif request.action == "retry_trial" and run is not None:
            def said(answer: Future[str]) -> None:
                if answer.exception() is not None:  # nobody waits for it here: the log says why
                    log.warning("%s/%s: retry of %s refused: %s", request.namespace, request.name,
                                request.trial, answer.exception())

            run.request_retry(request.trial or "").add_done_callback(said)



def mark_stopped(store: Store, namespace: str, name: str,
                 is_alive: Callable[[str], bool] = owner_alive, uid: str | None = None) -> bool:
    """Remember that a user stopped the experiment (unless it has ended, or a live
    controller the stop did not reach still holds it, or it is not the one of ``uid``):
    a server that starts leaves it stopped; running it again (resume, run) clears the
    mark. Whether it was marked."""
    rec = store.get_experiment(namespace, name)
    if uid is not None and rec.uid != uid:
        return False
    if is_completed(rec.status) or not record_stop(store, rec.id, is_alive):
        return False
    end_left_trials(store, rec)
    return True


def end_left_trials(store: Store, rec: Any) -> int:
    """End what is left of the experiment's local and Slurm trials when no controller follows them
    (its controller was killed: they ran on), as its controller's own stop does: each is
    stored interrupted (``Created`` again, ``TrialInterrupted``; one being stopped early
    stays so), then its processes are killed; the next run runs it again. A stop or delete
    of an experiment nothing runs does this; the caller knows that no live controller holds
    it. Returns how many it ended."""
    from trials import kill_left, left_running
    from trials._slurm import SlurmExecutor

    from ._adopt import INTERRUPTED, INTERRUPTED_MESSAGE, STOPPING

    ended = 0
    slurm = SlurmExecutor()
    for t in store.list_trials(rec.id, states=("Running",)):
        executor = (t.handle or {}).get("executor", "local")
        if executor == "local":
            left = bool(t.handle and left_running(t.handle))
        elif executor == "slurm":  # its job runs on in the cluster: cancelled as its controller's stop would
            left = bool(slurm.left_job(t.handle or {}))
        else:  # a Ray actor dies with its driver; a Kubernetes job is the next run's to adopt or delete
            left = False
        if not (t.handle and left):
            continue  # ended while no controller ran: the next run reads its end
        t.handle = {**t.handle, INTERRUPTED: True}
        if not t.handle.get(STOPPING):
            set_condition(t.conditions, "Running", "False", "TrialInterrupted", INTERRUPTED_MESSAGE)
            t.state = "Created"
        store.save_trial(t)  # stored before the stop: a stopped trial is never taken for a lost one
        if executor == "slurm":
            slurm.recover(t.handle)
        else:
            kill_left(t.handle)
        ended += 1
    return ended


__all__ = ["ExperimentManager", "NotFoundError", "end_left_trials", "mark_stopped"]

