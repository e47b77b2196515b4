"""A SQLite store given as a URL (``--db sqlite:////srv/k.db``, ``KATIB_DB``) is as
private as one given as a path: new folders 0700, a new database 0600, and SQLite's side
files (-wal, -shm) with it; what exists is left as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from katib.store import Store
from tests.conftest import REPO
from tests.conftest import file_mode as _mode

pytestmark = [pytest.mark.skipif(os.name != "posix", reason="Unix permissions"), pytest.mark.usefixtures("umask_022")]


def _write(store: Store) -> None:
    store.create_experiment("default", "e", {"spec": {}}, {"conditions": []}, "/tmp")


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+pysqlite"])
def test_a_new_store_from_a_url_is_private_with_its_side_files(tmp_path, scheme):
    tmp_path.chmod(0o755)
    db = tmp_path / "a" / "b" / "katib.db"
    store = Store(f"{scheme}:///{db}")
    try:
        _write(store)
        assert _mode(tmp_path / "a") == _mode(tmp_path / "a" / "b") == 0o700
        assert _mode(db) == 0o600
        sides = [Path(f"{db}{suffix}") for suffix in ("-wal", "-shm", "-journal")]
        assert any(p.exists() for p in sides)  # WAL mode: SQLite made them while the store is open
        for p in sides:
            if p.exists():
                assert _mode(p) == 0o600, p
    finally:
        store.close()
    assert _mode(tmp_path) == 0o755  # the folder the user chose is left as it is


def test_a_new_file_in_an_existing_folder_is_0600(tmp_path):
    tmp_path.chmod(0o755)
    db = tmp_path / "katib.db"
    store = Store(f"sqlite:///{db}")
    try:
        _write(store)
        assert _mode(db) == 0o600
        assert _mode(Path(f"{db}-wal")) == _mode(Path(f"{db}-shm")) == 0o600
    finally:
        store.close()
    assert _mode(tmp_path) == 0o755


def test_katib_db_url_in_the_environment_is_private(tmp_path, monkeypatch):
    db = tmp_path / "env" / "katib.db"
    monkeypatch.setenv("KATIB_DB", f"sqlite:///{db}")
    Store().close()
    assert _mode(db.parent) == 0o700 and _mode(db) == 0o600


def test_a_relative_url_is_private_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Store("sqlite:///rel/katib.db").close()
    assert _mode(tmp_path / "rel") == 0o700 and _mode(tmp_path / "rel" / "katib.db") == 0o600


def test_an_existing_file_and_folder_named_by_url_are_left_as_they_are(tmp_path):
    tmp_path.chmod(0o755)
    db = tmp_path / "katib.db"
    Store(str(db)).close()
    db.chmod(0o640)
    Store(f"sqlite:///{db}").close()
    assert _mode(db) == 0o640 and _mode(tmp_path) == 0o755


def test_in_memory_urls_make_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite://", "sqlite:///:memory:"):
        Store(url).close()
    assert list(tmp_path.iterdir()) == []


def test_the_cli_db_option_as_a_url_makes_a_private_store(tmp_path):
    db = tmp_path / "cli" / "k.db"
    r = subprocess.run([sys.executable, "-c", "import os, sys; os.umask(0o022); from katib.cli import app; app(sys.argv[1:])",
                        "user", "list", "--db", f"sqlite:///{db}"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _mode(db.parent) == 0o700 and _mode(db) == 0o600
