"""The local executor's fence: each trial runs in a bubblewrap (``bwrap``) sandbox.

What a trial sees, in the order the mounts are made (a later one covers an earlier one):

- the system, read-only (``/``), with a fresh ``/dev`` and ``/proc`` (its kernel
  settings read-only, what tells of the host's keys and memory masked, as container
  runtimes do: ``PROC_READ_ONLY``, ``PROC_MASKED``); the GPUs' device nodes only when the
  trial was given GPUs;
- nothing of ``/home``, ``/root``, ``/run``, ``/srv``, ``/mnt``, ``/media``, the server's
  ``HOME``, ``/tmp`` and ``/var/tmp`` (empty folders), but the Python running katib and
  katib's own code (read-only), so ``python3`` in a command is the same environment;
- its experiment's working folder, read-only;
- nothing of the store (the SQLite file and its ``-wal``/``-shm``/``-journal``) nor of any
  other file the server keeps to itself (``hidden``), nor of what it keeps beside the runs
  folder (its push-token secret, every namespace's ConfigMaps);
- nothing of the runs folder (every namespace's trials) but its own trial folder and
  checkpoint folder, read-write; in its folder the files the server reads or writes
  (``pid``, the logs, the exit records) cannot be replaced, so a link planted there
  cannot turn the server's own reads and writes on another tenant's files;
- a private ``/tmp`` and ``/dev/shm`` (memory, at most the trial's memory limit).

It has its own PID, IPC and UTS namespaces (it cannot signal or even see another
tenant's processes), no capabilities, no use of the kernel's keyrings (``trials._seccomp``),
no way to gain privileges (``no_new_privs``),
no further user namespaces where the kernel allows, and the network as it is (a trial
may push its metrics over loopback). Its memory limit (``limits``, else ``requests``) is
its address space's (``RLIMIT_AS`` through ``prlimit``), so allocating past it fails in
the trial, not in the machine; a trial with GPUs gets none (CUDA reserves address space
far beyond memory). CPU shares are not fenced: ``RLIMIT_CPU`` counts CPU seconds, the
deadline already bounds them.

Stopping a trial signals its process group: ``bwrap`` itself ignores ``SIGTERM`` (the
trial gets it and its grace period), and ``SIGKILL`` of ``bwrap`` ends the whole PID
namespace, whatever the trial forked or however it left the group. A trial killed by a
signal N is reported as exit code 128 + N, as a shell reports it.

>>> sandbox = Sandbox(runs_root=Path("/srv/katib/runs"), hidden=[Path("/srv/katib/katib.db")])  # doctest: +SKIP
>>> problem()  # None: bwrap works here  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from katib.names import ARTIFACTS, private_dirs

from . import _seccomp as seccomp
from ._executor import LaunchError, TrialJob

# Folders that hold people's and services' data rather than the system: hidden.
MASKED = ("/home", "/root", "/run", "/srv", "/mnt", "/media", "/tmp", "/var/tmp")
# What katib server keeps beside the runs folder, every namespace's: its push-token secret,
# the sandbox's system-call filter and its ConfigMaps (trial templates). Hidden from every
# trial, whatever the caller passes.
FILES_BESIDE_RUNS = ("push-secret", "seccomp.bpf")
FOLDERS_BESIDE_RUNS = ("configmaps",)
# The variables glibc's loader and libc act on before a program's own code runs (glibc's
# unsecvars.h, what it ignores in a setuid program), by name and by prefix. Outside the
# sandbox (the wrapper, ``env`` and ``bwrap`` run there) a trial's LD_PRELOAD would run its
# code unfenced: these are set only inside, by the inner ``env``.
LOADER_VARIABLES = frozenset({
    "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH", "MALLOC_TRACE",
    "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZDIR",
})
LOADER_PREFIXES = ("LD_", "MALLOC_")
# What container runtimes fence in a fresh /proc (runc's defaults): the kernel's settings
# and triggers read-only, and what tells of the host's keys, memory and timers masked. The
# trial runs with no capabilities, but a file that checks only its writer's uid (most of
# /proc/sys, /proc/sysrq-trigger) is written by a trial of a server run as root, whose
# uid is root's outside too: kernel.core_pattern is a command the host runs as root.
PROC_READ_ONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
PROC_MASKED = ("/proc/kcore", "/proc/keys", "/proc/key-users", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
               "/proc/sched_debug", "/proc/acpi", "/proc/scsi", "/sys/firmware")
# How each namespace is made, most isolated first; the first that runs here is used.
_USERNS_FLAGS = (("--unshare-user", "--disable-userns"), ("--unshare-user",), ())


@functools.lru_cache(maxsize=1)
def _proc_fences() -> tuple[str, ...]:
    """``PROC_READ_ONLY`` and ``PROC_MASKED`` as bwrap's arguments, for what this kernel has."""
    out: list[str] = []
    for path in PROC_READ_ONLY:
        if os.path.exists(path):
            out += ["--ro-bind", path, path]
    for path in PROC_MASKED:
        if os.path.isdir(path):
            out += ["--tmpfs", path, "--remount-ro", path]
        elif os.path.exists(path):
            out += ["--ro-bind", "/dev/null", path]
    return tuple(out)


def store_files(db: Path) -> list[Path]:
    """A SQLite store's file, the files SQLite keeps beside it, and the folder of the
    store's locks (``katib.store._locks``)."""
    return [db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal", "-locks"))]


@functools.lru_cache(maxsize=8)
def _probe(bwrap: str) -> tuple[tuple[str, ...] | None, str]:
    """The namespace flags that work with ``bwrap`` here, or None and why none do."""
    found, env, prlimit = _tool(bwrap), _tool("env"), _tool("prlimit")
    if found is None:
        return None, f"{bwrap} (bubblewrap) is not installed: apt-get install bubblewrap"
    if prlimit is None:
        return None, "prlimit (util-linux) is not installed"
    if env is None:
        return None, "env (coreutils) is not installed"
    why = ""
    bpf = seccomp.program()
    if bpf is not None and _tool("sh") is None:
        return None, "sh is not installed"
    for flags in _USERNS_FLAGS:
        read, write = os.pipe()
        try:
            os.write(write, bpf or b"")  # a few hundred bytes: within a pipe's buffer
            os.close(write)
            argv = [env, "--ignore-signal=TERM", found, *flags, "--die-with-parent", "--unshare-pid", "--unshare-ipc",
                    "--unshare-uts", "--cap-drop", "ALL", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                    *(("--seccomp", str(read)) if bpf is not None else ()),
                    "--", env, "--default-signal=TERM", prlimit, "--core=0", "--", "true"]
            result = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                                    pass_fds=(read,))
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"{found} cannot run: {exc}"
        finally:
            os.close(read)
        if result.returncode == 0:
            return flags, ""
        why = why or (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
    return None, f"{found} cannot make a sandbox here ({why}); user namespaces or seccomp filters may be disabled"


def split_env(env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """A trial's environment as (what its launch may run with outside the sandbox, what
    is set only inside it): the loader's variables (``LOADER_VARIABLES``) go inside."""
    outside: dict[str, str] = {}
    inside: dict[str, str] = {}
    for name, value in env.items():
        loader = name in LOADER_VARIABLES or name.startswith(LOADER_PREFIXES)
        (inside if loader else outside)[name] = value
    return outside, inside


def _tool(name: str) -> str | None:
    """A program the sandbox runs, found on the *server's* ``PATH``: never on the trial's,
    which the trial chooses (a folder of its own holding an ``env`` would run unfenced)."""
    found = shutil.which(name, path=os.environ.get("PATH") or os.defpath)
    return os.path.abspath(found) if found else None  # not resolved: a multi-call binary goes by its name


def problem(bwrap: str = "bwrap") -> str | None:
    """Why trials cannot be sandboxed on this machine, or None when they can."""
    flags, why = _probe(bwrap)
    return None if flags is not None else why


def home_folder_problem(folder: Path) -> str:
    """Why a sandboxed trial may not see ``folder`` (read-only) as its working folder: it is,
    or holds, a home folder, whose keys (``~/.ssh``, ``~/.kube``) the sandbox hides. "" when
    it may."""
    for home in dict.fromkeys([Path.home().resolve(), Path("/home"), Path("/root")]):
        if folder == home or folder in home.parents:
            return f"{folder} {'is' if folder == home else 'holds'} {home}, with its keys, which trials would see"
    return ""


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _real(path: Path | str) -> Path:
    return Path(os.path.realpath(path))


class Sandbox:
    """Builds the ``bwrap`` command that runs one trial's process fenced in.

    ``runs_root`` is the folder of every trial's files (all hidden but the trial's own);
    ``hidden`` the files no trial may read (the store's, a secret's): each is covered by
    an empty folder, or by an empty file where its folder must stay visible (a working
    folder that holds the store). ``files`` are secrets kept outside katib's folders (a TLS
    key beside the system's certificates): each is covered alone, by an empty file, at its
    path and at the file a link there leads to, so that its folder stays as it was.
    ``visible`` adds read-only folders a trial needs.
    """

    def __init__(self, runs_root: Path, hidden: Iterable[Path] = (), visible: Iterable[Path] = (),
                 bwrap: str = "bwrap", files: Iterable[Path] = ()) -> None:
        self.runs_root = _real(runs_root)
        beside = [self.runs_root.parent / name for name in (*FILES_BESIDE_RUNS, *FOLDERS_BESIDE_RUNS)]
        self.hidden = list(dict.fromkeys([*(Path(os.path.abspath(p)) for p in hidden), *beside]))
        self.files = list(dict.fromkeys(q for p in files for q in (Path(os.path.abspath(p)), _real(p))))
        self.visible = [_real(p) for p in visible]
        self.bwrap = bwrap

    def problem(self) -> str | None:
        return problem(self.bwrap)

    def _software(self) -> list[Path]:
        """Katib's Python and code, wherever they are (often under a hidden home); katib's
        packages (``katib``, ``trials``…) sit side by side, installed or in a checkout."""
        found = {_real(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
        found.add(_real(Path(__file__).parents[1]))
        return sorted(p for p in found if p.is_dir() and p != Path("/"))

    def command(self, job: TrialJob, argv: Sequence[str], memory: int = 0, gpu: bool = False,
                cwd: Path | None = None, writable_files: Iterable[Path] = (), protected: Iterable[str] = (),
                inside_env: dict[str, str] | None = None, writable_folders: Iterable[Path] = ()) -> list[str]:
        """``argv`` run in the sandbox. ``memory``: the address-space limit in bytes (0:
        none); ``gpu``: the GPUs' device nodes are passed in; ``writable_files``: files
        under the trial folder the trial writes and the server reads (made now, and
        pinned so they stay plain files); ``protected``: names in the trial folder the
        server reads or writes (logs, exit records), which the trial sees as empty files
        it cannot change, remove or replace; ``writable_folders``: as ``writable_files``,
        folders (a TensorFlowEvent collector's); ``inside_env``: variables set only inside
        (``split_env``). The command runs with the other half of ``split_env``: every
        program it names outside the sandbox is an absolute path found on the server's
        ``PATH``."""
        flags, why = _probe(self.bwrap)
        if flags is None:
            raise LaunchError(f"cannot fence the trial in: {why}")
        bwrap, env, prlimit = _tool(self.bwrap), _tool("env"), _tool("prlimit")
        if bwrap is None or env is None or prlimit is None:
            raise LaunchError("cannot fence the trial in: bwrap, env or prlimit is no longer on the server's PATH")
        problem = home_folder_problem(_real(job.workdir))
        if problem:  # an experiment a `katib run` in a home folder made, then resumed by a server
            raise LaunchError(f"the experiment's working folder {problem}: run it from a folder of its own")
        trial_dir = _real(job.trial_dir)
        trial_dir.mkdir(parents=True, exist_ok=True)
        out = [env, "--ignore-signal=TERM", bwrap, *flags, "--die-with-parent", "--unshare-pid", "--unshare-ipc",
               "--unshare-uts", "--cap-drop", "ALL", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
               *_proc_fences()]
        bpf = self._filter()
        if bpf is not None:  # bwrap reads the filter from fd 3, which a shell opens and execs bwrap with
            sh = _tool("sh")
            if sh is None:
                raise LaunchError("cannot fence the trial in: sh is no longer on the server's PATH")
            out = [sh, "-c", 'exec "$@" 3<"$0"', str(bpf), *out, "--seccomp", "3"]
        if gpu:
            for node in sorted(glob.glob("/dev/nvidia*")) + sorted(glob.glob("/dev/dri/*")):
                out += ["--dev-bind", node, node]
        size = ["--size", str(memory)] if memory else []
        # Empty folders over what is hidden, made read-only once the mounts inside are made.
        empty = [f for f in dict.fromkeys([*MASKED, str(Path.home())])
                 if f != "/" and os.path.isdir(f) and not os.path.islink(f)]
        for name in empty:
            out += [*size, "--tmpfs", name] if name == "/tmp" else ["--tmpfs", name]
        out += [*size, "--tmpfs", "/dev/shm"]
        resolv = _real("/etc/resolv.conf")  # name lookups through a resolver's file under /run
        if _within(resolv, Path("/run")) and resolv.exists():
            out += ["--ro-bind", str(resolv), str(resolv)]
        shown = [*self._software(), *self.visible, _real(job.workdir)]
        for shown_dir in shown:
            if shown_dir.is_dir():
                out += ["--ro-bind", str(shown_dir), str(shown_dir)]
        hide, covered = self._hide(shown)
        out += hide
        for secret in self.files:  # where the trial would see it: outside every emptied folder, or in a shown one
            masked = any(_within(secret, Path(f)) for f in [*empty, *covered])
            if secret.is_file() and (not masked or any(_within(secret, d) for d in shown if d.is_dir())):
                out += ["--ro-bind", "/dev/null", str(secret)]
        out += ["--tmpfs", str(self.runs_root), "--bind", str(trial_dir), str(trial_dir)]
        checkpoint = job.env.get("KATIB_CHECKPOINT_DIR")
        if checkpoint and os.path.isdir(checkpoint):
            out += ["--bind", str(_real(checkpoint)), str(_real(checkpoint))]
        out += self._pin(trial_dir, writable_files, ["pid", *protected], writable_folders)
        for name in [*(f for f in empty if f != "/tmp"), *covered, str(self.runs_root)]:
            out += ["--remount-ro", name]
        out += ["--chdir", str(job.workdir), "--", env, "--default-signal=TERM", "--",
                *(f"{k}={v}" for k, v in (inside_env or {}).items()), prlimit, "--core=0"]
        if memory and not gpu:
            out.append(f"--as={memory}")
        if cwd is not None:
            # The template's workingDir is looked up inside, never on the server's side
            # (whether a folder outside the fence exists, another tenant's experiment, is
            # not for a trial to learn); where it is not there, the experiment's folder, as
            # outside the sandbox.
            argv = ["/bin/sh", "-c", 'cd -- "$0" 2>/dev/null; exec "$@"', str(cwd), *argv]
        return [*out, "--", *argv]

    def _filter(self) -> Path | None:
        """The system-call filter's file (``trials._seccomp``), beside the runs folder (the
        server's own folder), written when missing or not this one; None where the
        machine's system-call numbers are not known here."""
        bpf = seccomp.program()
        if bpf is None:
            return None
        path = self.runs_root.parent / "seccomp.bpf"
        try:
            if path.read_bytes() == bpf:
                return path
        except OSError:
            pass
        fd, tmp = tempfile.mkstemp(prefix=".seccomp.", dir=path.parent)  # one per launch: launches run side by side
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(bpf)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    def _hide(self, shown: Sequence[Path]) -> tuple[list[str], list[str]]:
        """Cover each hidden file: its folder by an empty one where nothing shown lies in
        that folder (not a top-level one such as ``/etc``), else the file itself by an
        empty file (when it exists). The arguments, and the folders covered."""
        out: list[str] = []
        covered: list[str] = []
        for name in FOLDERS_BESIDE_RUNS:  # made now, so a trial never sees it appear in a shown folder
            private_dirs(self.runs_root.parent / name)
        for path in self.hidden:
            if path.is_dir() and not any(_within(s, path) for s in shown):  # a folder the server keeps: covered whole
                out += ["--tmpfs", str(path)]
                covered.append(str(path))
                continue
            folder = path.parent
            if str(folder) in covered:
                continue
            if len(folder.parts) > 2 and not any(_within(s, folder) for s in shown):
                out += ["--tmpfs", str(folder)]
                covered.append(str(folder))
            elif path.exists():
                out += ["--ro-bind", "/dev/null", str(path)]
        return out, covered

    @staticmethod
    def _pin(trial_dir: Path, writable: Iterable[Path], protected: Iterable[str],
             folders: Iterable[Path] = ()) -> list[str]:
        """Mount points cannot be renamed or removed: binding a file or folder (and the
        folders between it and the trial folder) onto itself keeps it the plain file or
        folder the server opens by name."""
        out: list[str] = []
        pinned: set[Path] = set()
        kept = {trial_dir / name for name in protected}
        for name in dict.fromkeys(protected):
            _no_link(trial_dir / name)  # a link an earlier run of the trial left
            out += ["--ro-bind", "/dev/null", str(trial_dir / name)]
        # The artifacts folder too: katib serve reads the model there, and a link in its
        # place (to another tenant's artifacts) would have it serve that tenant's model.
        folder_set = {Path(os.path.abspath(f)) for f in [*folders, trial_dir / ARTIFACTS]}
        for target in [*writable, *folder_set]:
            path = Path(os.path.abspath(target))
            if not _within(path, trial_dir) or path == trial_dir:
                continue
            if path in kept or any(k in path.parents for k in kept):  # bound writable, it undid the cover
                name = path.relative_to(trial_dir).parts[0]
                raise LaunchError(f"the metrics collector's path is on {name!r} in the trial's folder, a file the "
                                  "server keeps there: choose another path")
            parts = [*reversed(path.relative_to(trial_dir).parents[:-1]), path.relative_to(trial_dir)]
            for part in parts:
                _no_link(trial_dir / part)
            if path in folder_set:
                if path.exists() and not path.is_dir():
                    path.unlink()  # a file an earlier run left where its folder goes
                path.mkdir(parents=True, exist_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            for part in parts:
                full = trial_dir / part
                if full not in pinned:
                    pinned.add(full)
                    out += ["--bind", str(full), str(full)]
        return out


def _no_link(path: Path) -> None:
    if path.is_symlink():
        path.unlink()
