"""The fake kubelet's process helpers (kube_cluster.py): a container's argv and env as
Kubernetes expands them, its emptyDir mounts mapped to the pod's folders, a container
runtime's isolation (bubblewrap), container statuses, and killing a pod's processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

_REFERENCE = re.compile(r"\$(\$|\(([A-Za-z_][A-Za-z0-9_.-]*)\))")


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of ``command`` and ``args``: ``$(VAR)`` from the env (left as
    written when unset), ``$$`` → ``$``."""
    return _REFERENCE.sub(lambda m: "$" if m.group(1) == "$" else env.get(m.group(2), m.group(0)), text)


def _mounts(container: dict[str, Any], dirs: dict[str, Path]) -> list[tuple[str, str]]:
    found = [(m["mountPath"], str(dirs[m["name"]])) for m in container.get("volumeMounts") or [] if m.get("name") in dirs]
    return sorted(found, key=lambda pair: -len(pair[0]))


def _remap(text: str, mounts: list[tuple[str, str]]) -> str:
    for mount, host in mounts:
        text = text.replace(mount, host)
    return text


def _argv(container: dict[str, Any], env: dict[str, str], dirs: dict[str, Path], images: dict[str, list[str]]) -> list[str]:
    """The container's process: its command (else its image's entrypoint) and args,
    expanded, its emptyDir mounts mapped to the pod's folders."""
    command = [_expand(str(a), env) for a in container.get("command") or []] or list(images.get(container.get("image", ""), []))
    mounts = _mounts(container, dirs)
    return [_remap(a, mounts) for a in [*command, *(_expand(str(a), env) for a in container.get("args") or [])]]


def _remap_env(container: dict[str, Any], env: dict[str, str], dirs: dict[str, Path]) -> dict[str, str]:
    mounts = _mounts(container, dirs)
    return {k: _remap(v, mounts) for k, v in env.items()}


def _container(spec: dict[str, Any], container: dict[str, Any], argv: list[str], env: dict[str, str],
               workdir: Path) -> tuple[list[str], dict[str, str]]:
    """A pod's process as a container runtime would start it: the image's environment (its
    PATH, katib importable) and the pod's ``env``, nothing of this process's; a filesystem of
    its own (the host's system read-only, but none of its ``/tmp``, ``/home``, ``/root`` or
    ``/run``; ``hostPath`` volumes mounted where the pod says), its own PID namespace
    unless ``hostPID``, and its memory limit enforced (as an address-space limit)."""
    from trials._resources import parse_memory
    from trials._sandbox import _probe

    repo = Path(__file__).resolve().parents[2]
    image = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(repo),
             "HOME": "/tmp", "LANG": "C.UTF-8"}
    memory = parse_memory(((container.get("resources") or {}).get("limits") or {}).get("memory") or 0)
    limit = ["prlimit", f"--as={memory}", "--"] if memory else []
    flags, _ = _probe("bwrap")
    if flags is None:
        return [*limit, *argv], {**image, **env}
    out = ["bwrap", *flags, "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    out += [a for hidden in ("/tmp", "/home", "/root", "/run") if os.path.isdir(hidden) for a in ("--tmpfs", hidden)]
    for shown in sorted({repo, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), workdir.resolve()}):
        out += ["--ro-bind", str(shown), str(shown)]
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        host = (volumes.get(mount.get("name")) or {}).get("hostPath")
        if host:
            out += ["--bind", host["path"], mount["mountPath"]]
    if not spec.get("hostPID"):
        out.append("--unshare-pid")
    return [*out, "--chdir", str(workdir), "--", *limit, *argv], {**image, **env}


def _container_status(container: dict[str, Any], state: dict[str, Any], ready: bool = False) -> dict[str, Any]:
    return {"name": container["name"], "image": container.get("image", ""), "imageID": "", "ready": ready,
            "restartCount": 0, "state": state}


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
