"""A trial gets a session keyring of its own: the kernel's keyrings are not files, and no
sandbox namespace replaces them, so every trial inherited the server's (a systemd service
has one) and one tenant's trial read, planted and deleted another's keys."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import trials

WRAP = Path(trials.__file__).with_name("_wrap.py")
KEYCTL = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)

# Run as a process of its own (pytest's keyrings stay as they are): join a session
# keyring, as a service's server has, put a key in it, then start a trial through the
# wrapper, in both of its forms (a wrapper of its own, and one forked by the spawner).
DRIVER = textwrap.dedent("""
    import ctypes, marshal, os, socket, subprocess, sys, time
    libc = ctypes.CDLL(None, use_errno=True)
    L = ctypes.c_long
    NR = {nr}
    assert libc.syscall(L(NR), L(1), b"katib-server") > 0, ctypes.get_errno()  # KEYCTL_JOIN_SESSION_KEYRING
    assert libc.syscall(L(248), b"user", b"tenant-b", b"hunter2", ctypes.c_size_t(7), L(-3)) > 0  # add_key to @s
    trial = [sys.executable, "-c", {trial!r}]
    wrap, out = sys.argv[1], sys.argv[2]
    status_r, status_w = os.pipe()
    go_r, go_w = os.pipe()
    os.set_inheritable(status_w, True); os.set_inheritable(go_r, True)
    with open(out + "/own.log", "wb") as log:
        p = subprocess.Popen([sys.executable, "-I", "-S", wrap, out + "/own.exit", str(status_w), str(go_r), "--", *trial],
                             stdout=log, stderr=subprocess.STDOUT, pass_fds=(status_w, go_r))
    os.close(status_w); os.close(go_r); os.write(go_w, b"1"); os.close(go_w)
    assert p.wait(30) == 0, open(out + "/own.log").read()
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    spawner = subprocess.Popen([sys.executable, "-I", "-S", wrap, "--serve", str(b.fileno())], pass_fds=(b.fileno(),))
    b.close()
    status_r, status_w = os.pipe()
    go_r, go_w = os.pipe()
    log = os.open(out + "/forked.log", os.O_WRONLY | os.O_CREAT, 0o600)
    payload = marshal.dumps((trial, dict(os.environ), "", out + "/forked.exit"))
    socket.send_fds(a, [str(len(payload)).encode()], [log, status_w, go_r])
    a.send(payload)
    pid = int(a.recv(64))
    for fd in (log, status_w, go_r):
        os.close(fd)
    os.write(go_w, b"1"); os.close(go_w)
    deadline = time.time() + 30
    while not os.path.exists(out + "/forked.exit"):
        assert time.time() < deadline
        time.sleep(0.05)
    a.close(); spawner.wait(10)
""")

TRIAL = textwrap.dedent("""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    L = ctypes.c_long
    NR = {nr}
    buf = ctypes.create_string_buffer(4096)
    n = libc.syscall(L(NR), L(11), L(-3), buf, L(4096))  # KEYCTL_READ of the session keyring: its keys' ids
    keys = [int.from_bytes(buf.raw[i:i + 4], "little") for i in range(0, max(n, 0), 4)]
    found = []
    for k in keys:
        d = ctypes.create_string_buffer(256)
        libc.syscall(L(NR), L(6), L(k), d, L(256))  # KEYCTL_DESCRIBE
        found.append(d.value.decode())
    print("keys", found)
""")


@pytest.mark.skipif(KEYCTL is None, reason="keyctl's number is known here for x86_64 and aarch64 only")
def test_a_trial_does_not_inherit_the_servers_session_keyring(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(nr=KEYCTL, trial=TRIAL.format(nr=KEYCTL)))
    r = subprocess.run([sys.executable, str(driver), str(WRAP), str(tmp_path)], capture_output=True, text=True, timeout=90)
    if r.returncode != 0 and "AssertionError" in r.stderr and "KEYCTL_JOIN" in r.stderr:
        pytest.skip(f"keyrings are not available here: {r.stderr[-300:]}")
    assert r.returncode == 0, r.stderr[-2000:]
    for form in ("own", "forked"):
        log = (tmp_path / f"{form}.log").read_text()
        assert "keys []" in log, (form, log)  # tenant-b's key was listed, and readable
        assert (tmp_path / f"{form}.exit").read_text().strip() == "0"
