"""What katib makes for itself (the store's folder and file, the runs folder, ConfigMaps,
the push secret) is this user's alone, whatever the umask; what exists is left as it is,
and a push secret someone else could have planted or read is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from katib._pushtoken import PushTokens
from katib.errors import KatibError
from katib.names import private_dirs
from katib.store import Store
from tests.conftest import file_mode as _mode

pytestmark = [pytest.mark.skipif(os.name != "posix", reason="Unix permissions"), pytest.mark.usefixtures("umask_022")]


def _secret(path: Path, mode: int = 0o600) -> Path:
    """A push secret of ours at ``path``, with ``mode``."""
    path.write_text("ab" * 32 + "\n")
    path.chmod(mode)
    return path

def test_a_new_store_folder_is_0700_and_its_file_0600(tmp_path):
    tmp_path.chmod(0o755)
    Store(str(tmp_path / "a" / "b" / "katib.db")).close()
    assert _mode(tmp_path / "a") == 0o700
    assert _mode(tmp_path / "a" / "b") == 0o700
    assert _mode(tmp_path / "a" / "b" / "katib.db") == 0o600
    assert _mode(tmp_path) == 0o755  # the folder the user chose is left as it is


def test_an_existing_store_file_and_folder_are_left_as_they_are(tmp_path):
    tmp_path.chmod(0o755)
    db = tmp_path / "katib.db"
    Store(str(db)).close()
    db.chmod(0o640)
    Store(str(db)).close()
    assert _mode(db) == 0o640
    assert _mode(tmp_path) == 0o755


def test_private_dirs_makes_only_the_missing_folders_private(tmp_path):
    tmp_path.chmod(0o755)
    (tmp_path / "kept").mkdir(mode=0o755)
    private_dirs(tmp_path / "kept" / "runs" / "ns")
    assert _mode(tmp_path / "kept") == 0o755
    assert _mode(tmp_path / "kept" / "runs") == _mode(tmp_path / "kept" / "runs" / "ns") == 0o700
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):
        private_dirs(tmp_path / "file")


def test_the_sandbox_and_the_configmaps_api_make_configmaps_private(tmp_path):
    from types import SimpleNamespace

    from api import _configmaps

    state = SimpleNamespace(runs_root=tmp_path / "store" / "runs")
    _configmaps.create(state, "team-a", {"metadata": {"name": "tpl"}, "data": {"k": "v"}})  # type: ignore[arg-type]
    assert _mode(tmp_path / "store") == _mode(tmp_path / "store" / "configmaps") == 0o700
    assert _mode(tmp_path / "store" / "configmaps" / "team-a") == 0o700


def test_a_fresh_push_secret_is_0600(tmp_path):
    secret = tmp_path / "new" / "push-secret"
    tokens = PushTokens.load(secret)
    assert _mode(secret) == 0o600
    assert _mode(secret.parent) == 0o700
    again = PushTokens.load(secret)  # the same secret on a restart
    assert again.token("ns", "t") == tokens.token("ns", "t")


@pytest.mark.parametrize("mode", [0o666, 0o644, 0o620, 0o604])
def test_a_push_secret_others_may_read_or_write_is_refused(tmp_path, mode):
    secret = _secret(tmp_path / "push-secret", mode)
    with pytest.raises(KatibError, match="push-secret at .* readable or writable by others.*chmod 600"):
        PushTokens.load(secret)


def test_a_symlinked_push_secret_is_refused(tmp_path):
    real = _secret(tmp_path / "real")
    (tmp_path / "push-secret").symlink_to(real)
    with pytest.raises(KatibError, match="symbolic link"):
        PushTokens.load(tmp_path / "push-secret")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(KatibError, match="symbolic link"):
        PushTokens.load(tmp_path / "dangling")
    assert not (tmp_path / "nowhere").exists()


def test_a_push_secret_that_is_not_a_file_is_refused(tmp_path):
    (tmp_path / "push-secret").mkdir(mode=0o700)
    with pytest.raises(KatibError, match="not a regular file"):
        PushTokens.load(tmp_path / "push-secret")


def test_a_push_secret_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    secret = _secret(tmp_path / "push-secret")
    uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: uid + 1)  # as if the file were someone else's
    with pytest.raises(KatibError, match="not owned by you"):
        PushTokens.load(secret)


def test_a_private_push_secret_of_ours_is_used(tmp_path):
    secret = _secret(tmp_path / "push-secret")
    assert PushTokens.load(secret).token("ns", "t") == PushTokens(bytes.fromhex("ab" * 32)).token("ns", "t")


@pytest.mark.parametrize(("text", "held"), [("", 0), ("00ff\n", 2)])
def test_an_empty_or_short_push_secret_is_refused_with_the_fix(tmp_path, text, held):
    """A secret too short to sign with was a ValueError's stack trace at the server's start."""
    secret = _secret(tmp_path / "push-secret")
    secret.write_text(text)
    with pytest.raises(KatibError, match=f"push-secret at .* holds {held} bytes, fewer than 16: remove it"):
        PushTokens.load(secret)


def test_a_new_push_secret_is_written_whole_before_it_takes_its_name(tmp_path, monkeypatch):
    """A first start killed between making the file and writing it left an empty secret
    that every later start refused: the secret is now written beside its name and linked
    into place, so a start killed halfway leaves nothing under the name."""
    import os

    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "link", killed)
    with pytest.raises(KeyboardInterrupt):
        PushTokens.load(tmp_path / "push-secret")
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    assert PushTokens.load(tmp_path / "push-secret") and os.listdir(tmp_path) == ["push-secret"]


def test_a_push_secret_is_made_on_a_file_system_without_hard_links(tmp_path, monkeypatch):
    import errno
    import os

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    tokens = PushTokens.load(tmp_path / "push-secret")
    assert os.listdir(tmp_path) == ["push-secret"] and _mode(tmp_path / "push-secret") == 0o600
    assert PushTokens.load(tmp_path / "push-secret").token("ns", "t") == tokens.token("ns", "t")
