"""What every route needs: the store, the experiment manager and the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request

from katib.controller import AskTell, ExperimentManager
from katib.store import Store, UserStore


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on what one request may cost (docs/security.md lists them)."""

    streams_per_client: int = 8  # open event streams per client address (or user, with --auth)
    streams_total: int = 256
    log_bytes: int = 1 << 20  # the most of a log one answer returns (its end)
    page: int = 10_000  # the most trials one page of …/trials holds


@dataclass
class ServerState:
    store: Store
    manager: ExperimentManager
    workdir: Path
    users: UserStore | None = None  # None: authentication is off
    ask_tell: AskTell | None = None
    executor: str = "local"  # where trials run: local, ray or kubernetes
    limits: ServerLimits = field(default_factory=ServerLimits)
    streams: dict[str, int] = field(default_factory=dict)  # open event streams by client

    def __post_init__(self) -> None:
        if self.ask_tell is None:
            self.ask_tell = AskTell(self.store)

    @property
    def runs_root(self) -> Path:
        return self.manager.runs_root


def get_state(request: Request) -> ServerState:
    return request.app.state.katib  # type: ignore[no-any-return]
