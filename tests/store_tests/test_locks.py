"""The locks ask and tell take among the processes on one SQLite database
(``katib.store._locks``): threads of one process exclude each other as processes do, and
two processes whose threads take two locks in crossing order both get them. A first
version used POSIX record locks, which are the process's: the kernel reported a deadlock
(EDEADLK, a 500) where there was none."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

from katib.store._locks import Locks


def _crossing(path: str, first: str, second: str, delay: float, out: Any) -> None:
    locks = Locks(f"sqlite:///{path}", "sqlite")
    errors: list[str] = []

    def hold(name: str, wait: float, hold_for: float) -> None:
        time.sleep(wait)
        try:
            with locks.hold(name):
                time.sleep(hold_for)
        except Exception as exc:  # noqa: BLE001 - the test reports whatever it was
            errors.append(repr(exc))

    threads = [threading.Thread(target=hold, args=(first, 0, 1.0)),
               threading.Thread(target=hold, args=(second, delay, 0.05))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(errors)


def test_two_processes_taking_two_locks_in_crossing_order_both_get_them(tmp_path: Path):
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    path = str(tmp_path / "katib.db")
    procs = [ctx.Process(target=_crossing, args=(path, "ask-tell/ns/a", "ask-tell/ns/b", 0.3, out)),
             ctx.Process(target=_crossing, args=(path, "ask-tell/ns/b", "ask-tell/ns/a", 0.6, out))]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
    assert results == [[], []]


def test_threads_of_one_process_take_turns(tmp_path: Path):
    locks = [Locks(f"sqlite:///{tmp_path / 'katib.db'}", "sqlite") for _ in range(2)]  # two stores, one database
    inside: list[int] = []
    most = [0]

    def work(i: int) -> None:
        for _ in range(20):
            with locks[i % 2].hold("ask-tell/ns/e"):
                inside.append(i)
                most[0] = max(most[0], len(inside))
                time.sleep(0.001)
                inside.remove(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1
    assert sorted(p.name for p in (tmp_path / "katib.db-locks").iterdir())  # beside the database
