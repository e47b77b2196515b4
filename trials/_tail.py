"""Reading a trial's file as it grows, bounded: ``Tail`` hands over the lines completed
since its last read, a piece at a time (the file is the trial's, so neither a long line nor
a long file may take the server's memory)."""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

CHUNK = 8 << 20  # the longest line kept (a longer one is dropped), and the most one read takes
READS = 4  # what one collection reads of a file, in CHUNKs (a final one reads on to its end)
PIECE = 1 << 20  # what one piece of a collection reads (its lines parsed before the next)


class _Pieces:
    """What one ``Collector.collect`` has read of each of its files (``Tail``), set while it
    runs: a ``Tail`` read then takes one piece per call, and says whether more is left."""

    def __init__(self) -> None:
        self.read: dict[int, list[int]] = {}  # id(tail) -> [bytes read, where a final read stops]
        self.more = False  # a read left more to read: read again


_PIECES: ContextVar[_Pieces | None] = ContextVar("katib_collector_pieces", default=None)


class Tail:
    """Reads the complete lines appended to a file since the last read (and, ``final``,
    the last one unfinished too). The file is the trial's, so a read is bounded: a line
    longer than ``CHUNK`` is dropped, as Katib's line scanner drops it (it was read whole,
    again at every call, until it ended: a trial writing gigabytes without a newline took
    the server's memory); a call reads at most ``READS`` chunks, and sets ``more`` when it
    left some (a final read too: the caller reads again while ``more``; ``Collector`` takes
    a piece of ``PIECE`` bytes at a time and parses it before the next, so its memory is a
    piece's, not the file's: a trial that wrote 48 MiB of short lines and ended took the
    server from 97 MB to 1.3 GB). ``limit``: the most bytes of the file read at all
    (``capped`` once the file holds more)."""

    def __init__(self, path: Path, limit: int | None = None) -> None:
        self.path = path
        self.offset = 0
        self.limit = limit
        self.more = False  # the last read stopped before the end of what it may read
        self.capped = False  # the file holds more than ``limit`` bytes: the rest is not read
        self._skipping = False  # inside a line too long to keep: its rest is dropped

    def read(self, final: bool = False) -> list[str]:
        self.more = False
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return []
        out: list[str] = []
        with f:
            stop = os.fstat(f.fileno()).st_size
            if self.limit is not None and stop > self.limit:
                stop, self.capped = self.limit, True
            pieces = _PIECES.get()
            allowance = READS * CHUNK
            if pieces is not None:  # one piece a call, within the collection's allowance
                done = pieces.read.setdefault(id(self), [0, stop])
                if final:
                    stop = min(stop, done[1])  # a file still growing does not keep it reading
                else:
                    allowance -= done[0]
            taken = 0
            while allowance > 0:
                step = self._piece(f, final, stop, out)
                taken += step
                if not step or self.offset >= stop:
                    break
                if pieces is not None or taken >= allowance:
                    self.more = True
                    if pieces is not None:
                        pieces.more = True
                    break
            if pieces is not None:
                pieces.read[id(self)][0] += taken
        return out

    def _piece(self, f: Any, final: bool, stop: int, out: list[str]) -> int:
        """Read the lines of one piece into ``out``: the bytes passed, 0 at the end (or at
        an unfinished line, which waits for its end)."""
        want = min(PIECE, CHUNK, stop - self.offset)
        if want <= 0:
            return 0
        f.seek(self.offset)
        data = f.read(want)
        if not data:
            return 0
        if self._skipping:
            newline = data.find(b"\n")
            taken = len(data) if newline < 0 else newline + 1
            self.offset += taken
            self._skipping = newline < 0
            return taken
        asked = want
        end = data.rfind(b"\n") + 1
        if end == 0 and len(data) == want < stop - self.offset:
            asked = min(CHUNK, stop - self.offset)  # a line longer than a piece: kept to CHUNK bytes
            data += f.read(asked - len(data))
            end = data.rfind(b"\n") + 1
        whole = len(data) < asked or self.offset + len(data) >= stop  # the end of what may be read
        if final and whole:
            end = len(data)
        if end == 0:
            if whole:
                return 0  # an unfinished line: read once it ends
            self.offset += len(data)  # a line longer than CHUNK: dropped
            self._skipping = True
            return len(data)
        self.offset += end
        out += data[:end].decode("utf-8", errors="replace").splitlines()
        return end


__all__ = ["CHUNK", "PIECE", "READS", "Tail"]
