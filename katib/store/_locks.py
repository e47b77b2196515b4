"""A lock per name across every process that shares a database: what ask and tell take,
so that two servers (or a server and a ``KatibClient`` on the same database) answering
for one external experiment read its trials and write new ones one at a time.

- PostgreSQL: a transaction-scoped advisory lock (``pg_advisory_xact_lock``), on a small
  engine of its own, so that a held lock never takes a connection the work under it needs.
- SQLite: ``flock`` of one of 4,096 files in ``<database>-locks/``, opened for each hold.
  ``flock`` belongs to the open file, so threads exclude each other as processes do, and
  nothing reports a deadlock where there is none (POSIX record locks do, per process).
- An in-memory database is this process's alone: nothing to take.

Names are hashed; two names that meet only wait for each other. A wait lasts at most
``WAIT`` seconds, then ``TemporaryError``.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from katib.errors import TemporaryError

_ADVISORY_CLASS = 724002  # the migration lock is 724001
_FILES = 4096
WAIT = 300.0


class Locks:
    """``hold(name)``: the lock of ``name`` among the processes on one database."""

    def __init__(self, url: str, dialect: str) -> None:
        self._url, self._dialect = url, dialect
        self._engine: Any = None
        self._engine_guard = threading.Lock()
        self.folder: str | None = None
        if dialect == "sqlite":
            database = sa.engine.make_url(url).database
            if database and database != ":memory:":
                self.folder = os.path.realpath(database) + "-locks"

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        key = zlib.crc32(name.encode())
        if self._dialect == "postgresql":
            try:
                with self._pg().begin() as conn:
                    conn.execute(sa.text(f"SET LOCAL lock_timeout = '{int(WAIT * 1000)}ms'"))
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:c, :k)"),
                                 {"c": _ADVISORY_CLASS, "k": key - (1 << 31)})
                    yield
            except OperationalError as exc:
                raise TemporaryError(f"{name}: the lock was not free within {WAIT:g} s ({exc.orig})") from None
        elif self.folder is not None:
            fd = self._open(key % _FILES)
            try:
                deadline = time.monotonic() + WAIT
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise TemporaryError(f"{name}: the lock was not free within {WAIT:g} s") from None
                        time.sleep(0.002)
                yield
            finally:
                os.close(fd)  # and the lock with it
        else:
            yield

    def _open(self, index: int) -> int:
        assert self.folder is not None
        path = os.path.join(self.folder, f"{index:03x}")
        try:
            try:
                return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            except FileNotFoundError:
                os.makedirs(self.folder, mode=0o700, exist_ok=True)
                return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise TemporaryError(f"cannot open the lock file {path} beside the database: {exc.strerror}") from None

    def _pg(self) -> Any:
        with self._engine_guard:
            if self._engine is None:
                self._engine = sa.create_engine(self._url, pool_pre_ping=True, pool_size=2, max_overflow=8,
                                                pool_timeout=WAIT)
            return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
