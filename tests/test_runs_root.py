"""One rule for where the runs folder is, whoever opens the store: the Python client, the
CLI (and the server it starts) and a bare Controller must find each other's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from katib.names import runs_root


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "postgresql+psycopg://u@h/db"])
def test_a_store_without_a_folder_uses_katib_home(url, monkeypatch, tmp_path):
    monkeypatch.setenv("KATIB_HOME", str(tmp_path / "home"))
    assert runs_root(url) == tmp_path / "home" / "runs"


def test_a_sqlite_file_keeps_its_runs_beside_it(tmp_path):
    assert runs_root(f"sqlite:///{tmp_path}/katib.db") == tmp_path / "runs"


def test_the_client_the_cli_and_the_controller_agree(monkeypatch, tmp_path):
    from katib.cli._app import _runs_root
    from katib.client import _Embedded
    from katib.controller import Controller

    monkeypatch.setenv("KATIB_HOME", str(tmp_path / "home"))
    embedded = _Embedded("sqlite:///:memory:", tmp_path, 0.1)
    try:
        # the client used ./runs for an in-memory store and ignored KATIB_HOME
        expected = tmp_path / "home" / "runs"
        assert embedded.manager.runs_root == expected
        assert _runs_root(embedded.store) == expected
        assert Controller(embedded.store).runs_root == expected
    finally:
        embedded.store.close()
    on_disk = _Embedded(str(tmp_path / "k.db"), tmp_path, 0.1)
    try:
        assert embedded.manager.runs_root != on_disk.manager.runs_root == _runs_root(on_disk.store) == tmp_path / "runs"
        assert Path(on_disk.store.url.split("///", 1)[1]).parent == tmp_path
    finally:
        on_disk.store.close()
