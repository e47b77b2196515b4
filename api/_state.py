"""What every route needs: the store, the experiment manager and the settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from katib.controller import AskTell, ExperimentManager
from katib.store import Store, UserStore


@dataclass
class ServerState:
    store: Store
    manager: ExperimentManager
    workdir: Path
    users: UserStore | None = None  # None: authentication is off
    ask_tell: AskTell | None = None
    executor: str = "local"  # where trials run: local, ray or kubernetes

    def __post_init__(self) -> None:
        if self.ask_tell is None:
            self.ask_tell = AskTell(self.store)

    @property
    def runs_root(self) -> Path:
        return self.manager.runs_root


def get_state(request: Request) -> ServerState:
    return request.app.state.katib  # type: ignore[no-any-return]
