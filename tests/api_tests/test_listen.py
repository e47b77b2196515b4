"""Where ``katib server`` and ``katib ui`` listen: on loopback they hold both families'
address (127.0.0.1 and ::1) on their port, so a client that resolves ``localhost`` to ::1
reaches them and not a program that took [::1]:PORT first (a tenant's trial shares the
host's network: it used to catch other users' bearer tokens so)."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys

import pytest

from katib.cli._server import listening_sockets
from katib.errors import KatibError
from tests.api_tests.test_isolation import CliServer, _free_port


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")


def _squat(host: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.bind((host, port))
    s.listen()
    return s


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_both_families_on_one_port(host):
    """Loopback, and all addresses (where the twin, ``::``, is IPv6 only: dual-stack, it
    overlapped 0.0.0.0 and failed silently, leaving [::1] free)."""
    socks = listening_sockets(host, 0)
    try:
        assert sorted(s.family for s in socks) == sorted([socket.AF_INET, socket.AF_INET6])
        port = socks[0].getsockname()[1]
        assert {s.getsockname()[1] for s in socks} == {port}
        with pytest.raises(OSError) as info:
            _squat("::1", port)
        assert info.value.errno == errno.EADDRINUSE
    finally:
        for s in socks:
            s.close()


def test_a_twin_held_by_another_program_is_refused_saying_so():
    port = _free_port()
    squatter = _squat("::1", port)
    try:
        with pytest.raises(KatibError, match=rf"\[::1\]:{port} is held by another program"):
            listening_sockets("localhost", port)
        with socket.socket() as s:  # and 127.0.0.1 was let go again
            s.bind(("127.0.0.1", port))
    finally:
        squatter.close()


def test_katib_server_answers_on_ipv6_loopback_and_refuses_a_squatted_port(tmp_path):
    server = CliServer(tmp_path).start()
    try:
        with pytest.raises(OSError):
            _squat("::1", server.port)
        import httpx

        assert httpx.get(f"http://[::1]:{server.port}/healthz", timeout=10).status_code == 200
        assert httpx.get(f"http://[::1]:{server.port}/api/v1/experiments", timeout=10).status_code == 200
    finally:
        server.stop()
    port = _free_port()
    squatter = _squat("::1", port)
    try:
        done = subprocess.run([sys.executable, "-m", "katib", "server", "--port", str(port), "--db",
                               str(tmp_path / "k2.db"), "--workdir", str(tmp_path)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and f"[::1]:{port} is held by another program" in done.stderr, done.stderr
    finally:
        squatter.close()

