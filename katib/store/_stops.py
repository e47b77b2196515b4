"""A user's stop, remembered (``experiments.stopped_at``): a server that starts, or a
replica adopting a lapsed one's experiments, leaves such an experiment stopped; a
controller's claim (``Store.claim_experiment``: resume, run) clears the mark."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from katib.errors import NotFoundError

from ._schema import experiments

if TYPE_CHECKING:
    from ._store import Store


def record_stop(store: Store, exp_id: int, is_alive: Callable[[str], bool]) -> bool:
    """Mark the experiment stopped by a user, unless a live controller holds it (one the
    stop did not reach: a `katib run`, another program): False then, and nothing written."""

    def mark(conn: Connection) -> bool:
        row = conn.execute(sa.select(experiments.c.owner).where(experiments.c.id == exp_id).with_for_update()).first()
        if row is None:
            raise NotFoundError(f"experiment #{exp_id} not found")
        if row.owner and is_alive(row.owner):
            return False
        # Only if the owner is still the one just read (SQLite's read takes no row lock).
        held = experiments.c.owner.is_(None) if row.owner is None else experiments.c.owner == row.owner
        return bool(conn.execute(experiments.update().where(experiments.c.id == exp_id, held)
                                 .values(stopped_at=time.time())).rowcount)

    return store._retry(mark)
