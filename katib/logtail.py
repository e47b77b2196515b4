"""Reading a trial's log at a bounded cost: its last lines come from the end of the file,
and no answer holds more than ``max_bytes`` of it, whatever the file's size."""

from __future__ import annotations

import os
from pathlib import Path

CHUNK = 64 << 10


def read_log(path: Path, tail: int | None = None, max_bytes: int = 1 << 20) -> str:
    """The log's last ``tail`` lines (all of it when ``tail`` is None), at most its last
    ``max_bytes`` bytes; ``""`` when there is no log yet. ``tail=0`` is nothing."""
    if tail is not None and tail <= 0:
        return ""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return ""
    with f:
        size = os.fstat(f.fileno()).st_size
        if tail is None:
            start = max(0, size - max_bytes)
            f.seek(start)
            data = f.read(size - start)
            if start:  # begin at a whole line
                cut = data.find(b"\n")
                data = data[cut + 1:] if cut >= 0 else data
            return data.decode("utf-8", errors="replace")
        data = b""
        end = size
        # tail + 1 newlines are enough: the last line may end with one.
        while end > 0 and data.count(b"\n") <= tail and len(data) < max_bytes:
            start = max(0, end - CHUNK, size - max_bytes)
            if start >= end:
                break
            f.seek(start)
            data = f.read(end - start) + data
            end = start
    lines = data.splitlines(keepends=True)
    text = b"".join(lines[-tail:])
    return text.decode("utf-8", errors="replace")


__all__ = ["read_log"]
