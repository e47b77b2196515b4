"""The TensorFlowEvent collector: metrics from the event files that TensorBoard,
``torch.utils.tensorboard`` and tensorboardX write, read as TensorBoard's own event file
loader reads them (TFRecords of ``Event`` protos, checked by their CRC32C; the ``tensorboard``
package's protos: ``pip install 'katib[tfevent]'``).

Katib's semantics (``pkg/metricscollector/v1beta1/tfevent-metricscollector/tfevent_loader.py``):
every file under the directory is read; a summary value counts for metric ``m`` when its
tag starts with ``m``'s last path component and, for a name like ``train/accuracy``, the
file lies in a folder whose path ends with ``train``. A scalar (``simple_value``) is written
as Python writes the float, a tensor as NumPy prints the array (``tf.make_ndarray``); the
time is the event's wall time, the step is not used. Histograms, images and audio are
ignored, as Katib's accumulator is told to keep only scalars and tensors. Unlike Katib's
collector, which reads once the trial has ended, this one reads on while the trial runs
(each file from where the last read stopped), so early stopping sees the values too.

The folder is the trial's, and the server reads it, so the reading is fenced and bounded:

- the folder and each folder under it is opened by its name in the folder above it
  (``dir_fd``), never following a link (``O_NOFOLLOW``), and a file by its name in its
  opened folder: a folder the trial swaps for a link (to another tenant's folder) while the
  server walks is not entered, a link it plants is skipped; only plain files are read,
  opened without waiting on a FIFO, and only on the folder's own file system (``st_dev``);
- no file is held open between reads: a file is opened, read from where the last read
  stopped (its offset kept by ``(st_dev, st_ino)``), and closed, so a trial with thousands
  of files costs the server no file descriptors while it runs, nor after it ends;
- at most ``KATIB_MAX_TFEVENT_FILES`` (``FILES``, 256) files of a trial are read, at most
  ``ENTRIES`` names under its folder are looked at per read and at most ``DEPTH`` folders
  deep; a read takes at most ``PIECE`` bytes (a ``Collector.collect`` reads on a piece at a
  time, at most ``ALLOWANCE`` bytes unless it is the final one), and a record longer than
  ``RECORD`` bytes (an image, a large histogram) is passed over unread. A limit reached
  is said in ``notes`` (once each) and in the server's log, not skipped in silence.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Generator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from katib._push import env_limit

from ._collector import Sample
from ._tail import _PIECES, _Pieces

FILES = 256  # the most files of one trial's folder read (real runs have a few per run folder)
FILES_ENV = "KATIB_MAX_TFEVENT_FILES"
ENTRIES = 10_000  # the most names under the folder looked at per read (files and folders)
DEPTH = 16  # the deepest folder under the folder walked
PIECE = 1 << 20  # the most bytes one read takes (a collection reads on a piece at a time)
ALLOWANCE = 8 << 20  # the most bytes one collection (not the final one) reads
RECORD = 1 << 20  # a longer record is passed over unread (not a scalar: an image, a histogram)

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_HEAD = struct.Struct("<QI")  # a record: its length, the length's masked CRC32C; the data; its masked CRC32C
_CRC = struct.Struct("<I")


def should_consider(tag: str, metric_name: str, event_file: str) -> bool:
    """Katib's ``_should_consider``, as it is."""
    parent = os.path.dirname(metric_name) if len(metric_name.split("/")) >= 2 else os.path.dirname(event_file)
    return tag.startswith(metric_name.split("/")[-1]) and os.path.dirname(event_file).endswith(parent)


def _tensorboard() -> tuple[Any, Any]:
    """The ``Event`` proto and TensorBoard's masked CRC32C."""
    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
    except ImportError:
        from katib.errors import KatibError

        raise KatibError("the TensorFlowEvent collector reads event files with the tensorboard package: "
                         "pip install 'katib[tfevent]'") from None
    return Event, masked_crc32c


def _value(value: Any) -> str | None:
    if value.HasField("simple_value"):
        return str(float(value.simple_value))
    if value.HasField("tensor"):
        from tensorboard.util.tensor_util import make_ndarray

        try:
            return str(make_ndarray(value.tensor))
        except Exception:  # noqa: BLE001 - a tensor NumPy cannot make (the trial's bytes): passed over
            return None
    return None


@dataclass
class _File:
    """What was read of one event file: up to ``offset`` (whole records); ``dead``: not an
    event file (a record failed its CRC, as TensorBoard's reader stops there)."""

    offset: int = 0
    dead: bool = False


@dataclass
class _Found:
    root: str  # the folder's path as os.walk names it (should_consider reads it)
    parts: tuple[str, ...]  # the folders from the top one down
    name: str
    key: tuple[int, int]  # (st_dev, st_ino) when walked (lstat)
    size: int


class TFEventReader:
    """New samples from the event files under ``directory`` at each ``read()``.

    >>> TFEventReader(Path("/nowhere"), ["loss"]).read()
    []
    """

    def __init__(self, directory: Path, names: list[str], max_files: int | None = None) -> None:
        self.directory = directory
        self.names = names
        self.max_files = env_limit(FILES_ENV, FILES) if max_files is None else max_files
        self.notes: list[str] = []  # the limits this folder reached, said once each
        self.more = False  # the last read stopped before the end of what there is to read
        self._files: dict[tuple[int, int], _File] = {}  # at most max_files
        self._pass: tuple[_Pieces, list[int], dict[tuple[int, int], int]] | None = None  # this collection's

    def _note(self, message: str) -> None:
        if message not in self.notes:  # the collector says it (the trial's condition, the server's log)
            self.notes.append(message)

    def read(self, final: bool = False) -> list[Sample]:
        """The samples of the records written whole since the last read, file by file in
        the order ``sorted(os.walk(directory))`` lists them. Within a ``Collector.collect``
        a read takes a ``PIECE`` and sets its ``more`` while more is left of the
        collection's ``ALLOWANCE`` (``final``: to the files' ends, as they were when the
        collection first saw them); alone it reads up to ``ALLOWANCE`` (``final``: to the
        ends), ``self.more`` saying whether it stopped before them."""
        self.more = False
        try:
            top = os.open(self.directory, _DIR)
        except OSError:  # gone, a link, not a folder
            return []
        try:
            return self._read(top, final)
        finally:
            os.close(top)

    def _read(self, top: int, final: bool) -> list[Sample]:
        dev = os.fstat(top).st_dev
        found = sorted(self._walk(top, dev), key=lambda f: (f.root, f.name))
        pieces = _PIECES.get()
        if pieces is None:
            stops: dict[tuple[int, int], int] = {}
            budget = -1 if final else ALLOWANCE
        else:
            if self._pass is None or self._pass[0] is not pieces:
                self._pass = (pieces, [0], {})  # a new collection
            stops, taken = self._pass[2], self._pass[1]
            if final:
                budget = PIECE
            elif taken[0] >= ALLOWANCE:
                return []  # the rest at the next collection
            else:
                budget = min(PIECE, ALLOWANCE - taken[0])
        out: list[Sample] = []
        used = 0
        event_cls = crc = None
        folder: tuple[tuple[str, ...], int] | None = None  # the last folder opened, and its fd
        try:
            for f in found:
                state = self._files.get(f.key)
                if state is not None and f.size >= state.offset and (state.dead or state.offset == f.size):
                    continue  # nothing new: not opened
                if state is None and f.size == 0:
                    continue  # nothing to read yet (nor counted)
                if state is None and len(self._files) >= self.max_files:
                    self._note(f"the trial's TensorFlowEvent folder holds more than {self.max_files} files: the "
                               f"server reads the first {self.max_files} it found and not the others "
                               f"(the server's limit, raise it with {FILES_ENV})")
                    continue
                if budget >= 0 and used >= budget:
                    self.more = True
                    break
                if event_cls is None:
                    event_cls, crc = _tensorboard()
                if folder is None or folder[0] != f.parts:
                    if folder is not None:
                        os.close(folder[1])
                        folder = None
                    fd = self._open_dir(top, f.parts, dev)
                    if fd is None:
                        continue
                    folder = (f.parts, fd)
                path = os.path.join(f.root, f.name)
                with closing(self._events(folder[1], f.name, dev, stops, budget - used if budget >= 0 else -1,
                                          event_cls, crc)) as events:
                    for event in events:
                        if isinstance(event, int):
                            used += event
                            continue
                        for value in event.summary.value:
                            for name in self.names:
                                if should_consider(value.tag, name, path):
                                    text = _value(value)
                                    if text is not None:
                                        out.append(Sample(event.wall_time, name, text))
        finally:
            if folder is not None:
                os.close(folder[1])
        if pieces is not None and self._pass is not None:
            self._pass[1][0] += used
            if self.more and (final or self._pass[1][0] < ALLOWANCE):
                pieces.more = True
        return out

    def _walk(self, top: int, dev: int) -> list[_Found]:
        """The plain files under the folder (``top``, its fd), each folder opened by name in
        the one above it without following a link, at most ``ENTRIES`` names, ``DEPTH`` deep."""
        out: list[_Found] = []
        seen = [0]
        base = os.fspath(self.directory)

        def walk(fd: int, parts: tuple[str, ...]) -> None:
            entries = []
            with os.scandir(fd) as it:
                for entry in it:
                    if seen[0] >= ENTRIES:
                        self._note(f"the trial's TensorFlowEvent folder holds more than {ENTRIES} files and "
                                   f"folders: the server looks at {ENTRIES} of them")
                        break
                    seen[0] += 1
                    entries.append(entry)
            root = os.path.join(base, *parts)
            folders = []
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        if stat.S_ISREG(st.st_mode) and st.st_dev == dev:
                            out.append(_Found(root, parts, entry.name, (st.st_dev, st.st_ino), st.st_size))
                    elif entry.is_dir(follow_symlinks=False):
                        folders.append(entry.name)
                except OSError:  # gone meanwhile
                    continue
            for name in folders:
                if len(parts) >= DEPTH:
                    self._note(f"the trial's TensorFlowEvent folder has folders more than {DEPTH} deep: "
                               "the server does not read under them")
                    break
                sub = self._open_dir(fd, (name,), dev)
                if sub is not None:
                    try:
                        walk(sub, (*parts, name))
                    finally:
                        os.close(sub)

        walk(top, ())
        return out

    @staticmethod
    def _open_dir(top: int, parts: tuple[str, ...], dev: int) -> int | None:
        """The folder ``parts`` under ``top``, each opened by name in the one above without
        following a link, on the file system ``dev``; None when one is not such a folder."""
        fd = os.dup(top)
        for name in parts:
            try:
                sub = os.open(name, _DIR, dir_fd=fd)
            except OSError:
                os.close(fd)
                return None
            os.close(fd)
            fd = sub
            if os.fstat(fd).st_dev != dev:
                os.close(fd)
                return None
        return fd

    def _events(self, folder: int, name: str, dev: int, stops: dict[tuple[int, int], int], budget: int,
                event_cls: Any, crc: Any) -> Generator[Any, None, None]:
        """The events written whole in the file since the last read, and the bytes read
        (ints) as they are read; ``budget``: the most bytes read (-1: no limit; at least one
        record is read). The file is open only while this runs."""
        try:
            fd = os.open(name, _FILE, dir_fd=folder)
        except OSError:  # gone, a link, a FIFO without a writer...
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_dev != dev:
                return
            key = (st.st_dev, st.st_ino)
            state = self._files.get(key)
            if state is None:
                if len(self._files) >= self.max_files:
                    return
                state = self._files[key] = _File()
            end = min(st.st_size, stops.setdefault(key, st.st_size))
            if end < state.offset:  # the file was cut or written anew: read again from its start
                state.offset, state.dead = 0, False
            used = 0
            while not state.dead and state.offset + _HEAD.size <= end:
                if budget >= 0 and used >= budget:
                    self.more = True
                    return
                head = os.pread(fd, _HEAD.size, state.offset)
                if len(head) < _HEAD.size:
                    return
                length, head_crc = _HEAD.unpack(head)
                if crc(head[:8]) != head_crc:
                    state.dead = True  # not an event file (Katib logs and skips these)
                    return
                whole = _HEAD.size + length + _CRC.size
                if state.offset + whole > end:
                    return  # not written whole yet
                if length > RECORD:
                    state.offset += whole  # passed over unread
                    continue
                if budget >= 0 and used and used + whole > budget:
                    self.more = True
                    return
                data = os.pread(fd, length + _CRC.size, state.offset + _HEAD.size)
                used += whole
                yield whole
                if len(data) < length + _CRC.size:
                    return
                if crc(data[:length]) != _CRC.unpack(data[length:])[0]:
                    state.dead = True
                    return
                state.offset += whole
                try:
                    event = event_cls.FromString(data[:length])
                except Exception:  # noqa: BLE001 - a record that is not an Event: passed over
                    continue
                yield event
        finally:
            os.close(fd)
