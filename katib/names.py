"""One name rule for every entry point, and one owner of the run-folder layout.

Namespaces, experiment and trial names follow Kubernetes' DNS-1123 label rule (lower-case
letters, digits and ``-``, starting and ending with a letter or digit, at most 63
characters); an experiment name, as in Katib, also starts with a letter and has at most 40
characters, so that its trials' names (``<experiment>-<8 characters>``) stay labels too.
Every name is checked before it becomes part of a path, a query or a stored row: YAML, the
REST and Kubernetes-style APIs, the CLI and grants all call :func:`check`.

:class:`RunLayout` is the only place that turns names into paths under the runs folder.
Each path it returns is resolved and checked to stay under that folder, so no name, link
or collector path can make a read, write or delete land outside it.

>>> check("namespace", "team-a")
>>> check("namespace", "..")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
katib.errors.ValidationError: invalid name …
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from pathlib import Path

from katib.errors import FieldError, ValidationError

LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
EXPERIMENT_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_MAX = 63
EXPERIMENT_MAX = 40

_RULES = {
    # kind: (regex, longest, what the regex means in words)
    "namespace": (LABEL_RE, LABEL_MAX, "lower case letters, digits and '-', starting and ending with a letter or digit"),
    "experiment": (EXPERIMENT_RE, EXPERIMENT_MAX,
                   "lower case letters, digits and '-', starting with a letter and ending with a letter or digit"),
    "trial": (LABEL_RE, LABEL_MAX, "lower case letters, digits and '-', starting and ending with a letter or digit"),
    "user": (LABEL_RE, LABEL_MAX, "lower case letters, digits and '-', starting and ending with a letter or digit"),
    # A Kubernetes object's name (DNS-1123 subdomain): a suggestion's volume, <experiment>-<algorithm>.
    "volume": (re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"), 253,
               "lower case letters, digits, '-' and '.', starting and ending with a letter or digit"),
}


def name_rule(kind: str) -> tuple[re.Pattern[str], int]:
    """The regex and the longest length of a ``kind`` name (an API schema states them)."""
    regex, longest, _ = _RULES[kind]
    return regex, longest


def name_errors(kind: str, value: object, field: str | None = None) -> list[FieldError]:
    """Why ``value`` is not a valid ``kind`` name (namespace, experiment, trial, user, volume)."""
    regex, longest, words = _RULES[kind]
    field = field or kind
    if not isinstance(value, str) or not value:
        return [FieldError(field, f"must be a non-empty string (got {value!r})")]
    shown = value if len(value) <= 80 else value[:77] + "..."
    errors = []
    if len(value) > longest:
        errors.append(FieldError(field, f"must be at most {longest} characters (got {len(value)})"))
    if not regex.fullmatch(value):  # not match: "$" also matches before a final newline
        errors.append(FieldError(field, f"must consist of {words} (regex {regex.pattern}; got {shown!r})"))
    return errors


def check(kind: str, value: object, field: str | None = None) -> None:
    """Raise ``ValidationError`` (a 422 in the API) unless ``value`` is a valid ``kind`` name."""
    errors = name_errors(kind, value, field)
    if errors:
        raise ValidationError(errors, "name")


def inside(root: Path, *parts: str, resolved: bool = False) -> Path:
    """``root / parts``, resolved, or ``ValidationError`` if it would leave ``root``
    (through ``..``, an absolute part or a symbolic link). ``resolved`` says that ``root``
    is resolved already (a path this function returned): only ``parts`` are looked at."""
    base = root if resolved else root.resolve()
    path = _resolved_below(base, parts)
    if path != base and base not in path.parents:
        raise ValidationError([FieldError("path", f"{'/'.join(parts)!r} leaves its folder {str(base)!r}")], "path")
    return path


def _resolved_below(base: Path, parts: tuple[str, ...]) -> Path:
    """``base.joinpath(*parts).resolve()`` for a resolved ``base``, looking only at the
    components ``parts`` add (one ``lstat`` each, where ``resolve`` looks at every
    component from ``/``): the controller builds several paths per trial. Anything but
    plain names (an absolute part, ``..``, a symbolic link) takes ``resolve`` itself."""
    rest = [c for part in parts for c in part.split("/") if c not in ("", ".")]
    if any(part.startswith("/") for part in parts) or ".." in rest:
        return base.joinpath(*parts).resolve()
    current = str(base)
    for at, component in enumerate(rest):
        current = os.path.join(current, component)
        try:
            mode = os.lstat(current).st_mode
        except OSError:  # missing (or unreadable): resolve() keeps the rest as written
            return Path(current, *rest[at + 1:])
        if stat.S_ISLNK(mode):
            return base.joinpath(*parts).resolve()
    return Path(current)


def map_into(root: Path, path: str) -> Path:
    """An absolute container path (a File collector's ``/var/log/katib/metrics.log``)
    mapped under ``root``. The path is normalised first; one that climbs out of ``/``
    (``/../../outside``) is refused, as is anything a link takes outside ``root``."""
    if not path.startswith("/"):
        raise ValidationError([FieldError("path", f"must be an absolute path (got {path!r})")], "path")
    parts = path.split("/")
    if ".." in parts:
        raise ValidationError([FieldError("path", f"must not contain '..' (got {path!r})")], "path")
    normal = posixpath.normpath(path).lstrip("/")
    return inside(root, normal) if normal and normal != "." else root.resolve()


ARTIFACTS = "artifacts"  # a trial's model and outputs (KATIB_ARTIFACT_DIR), what katib serve reads
# Folders of an experiment's own beside its trials' (RunLayout): no trial may be named so.
RESERVED_TRIAL_NAMES = frozenset({"checkpoints"})


def runs_root(store_url: str) -> Path:
    """The runs folder that goes with a store: ``runs/`` beside a SQLite file, else
    ``$KATIB_HOME/runs`` (``~/.katib/runs``). The CLI, the server, the Python client and
    the controller all use this one rule, so each finds the files the other wrote."""
    if store_url.startswith(("sqlite:///", "sqlite+pysqlite:///")) and not store_url.endswith("///:memory:"):
        return Path(store_url.split("///", 1)[1]).parent / "runs"
    return Path(os.environ.get("KATIB_HOME", Path.home() / ".katib")) / "runs"


def private_dirs(folder: Path) -> Path:
    """Make ``folder`` and its missing parents, each new one 0700 (this user's alone).
    Folders that exist already (one the user chose, the current one) are left as they are."""
    folder = Path(folder)
    missing = []
    at = folder
    while not os.path.lexists(at) and at.parent != at:
        missing.append(at)
        at = at.parent
    for new in reversed(missing):
        try:
            os.mkdir(new, 0o700)
        except FileExistsError:
            pass  # made meanwhile by another process
    if not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder")
    return folder


class RunLayout:
    """Where an experiment's files live under the runs folder::

        <root>/<namespace>/<experiment>/<trial>/trial.log, push.jsonl, …
        <root>/<namespace>/<experiment>/<trial>/artifacts/   (the trial's model)
        <root>/<namespace>/<experiment>/checkpoints/<trial>/

    Each method checks the names and that the path stays under ``root``.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def namespace(self, namespace: str) -> Path:
        check("namespace", namespace)
        return inside(self.root, namespace)

    def experiment(self, namespace: str, experiment: str) -> Path:
        check("namespace", namespace)
        check("experiment", experiment)
        return inside(self.root, namespace, experiment)

    def trial(self, namespace: str, experiment: str, trial: str) -> Path:
        check("trial", trial)
        return inside(self.experiment(namespace, experiment), trial, resolved=True)

    def trial_log(self, namespace: str, experiment: str, trial: str) -> Path:
        return self.trial(namespace, experiment, trial) / "trial.log"

    def push_file(self, namespace: str, experiment: str, trial: str) -> Path:
        return self.trial(namespace, experiment, trial) / "push.jsonl"

    def artifacts(self, namespace: str, experiment: str, trial: str) -> Path:
        """The trial's artifacts folder: its trial wrote it, so a symbolic link in its
        place (to another tenant's folder) is refused, not followed."""
        folder = self.trial(namespace, experiment, trial) / ARTIFACTS
        if folder.is_symlink():
            raise ValidationError([FieldError("path", f"{str(folder)!r} is a symbolic link, not the trial's own "
                                                      "artifacts folder")], "path")
        return folder

    def checkpoint(self, namespace: str, experiment: str, trial: str) -> Path:
        check("trial", trial)
        return inside(self.experiment(namespace, experiment), "checkpoints", trial)


__all__ = ["ARTIFACTS", "EXPERIMENT_MAX", "EXPERIMENT_RE", "LABEL_MAX", "LABEL_RE", "RunLayout", "check", "inside", "map_into", "name_errors", "private_dirs", "runs_root"]
