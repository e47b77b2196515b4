"""What runs on a Ray node for the Ray executor (``trials._ray``): the actor that starts a
trial's processes there and keeps, for the driver to fetch, what they leave on that node.

A trial is one or two processes: its primary container's command and, for Katib's
``Custom`` collector, the collector container's command beside it (as in Katib's pod, the
trial ends when both have exited, and one that fails ends the other). The files the trial
writes for katib live in a folder of the actor's own, their paths rewritten in the
commands and environments: the pushed metrics, a ``File`` collector's file, a
``TensorFlowEvent`` collector's directory (every file under it). For ``PrometheusMetric``
the actor scrapes the trial's endpoint where the trial runs (its ``localhost``) and keeps
each changed scrape as a JSON line, ``{"time": …, "text": …}``. ``read`` answers the new
bytes of each output and file since the driver's offsets, which the driver appends to the
same files in the trial's folder on its machine, so the collectors read them there.

The class is made inside ``runner_class`` so Ray ships it by value: a node needs Ray and
the standard library, not katib.
"""

from __future__ import annotations

import time
from typing import Any

CHUNK = 8 << 20  # the most bytes of one output or file that one read brings back


def runner_class() -> Any:
    import ray

    @ray.remote(max_concurrency=4)  # type: ignore[call-overload]
    class TrialRunner:
        """Runs one trial's processes on its node; keeps their output for the driver."""

        def __init__(self) -> None:
            import threading

            self.procs: list[Any] = []
            self.buffers: dict[str, bytearray] = {}
            self.files: dict[str, str] = {}
            self.trees: set[str] = set()
            self.first_failure: int | None = None
            self.ending = False
            self.grace = 0.0
            self.lock = threading.Lock()

        def start(self, members: list[dict[str, Any]], files: dict[str, str], trees: list[str],
                  scrape: dict[str, Any] | None, loopback: str | None, driver_node: str | None,
                  grace: float) -> dict[str, Any]:
            """Start ``members`` (each ``{"log", "argv", "env", "cwd", "gpus"}``); ``files``:
            key → the driver's path of a file or directory the trial writes, a folder here;
            ``trees``: the keys that are directories whose every file goes back; ``scrape``:
            ``{"url", "every"}``; ``loopback``: an address on the driver's loopback a member
            reports to, refused on another node. Returns the node, pid and GPUs, or an error."""
            import os
            import socket
            import subprocess
            import tempfile
            import threading

            node = ray.get_runtime_context().get_node_id()
            if loopback is not None and node != driver_node:
                return {"error": f"the Custom metrics collector reports to {loopback}, the loopback of the katib "
                                 f"that runs the experiment, which this trial's Ray node "
                                 f"({ray.util.get_node_ip_address()}) cannot reach: serve Katib's gRPC API where "
                                 "the Ray workers reach it (katib run --grpc-port PORT --grpc-host 0.0.0.0 "
                                 "--db-manager-address HOST, or katib server --grpc-port with --db-manager-address)"}
            # An actor is reused: forget the last trial.
            self.procs, self.first_failure, self.ending, self.grace = [], None, False, grace
            self.buffers = {m["log"]: bytearray() for m in members}
            workdir = tempfile.mkdtemp(prefix="katib-trial-")
            self.files = {key: os.path.join(workdir, key) for key in files}
            self.trees = set(trees)
            # The driver's paths, the longest first, replaced by this node's.
            here = sorted(((original, self.files[key]) for key, original in files.items()),
                          key=lambda pair: len(pair[0]), reverse=True)

            def local(text: str) -> str:
                for original, path in here:
                    text = text.replace(original, path)
                return text

            every = [str(g) for g in ray.get_gpu_ids()]
            gpus = every
            for m in members:
                env = {k: local(v) for k, v in m["env"].items()}
                mine, gpus = gpus[:m["gpus"]], gpus[m["gpus"]:]  # each process its own GPUs, and only those
                # Always set: a process given no GPU sees none (Ray leaves the variable unset for an
                # actor that asked for none, and CUDA then shows every GPU of the node).
                env["CUDA_VISIBLE_DEVICES"] = ",".join(mine)
                if "HOME" in env and not os.path.isdir(env["HOME"]):
                    env["HOME"] = workdir  # a clean environment's HOME (the trial dir) is on the driver
                argv = [local(a) for a in m["argv"]]
                try:
                    proc = subprocess.Popen(argv, env=env, cwd=m["cwd"] if os.path.isdir(m["cwd"]) else workdir,
                                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, start_new_session=True)
                except OSError as exc:
                    self.stop(0)
                    return {"error": f"cannot start {argv[0]!r}: {exc.strerror or exc}"}
                self.procs.append(proc)
                threading.Thread(target=self._pump, args=(proc, self.buffers[m["log"]]), daemon=True).start()
            if scrape is not None:
                self.files["scrape"] = os.path.join(workdir, "scrape")
                threading.Thread(target=self._scrape, args=(scrape["url"], self.files["scrape"], list(self.procs),
                                                            scrape["every"]), daemon=True).start()
            return {"node": socket.gethostname(), "pid": self.procs[0].pid, "gpus": every[:members[0]["gpus"]],
                    "workdir": workdir}

        @staticmethod
        def cleanup(workdir: str) -> None:
            """Remove an ended trial's folder on this node, once the driver has read it all.
            By its path: the actor may already run the next trial, in a folder of its own."""
            import os
            import shutil
            import tempfile

            if os.path.basename(workdir).startswith("katib-trial-") and \
                    os.path.dirname(workdir) == tempfile.gettempdir():
                shutil.rmtree(workdir, ignore_errors=True)

        @staticmethod
        def _pump(proc: Any, buffer: bytearray) -> None:
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                buffer += chunk

        @staticmethod
        def _scrape(url: str, path: str, procs: list[Any], every: float) -> None:
            """Scrape ``url`` while the trial runs; keep each scrape that differs from the last."""
            import json
            import urllib.request

            # HTTP(S) only, no redirect followed: urlopen would read file:, ftp: and data: URLs.
            opener = urllib.request.OpenerDirector()
            for handler in (urllib.request.HTTPHandler(), urllib.request.HTTPSHandler()):
                opener.add_handler(handler)
            last = None
            while url.startswith(("http://", "https://")):
                running = any(p.poll() is None for p in procs)
                try:
                    with opener.open(url, timeout=2) as reply:
                        text = reply.read(1 << 20).decode("utf-8", errors="replace") if reply.status == 200 else None
                except (OSError, ValueError):
                    text = None  # not serving yet, or gone
                if text is not None and text != last:
                    with open(path, "a") as f:
                        f.write(json.dumps({"time": time.time(), "text": text}) + "\n")
                    last = text
                if not running:
                    return
                time.sleep(every)

        def _code(self) -> int | None:
            """The trial's exit code once every process has exited: the first failure's, else 0.
            A process that fails ends the others (a pod's containers, a job's replicas)."""
            with self.lock:
                codes = [p.poll() for p in self.procs]
                if self.first_failure is None:
                    self.first_failure = next((c for c in codes if c), None)
                if self.first_failure is not None and not self.ending and any(c is None for c in codes):
                    self.ending = True
                    import threading

                    threading.Thread(target=self.stop, args=(self.grace,), daemon=True).start()
            if all(c is not None for c in codes):
                return self.first_failure if self.first_failure is not None else 0
            return None

        def read(self, offsets: dict[str, int]) -> tuple[dict[str, bytes], int | None]:
            """New bytes (at most ``CHUNK`` each) of each output and of each file since
            ``offsets``, a directory's files as ``key/relative path``; and the exit code."""
            import os

            code = self._code()
            out = {}
            for key, buffer in self.buffers.items():
                at = offsets.get(key, 0)
                out[key] = bytes(buffer[at:at + CHUNK])
            for key, path in self.files.items():
                if key not in self.trees:
                    out[key] = self._tail(path, offsets.get(key, 0))
                    continue
                for root, dirs, names in os.walk(path):
                    dirs.sort()
                    for name in sorted(names):
                        full = os.path.join(root, name)
                        sub = f"{key}/{os.path.relpath(full, path)}"
                        out[sub] = self._tail(full, offsets.get(sub, 0))
            return out, code

        @staticmethod
        def _tail(path: str, offset: int) -> bytes:
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    return f.read(CHUNK)
            except OSError:
                return b""

        def wait(self) -> int:
            import subprocess

            while True:
                code = self._code()
                if code is not None:
                    return code
                try:
                    next(p for p in self.procs if p.poll() is None).wait(timeout=0.1)
                except (StopIteration, subprocess.TimeoutExpired):
                    pass

        def stop(self, grace: float) -> None:
            """End every process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
            import os
            import signal

            procs = [p for p in self.procs if p.poll() is None]
            for sig, pause in ((signal.SIGTERM, grace), (signal.SIGKILL, 0)):
                for p in procs:
                    try:
                        os.killpg(p.pid, sig)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + pause
                while time.monotonic() < deadline and any(p.poll() is None for p in procs):
                    time.sleep(0.05)
                procs = [p for p in procs if p.poll() is None]
                if not procs:
                    return

    return TrialRunner

