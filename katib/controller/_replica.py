"""One ``katib server`` among several on one PostgreSQL database: a replica.

Every ``interval`` seconds (a fifth of the lease time) the replica
1. renews its heartbeat (``katib.store.Leases``); one that lapsed is never renewed: the
   replica abandons every experiment it ran, leaving their trials as they are for whoever
   adopts them, and registers afresh;
2. carries out what other replicas asked of the experiments it holds (stop, a budget edit,
   stop a trial early);
3. starts the experiments it holds but does not run (handed to it, or abandoned);
4. shares out the experiments of replicas whose lease lapsed, each to the replica holding
   the fewest (a conditional update: one winner each); the new holder's controller adopts
   their running trials as a restarted controller does (``_adopt.py``).

Its runs write and launch through ``FencedStore`` and ``FencedExecutor``: once the last
renewal is older than the lease time less a margin, before any other replica can judge the
lease lapsed, they wait for the next renewal, and raise ``LeaseLost`` instead of writing,
launching or stopping when none comes in time; so a replica that stalls never acts on an
experiment another has taken over, and a heartbeat that is merely late costs a pause.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from katib.store import LeaseLost, Leases, Request
from trials import owner_alive, owner_id

if TYPE_CHECKING:
    from ._manager import ExperimentManager

log = logging.getLogger("katib.controller")

RETRY_AFTER = 10.0  # seconds before a held experiment whose controller failed is started again


class Lease:
    """The hold a replica's runs act under, from one registration to its lapse: held while
    the last renewal was sent less than the lease time (less a margin) ago, so before any
    other replica can judge it lapsed."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        # The margin covers a write begun just before the deadline and the time a renewal
        # takes to reach the database after it was sent.
        self.margin = min(1.0, ttl / 4)
        self.renewed_at = time.monotonic()
        self.revoked = False
        self._changed = threading.Condition()

    def held(self) -> bool:
        return not self.revoked and time.monotonic() < self.renewed_at + self.ttl - self.margin

    def renew(self, sent: float) -> None:
        """A renewal sent at ``sent`` (monotonic) succeeded."""
        with self._changed:
            self.renewed_at = max(self.renewed_at, sent)
            self._changed.notify_all()

    def revoke(self) -> None:
        with self._changed:
            self.revoked = True
            self._changed.notify_all()

    def check(self, wait: float | None = None) -> None:
        """Return while the lease holds. A renewal that is late (a loaded machine, a slow
        database) is waited for, up to ``wait`` seconds (the lease time); ``LeaseLost``
        once it lapsed or was revoked."""
        deadline = time.monotonic() + (self.ttl if wait is None else wait)
        with self._changed:
            while not self.held():
                left = deadline - time.monotonic()
                if self.revoked or left <= 0:
                    raise LeaseLost("this server's lease lapsed: another server holds its experiments now")
                self._changed.wait(min(left, 0.1))


class _Fenced:
    """A proxy that checks the lease before the calls named in ``FENCED``."""

    FENCED: frozenset[str] = frozenset()

    def __init__(self, target: Any, lease: Lease) -> None:
        self._target = target
        self._lease = lease

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name not in self.FENCED:
            return attr
        lease = self._lease

        def fenced(*args: Any, **kwargs: Any) -> Any:
            lease.check()
            return attr(*args, **kwargs)

        return fenced


class FencedStore(_Fenced):
    """The store as a run sees it: its writes only while the lease is held."""

    FENCED = frozenset({"update_experiment", "claim_experiment", "write_trials", "add_trials", "save_trial",
                        "clear_observations", "save_algorithm_state"})


class FencedExecutor(_Fenced):
    """The executor as a run sees it: launches and stops only while the lease is held."""

    FENCED = frozenset({"launch", "stop", "recover"})


class Replica:
    """This server's heartbeat and its share of the experiments (see the module's doc)."""

    def __init__(self, manager: ExperimentManager, ttl: float = 5.0, interval: float | None = None,
                 replica_id: str | None = None) -> None:
        self.manager = manager
        self.leases = Leases(manager.store, ttl, own_pool=True)
        self.id = replica_id or owner_id()
        self.interval = interval or max(0.1, ttl / 5)
        self.lease = Lease(ttl)
        self.holders: dict[tuple[str, str], str] = {}  # experiment -> live replica holding it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reaped_at = 0.0
        self._handing_off = False
        self.quiet = False  # stopping: heartbeats only, nothing started or adopted
        self._written: dict[tuple[str, str], float] = {}  # what _relay saw last
        self._relaying = False

    def alive(self, owner: str) -> bool:
        """Whether ``owner`` holds its lease (a replica) or runs (a ``katib run``)."""
        return self.leases.alive(owner, owner_alive)

    def start(self) -> None:
        self._register()
        self.step()
        self._thread = threading.Thread(target=self._loop, name="katib-replica", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the heartbeat (``ExperimentManager.shutdown`` then retires or expires it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _register(self) -> None:
        lease = Lease(self.leases.ttl)
        self.leases.register(self.id, socket.gethostname(), os.getpid())
        self.lease = lease  # renewed_at: before the registration was sent

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except Exception:  # the database may be out of reach: the next beat tries again
                log.exception("replica %s: heartbeat step failed", self.id)

    # -- one step ----------------------------------------------------------------------

    def beat(self) -> bool:
        """Renew the heartbeat; on a lapse, abandon everything and register afresh. False
        when the database cannot be reached."""
        sent = time.monotonic()
        try:
            renewed = self.leases.renew(self.id)
        except Exception as exc:
            log.warning("replica %s: cannot renew its heartbeat: %s", self.id, exc)
            renewed = None
        if self._handing_off:
            return False
        if renewed is None:  # out of reach: the runs wait at their fence, then let go
            return False
        if not renewed:  # it lapsed in the database: others may hold its experiments now
            if not self.lease.revoked:
                self.lapse()
            self._register()
        elif self.lease.revoked:
            # Given up here though it never lapsed in the database (a heartbeat that lapses
            # is never renewed): no other replica took anything; carry on under a new lease.
            self.lease = Lease(self.leases.ttl)
            self.lease.renew(sent)
        else:
            self.lease.renew(sent)
        return True

    def lapse(self) -> None:
        """The lease lapsed: let every run go, touching neither its trials nor the store."""
        log.warning("replica %s: its lease lapsed; other servers adopt its experiments", self.id)
        self.lease.revoke()
        self.manager.abandon()

    def step(self) -> None:
        if self._stop.is_set() or not self.beat() or self.quiet:
            return
        for request in self.leases.take_requests(self.id):
            try:
                self.manager.apply_request(request)
            except Exception:  # one request that cannot be carried out (its experiment deleted, say) spoils no other
                log.exception("request %s for experiment %s/%s could not be carried out",
                              request.action, request.namespace, request.name)
        for exp_id, namespace, name in self.leases.owned(self.id):
            if not self.manager.runs_here(namespace, name):
                self.manager.start_held(exp_id, namespace, name, RETRY_AFTER)
        orphans = self.leases.orphans()
        if orphans:
            self._share(orphans)
        self.holders = self.leases.holders()
        if self.manager.subscribed() or not self._relaying:
            self._relay()  # the first step sets the baseline, so a subscriber hears of what was written since
        if time.monotonic() - self._reaped_at > 60:
            self._reaped_at = time.monotonic()
            self.leases.reap()

    def _relay(self) -> None:
        """Tell this server's subscribers (its event stream) of the experiments another
        server runs: a ``metrics`` event for each with a trial written (started, ended)
        since the last step (the viewer refreshes on it)."""
        written = self.leases.written(self.id)
        for (namespace, name), at in written.items():
            if at > self._written.get((namespace, name), at if not self._relaying else 0.0):
                self.manager.publish({"type": "metrics", "namespace": namespace, "experiment": name,
                                      "server": self.holders.get((namespace, name))})
        self._written, self._relaying = written, True

    # -- sharing out -------------------------------------------------------------------

    def _loads(self) -> dict[str, int]:
        return {r.id: r.leases for r in self.leases.replicas() if r.live}

    def _pick(self, loads: dict[str, int]) -> str:
        """The live replica holding the fewest experiments (this one on a tie)."""
        return min(loads, key=lambda r: (loads[r], r != self.id, r))

    def _share(self, orphans: list[tuple[int, str, str, str]]) -> None:
        loads = self._loads()
        if self.id not in loads:
            return
        for exp_id, namespace, name, dead in orphans:
            if self.manager.store.get_experiment(namespace, name).stopped_at is not None:
                self.leases.hand_over(exp_id, dead, None, lapsed=True)  # a user stopped it: let it go, stopped
                continue
            target = self._pick(loads)
            if self.leases.hand_over(exp_id, dead, target, lapsed=True):
                loads[target] += 1
                log.info("experiment %s/%s: %s's lease lapsed; %s adopts it", namespace, name, dead, target)
                if target == self.id:
                    self.manager.start(namespace, name)

    def place(self, exp_id: int, namespace: str, name: str, current: str | None) -> None:
        """Give a new (or resumed) experiment to the replica holding the fewest. It is
        held from here on: should its run let go before it starts (a lapse), the holder's
        next step (or, after a lapse, the replica adopting it) starts it."""
        loads = self._loads()
        loads.setdefault(self.id, 0)
        target = self._pick(loads)
        if not self.leases.hand_over(exp_id, current, target):
            return  # another change came first: whoever holds it now runs it
        self.holders[(namespace, name)] = target
        if target == self.id:
            self.manager.start(namespace, name)

    def ask(self, exp_id: int, action: str, trial: str | None = None, reason: str | None = None) -> None:
        self.leases.request(exp_id, action, trial, reason)

    def held_elsewhere(self, owner: str | None) -> bool:
        """Whether ``owner`` is another replica whose lease holds."""
        return bool(owner) and owner != self.id and self.leases.alive(owner or "", lambda _: False)

    def hand_off(self) -> bool:
        """Let the lease lapse now, so the other live replicas adopt what this one ran;
        False (and nothing done) when no other replica is live."""
        if not any(r != self.id for r in self._loads()):
            return False
        self._handing_off = True
        self.lease.revoke()
        return True


__all__ = ["FencedExecutor", "FencedStore", "Lease", "Replica", "Request"]
