"""Push tokens: the one credential a trial that runs elsewhere (a pod) holds.

A pod's ``katib.report_metrics`` posts to ``katib server``; under ``--auth`` it needs a
bearer token. It gets one made for its own trial only: an HMAC-SHA256, under the server's
secret, of the trial's namespace and name. The server accepts it on that trial's push
endpoint and nowhere else (not as a user, not for another trial), and takes pushes only
while the trial is Created or Running. Nothing is stored per token: the server recomputes
it. The secret is a file beside the runs folder, made on the server's first start (0600),
so tokens stay good across restarts (pods outlive a restart); every katib server of one
store must share it.

>>> tokens = PushTokens(b"0" * 32)
>>> token = tokens.token("team-a", "exp-1-abc")
>>> tokens.valid(token, "team-a", "exp-1-abc"), tokens.valid(token, "team-b", "exp-1-abc")
(True, False)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from katib.errors import KatibError
from katib.names import private_dirs

PREFIX = "katib-push."
MIN_SECRET = 16  # bytes


def _read_secret(path: Path) -> bytes:
    """The secret in ``path``, refused unless it is a regular file (not a link) owned by
    this user, with no group or other permissions."""
    fix = f"remove it (the server makes a new one; pods' tokens change) or, if it is yours, chmod 600 {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if os.path.islink(path):
            raise KatibError(f"push-secret at {path} is a symbolic link: {fix}") from None
        raise KatibError(f"cannot read the push-secret at {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KatibError(f"push-secret at {path} is not a regular file: {fix}")
        if st.st_uid != os.getuid():
            raise KatibError(f"push-secret at {path} is not owned by you (uid {st.st_uid}): {fix}")
        if st.st_mode & 0o077:
            raise KatibError(f"push-secret at {path} is readable or writable by others "
                             f"(mode {stat.S_IMODE(st.st_mode):04o}): {fix}")
        with os.fdopen(os.dup(fd), "rb") as f:
            text = f.read().decode(errors="replace").strip()
    finally:
        os.close(fd)
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise KatibError(f"push-secret at {path} does not hold a hex secret: {fix}") from None
    if len(secret) < MIN_SECRET:
        raise KatibError(f"push-secret at {path} holds {len(secret)} bytes, fewer than {MIN_SECRET}: {fix}")
    return secret


def _create_in_place(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")


class PushTokens:
    """Makes and checks per-trial push tokens under one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET:
            raise ValueError(f"a push-token secret needs at least {MIN_SECRET} bytes")
        self._secret = secret

    @classmethod
    def load(cls, path: Path) -> PushTokens:
        """The secret in ``path``, made (random, 0600) if there is none. An existing one is
        used only if it is a regular file of this user's that no one else may read or write:
        a secret another user planted or can read would let them forge tokens."""
        private_dirs(path.parent)
        if not os.path.lexists(path):
            # Written whole beside it, then linked into place (which fails if another start
            # made one first): a start killed halfway leaves no empty secret behind.
            draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_hex(32) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                try:
                    os.link(draft, path)
                except FileExistsError:
                    pass
                except OSError:  # a file system without hard links: an exclusive create, written in place
                    _create_in_place(path)
            finally:
                os.unlink(draft)
        return cls(_read_secret(path))

    def token(self, namespace: str, trial: str) -> str:
        """The token of trial ``namespace/trial``."""
        mac = hmac.new(self._secret, f"push\0{namespace}\0{trial}".encode(), hashlib.sha256).digest()
        return PREFIX + base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def valid(self, token: str, namespace: str, trial: str) -> bool:
        """Whether ``token`` is trial ``namespace/trial``'s (in constant time)."""
        return hmac.compare_digest(token.encode(), self.token(namespace, trial).encode())

    @staticmethod
    def looks_like(token: str) -> bool:
        """Whether ``token`` is a push token (never a user's API token)."""
        return token.startswith(PREFIX)


__all__ = ["PREFIX", "PushTokens"]
