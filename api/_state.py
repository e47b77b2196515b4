"""What every route needs: the store, the experiment manager and the settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from fastapi import Request

from katib._push import PUSH_BYTES, PUSH_BYTES_ENV
from katib._pushtoken import PushTokens
from katib.controller import AskTell, ExperimentManager
from katib.store import Store, UserStore

from ._listmemory import ListMemory


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on what one request may cost (docs/security.md lists them); an operator
    changes each with its environment variable (``KATIB_MAX_LOG_BYTES=8388608``)."""

    streams_per_client: int = field(default=8, metadata={"env": "KATIB_MAX_STREAMS_PER_CLIENT"})
    """Open event streams per client address (per user with --auth)."""
    streams_total: int = field(default=256, metadata={"env": "KATIB_MAX_STREAMS"})
    log_bytes: int = field(default=1 << 20, metadata={"env": "KATIB_MAX_LOG_BYTES"})
    """The most of a trial's log one answer returns (its end)."""
    page: int = field(default=10_000, metadata={"env": "KATIB_MAX_PAGE"})
    """The most items one page of a list holds (…/trials, the experiment lists, a trial's observations)."""
    list_bytes: int = field(default=16 << 20, metadata={"env": "KATIB_MAX_LIST_BYTES"})
    """About the most bytes of experiments one page of an experiment list reads and holds:
    a page ends before the experiment that would pass it (though it holds at least one)."""
    push_bytes: int = field(default=PUSH_BYTES, metadata={"env": PUSH_BYTES_ENV})
    """The most bytes of metrics one trial may push (POST …/trials/{trial}/metrics) in all:
    its push file's size (about a million records); past it a push is a 413 and not kept."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerLimits:
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            text = environ.get(f.metadata["env"])
            if text is not None:
                if not text.strip().isdigit() or int(text) <= 0:
                    raise ValueError(f"{f.metadata['env']} must be a positive integer (got {text!r})")
                values[f.name] = int(text)
        return cls(**values)


@dataclass
class ServerState:
    store: Store
    manager: ExperimentManager
    workdir: Path
    users: UserStore | None = None  # None: authentication is off
    push_tokens: PushTokens | None = None  # checks the per-trial tokens pods push metrics with
    ask_tell: AskTell | None = None
    executor: str = "local"  # where trials run: local, ray or kubernetes
    read_only: bool = False  # katib ui: serves reads, runs and changes nothing
    limits: ServerLimits = field(default_factory=ServerLimits)
    streams: dict[str, int] = field(default_factory=dict)  # open event streams by client
    lists: ListMemory = field(default_factory=ListMemory)  # the lists a watch may start from

    def __post_init__(self) -> None:
        if self.ask_tell is None:
            self.ask_tell = AskTell(self.store)

    def open_stream(self, client: str) -> bool:
        """Take one of the open streams (event streams and watches) for ``client``: False,
        taking nothing, when it has its ``streams_per_client`` or the server its
        ``streams_total``. Give it back with ``close_stream``."""
        if self.streams.get(client, 0) >= self.limits.streams_per_client or sum(self.streams.values()) >= self.limits.streams_total:
            return False
        self.streams[client] = self.streams.get(client, 0) + 1
        return True

    def close_stream(self, client: str) -> None:
        self.streams[client] -= 1
        if not self.streams[client]:
            del self.streams[client]

    @property
    def runs_root(self) -> Path:
        return self.manager.runs_root


def get_state(request: Request) -> ServerState:
    return request.app.state.katib  # type: ignore[no-any-return]
