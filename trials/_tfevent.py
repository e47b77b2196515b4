"""The TensorFlowEvent collector: metrics from the event files that TensorBoard,
``torch.utils.tensorboard`` and tensorboardX write, read by the ``tensorboard`` package's
own event file loader (``pip install 'katib[tfevent]'``).

Katib's semantics (``pkg/metricscollector/v1beta1/tfevent-metricscollector/tfevent_loader.py``):
every file under the directory is read; a summary value counts for metric ``m`` when its
tag starts with ``m``'s last path component and, for a name like ``train/accuracy``, the
file lies in a folder whose path ends with ``train``. A scalar (``simple_value``) is written
as Python writes the float, a tensor as NumPy prints the array (``tf.make_ndarray``); the
time is the event's wall time, the step is not used. Histograms, images and audio are
ignored, as Katib's accumulator is told to keep only scalars and tensors. Unlike Katib's
collector, which reads once the trial has ended, this one reads on while the trial runs
(the loader resumes where it stopped), so early stopping sees the values too.

The folder is the trial's, and the server reads it: only plain files are read, opened
without following a link (``O_NOFOLLOW``) and without waiting on a FIFO; a link the trial
planted there (to another tenant's file, the store) is skipped, as are folders it links.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from ._collector import Sample


def should_consider(tag: str, metric_name: str, event_file: str) -> bool:
    """Katib's ``_should_consider``, as it is."""
    parent = os.path.dirname(metric_name) if len(metric_name.split("/")) >= 2 else os.path.dirname(event_file)
    return tag.startswith(metric_name.split("/")[-1]) and os.path.dirname(event_file).endswith(parent)


def _loader(path: str) -> Any:
    try:
        from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
    except ImportError:
        from katib.errors import KatibError

        raise KatibError("the TensorFlowEvent collector reads event files with the tensorboard package: "
                         "pip install 'katib[tfevent]'") from None
    return LegacyEventFileLoader(path)


def _value(value: Any) -> str | None:
    if value.HasField("simple_value"):
        return str(float(value.simple_value))
    if value.HasField("tensor"):
        from tensorboard.util.tensor_util import make_ndarray

        return str(make_ndarray(value.tensor))
    return None


class TFEventReader:
    """New samples from the event files under ``directory`` at each ``read()``.

    >>> TFEventReader(Path("/nowhere"), ["loss"]).read()
    []
    """

    def __init__(self, directory: Path, names: list[str]) -> None:
        self.directory = directory
        self.names = names
        self._loaders: dict[str, Any] = {}
        self._fds: list[int] = []  # the files the loaders read, held open: each read by its fd

    def __del__(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def _open(self, path: str) -> Any:
        """A loader of the plain file at ``path``, or None (a link, a FIFO, gone)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        self._fds.append(fd)
        return _loader(f"/proc/self/fd/{fd}")  # this very file, whatever the name now points to

    def read(self) -> list[Sample]:
        out: list[Sample] = []
        if os.path.islink(self.directory) or not self.directory.is_dir():
            return out
        for root, _dirs, files in sorted(os.walk(self.directory)):  # links to folders are not walked
            for f in sorted(files):
                path = os.path.join(root, f)
                loader = self._loaders.get(path)
                if loader is None:
                    loader = self._open(path)
                    if loader is None:
                        continue
                    self._loaders[path] = loader
                try:
                    events = list(loader.Load())
                except Exception:  # noqa: BLE001 - not an event file (Katib logs and skips these)
                    continue
                for event in events:
                    for value in event.summary.value:
                        for name in self.names:
                            if should_consider(value.tag, name, path):
                                text = _value(value)
                                if text is not None:
                                    out.append(Sample(event.wall_time, name, text))
        return out
