"""A lock per name across every process that shares a database: what ask and tell take,
so that two servers (or a server and a ``KatibClient`` on the same database) answering
for one external experiment read its trials and write new ones one at a time.

- PostgreSQL: a transaction-scoped advisory lock (``pg_advisory_xact_lock``), on a small
  engine of its own, so that a held lock never takes a connection the work under it needs.
- SQLite: one byte of ``<database>-locks`` per name, locked with ``fcntl``. Such locks are
  the process's, not the thread's, and closing any descriptor of the file drops them all:
  the file stays open for the life of the process, and threads take a striped lock first.
- An in-memory database is this process's alone: the striped lock is all there is.

Names are hashed to 32 bits; two names that meet only wait for each other.
"""

from __future__ import annotations

import fcntl
import os
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

_ADVISORY_CLASS = 724002  # the migration lock is 724001
_STRIPES = tuple(threading.Lock() for _ in range(256))
_FILES: dict[str, int] = {}
_FILES_GUARD = threading.Lock()


def _file(path: str) -> int:
    with _FILES_GUARD:
        fd = _FILES.get(path)
        if fd is None:
            fd = _FILES[path] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return fd


class Locks:
    """``hold(name)``: the lock of ``name`` among the processes on one database."""

    def __init__(self, url: str, dialect: str) -> None:
        self._url, self._dialect = url, dialect
        self._engine: Any = None
        self._engine_guard = threading.Lock()
        self._path: str | None = None
        if dialect == "sqlite":
            database = sa.engine.make_url(url).database
            if database and database != ":memory:":
                self._path = os.path.abspath(database) + "-locks"

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        key = zlib.crc32(name.encode())
        with _STRIPES[hash((self._path or self._url, key)) % len(_STRIPES)]:
            if self._dialect == "postgresql":
                with self._pg().begin() as conn:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:c, :k)"),
                                 {"c": _ADVISORY_CLASS, "k": key - (1 << 31)})
                    yield
            elif self._path is not None:
                fd = _file(self._path)
                fcntl.lockf(fd, fcntl.LOCK_EX, 1, key)
                try:
                    yield
                finally:
                    fcntl.lockf(fd, fcntl.LOCK_UN, 1, key)
            else:
                yield

    def _pg(self) -> Any:
        with self._engine_guard:
            if self._engine is None:
                self._engine = sa.create_engine(self._url, pool_pre_ping=True, pool_size=2, max_overflow=30,
                                                pool_timeout=120)
            return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
