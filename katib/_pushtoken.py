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
from pathlib import Path

PREFIX = "katib-push."


class PushTokens:
    """Makes and checks per-trial push tokens under one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a push-token secret needs at least 16 bytes")
        self._secret = secret

    @classmethod
    def load(cls, path: Path) -> PushTokens:
        """The secret in ``path``, made (random, readable by this user only) if there is none."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            return cls(bytes.fromhex(path.read_text().strip()))
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        return cls(bytes.fromhex(path.read_text().strip()))

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
