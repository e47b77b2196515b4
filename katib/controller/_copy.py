"""Copying one trial's checkpoint folder for another (PBT's hand-over), as the server,
from a folder a trial wrote (a tenant's, under ``katib server --auth``): every name opened
relative to its folder's descriptor and never through a link, links copied as links,
plain files and folders only, and the whole bounded in bytes, entries and depth."""

from __future__ import annotations

import os
import stat
from pathlib import Path

#: Copying a checkpoint (PBT's hand-over) is bounded: model weights and optimizer state,
#: tens of GB for the largest models a single machine trains, fit under 64 GiB; a sparse
#: file of terabytes (a few bytes of disk for its writer) does not, and is refused before
#: a byte of it is written.
CHECKPOINT_BYTES_ENV = "KATIB_MAX_CHECKPOINT_BYTES"
DEFAULT_CHECKPOINT_BYTES = 64 << 30
#: Entries (files, folders, links) and nesting: a million empty files or folders nested
#: ten thousand deep cost no bytes, yet hold the controller while copied.
MAX_CHECKPOINT_ENTRIES = 200_000
MAX_CHECKPOINT_DEPTH = 128
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1 << 20


class CheckpointRefused(Exception):
    """A checkpoint the server does not copy (too big, too many entries, not plain files)."""


def checkpoint_limit() -> int:
    raw = os.environ.get(CHECKPOINT_BYTES_ENV, "").strip()
    try:
        return int(raw) if raw else DEFAULT_CHECKPOINT_BYTES
    except ValueError:
        raise ValueError(f"{CHECKPOINT_BYTES_ENV} must be a number of bytes (got {raw!r})") from None


def copy_checkpoint(source: Path, target: Path, limit: int) -> None:
    """``source`` copied to ``target`` (made here), every name opened relative to its
    folder's descriptor and never through a link, so a link swapped in while the copy
    runs is copied as a link, not followed."""
    budget = {"bytes": limit, "limit": limit, "entries": MAX_CHECKPOINT_ENTRIES}
    src = os.open(source, _DIR_FLAGS)
    try:
        os.mkdir(target, 0o700)
        dst = os.open(target, _DIR_FLAGS)
        try:
            _copy_folder(src, dst, Path(), budget, 0)
            _copy_meta(src, dst, folder=True)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_folder(src: int, dst: int, where: Path, budget: dict[str, int], depth: int) -> None:
    if depth >= MAX_CHECKPOINT_DEPTH:
        raise CheckpointRefused(f"{where} is nested more than {MAX_CHECKPOINT_DEPTH} folders deep")
    with os.scandir(src) as entries:
        names = [e.name for e in entries]
    for name in names:
        budget["entries"] -= 1
        if budget["entries"] < 0:
            raise CheckpointRefused(f"it holds more than {MAX_CHECKPOINT_ENTRIES} files, folders and links")
        info = os.stat(name, dir_fd=src, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        elif stat.S_ISDIR(info.st_mode):
            child = os.open(name, _DIR_FLAGS, dir_fd=src)
            try:
                os.mkdir(name, 0o700, dir_fd=dst)
                child_dst = os.open(name, _DIR_FLAGS, dir_fd=dst)
                try:
                    _copy_folder(child, child_dst, where / name, budget, depth + 1)
                    _copy_meta(child, child_dst, folder=True)
                finally:
                    os.close(child_dst)
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode):
            _copy_file(src, dst, name, where / name, budget)
        else:
            raise CheckpointRefused(f"{where / name} is not a file, folder or link (a FIFO, socket or device): a "
                                     "checkpoint holds only those")


def _copy_file(src: int, dst: int, name: str, where: Path, budget: dict[str, int]) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), dir_fd=src)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # swapped for something else since listed
            raise CheckpointRefused(f"{where} is not a file, folder or link: a checkpoint holds only those")
        if info.st_size > budget["bytes"]:
            raise CheckpointRefused(f"its files come to more than {_size(budget['limit'])} ({where} alone is "
                                     f"{info.st_size} bytes); {CHECKPOINT_BYTES_ENV} raises the limit")
        os.set_blocking(fd, True)
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                      0o600, dir_fd=dst)
        try:
            while True:
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    break
                budget["bytes"] -= len(chunk)
                if budget["bytes"] < 0:  # grew while copied
                    raise CheckpointRefused(f"its files come to more than {_size(budget['limit'])}; "
                                             f"{CHECKPOINT_BYTES_ENV} raises the limit")
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
            _copy_meta(fd, out)
        finally:
            os.close(out)
    finally:
        os.close(fd)


def _size(limit: int) -> str:
    return f"{limit >> 30} GiB" if limit and limit % (1 << 30) == 0 else f"{limit} bytes"


def _copy_meta(src: int, dst: int, folder: bool = False) -> None:
    """Mode bits (not set-id) and times, as ``copytree`` kept them; a folder stays the
    owner's to write (the trial is the same user and could chmod it anyway), so a copy
    cut short is removed whole."""
    info = os.fstat(src)
    os.chmod(dst, stat.S_IMODE(info.st_mode) & 0o777 | (0o700 if folder else 0))
    os.utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns))


__all__ = ["CheckpointRefused", "checkpoint_limit", "copy_checkpoint"]
