"""Run the katib CLI and SIGKILL it at one chosen point of the controller's loop.

    python -m tests._kill_at POINT -- run exp.yaml --db katib.db ...

The process kills itself, with SIGKILL, just before the first store write
(``Store.write_trials``) that would save a trial in the state POINT names; nothing after
that point runs, as when the controller is killed there from outside:

- ``launched``: a trial was launched, the write storing it ``Running`` is next;
- ``finished``: a trial ended, the write storing its end (``Succeeded``) is next;
- ``stopped``: a trial was stopped early, the write storing it ``EarlyStopped`` is next;
- ``killed``: the experiment ended and stopped a running trial, the write storing it
  ``Killed`` is next;
- ``spawning``: a local trial's wrapper process was just started, nothing of it is
  written down yet (the pid file, the handle).

tests/test_fault_injection.py kills at random times; this one hits the narrow windows
between acting (launching, deleting a job, sending a stop) and storing, every time.
"""

from __future__ import annotations

import os
import signal
import sys

STATES = {"launched": "Running", "finished": "Succeeded", "stopped": "EarlyStopped", "killed": "Killed"}


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    point, separator, *args = sys.argv[1:]
    assert separator == "--" and (point in STATES or point == "spawning"), __doc__
    sys.argv = ["katib", *args]
    from katib.cli import main as katib_main

    if point == "spawning":
        from trials._local import LocalExecutor

        LocalExecutor._record = lambda *_: die()  # type: ignore[method-assign]
        katib_main()
        return
    from katib.store import Store

    original = Store.write_trials
    state = STATES[point]

    def write_trials(self, save=(), new=(), samples=(), algorithm_state=None):  # type: ignore[no-untyped-def]
        if any(t.state == state for t in save):
            die()
        return original(self, save, new, samples, algorithm_state)

    Store.write_trials = write_trials  # type: ignore[method-assign]
    katib_main()


if __name__ == "__main__":
    main()
