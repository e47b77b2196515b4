"""What reading a trial's TensorFlowEvent folder may cost the server, and where it may
reach: no file held open between reads (a trial with thousands of files took every file
descriptor the server had), at most ``KATIB_MAX_TFEVENT_FILES`` files and a piece of bytes
per read, said in the reader's notes; folders opened by name in the folder above, so one
the trial swaps for a link while the server walks (to another tenant's folder) is not read."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from trials._collector import Collector
from trials._tfevent import TFEventReader

pytest.importorskip("tensorboard")


def write_events(path: Path, tag: str, values: list[float], pad: int = 0) -> None:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        w = RecordWriter(f)
        for i, v in enumerate(values):
            value = summary_pb2.Summary.Value(tag=tag + "_" * pad, simple_value=v)
            w.write(event_pb2.Event(wall_time=1.7e9 + i, step=i, summary=summary_pb2.Summary(
                value=[value])).SerializeToString())
        w.flush()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_files_are_not_held_open_between_reads(tmp_path: Path):
    """3,000 files in a trial's folder took 1,023 of the server's 1,024 descriptors, held
    for the reader's life; another tenant's next trial failed "Too many open files"."""
    for i in range(200):
        (tmp_path / f"f{i:03d}").write_bytes(b"x")  # not (yet) a whole record
    for i in range(1000):
        (tmp_path / f"empty{i:03d}").touch()  # nothing to read: not counted
    write_events(tmp_path / "train" / "events.out.tfevents.1", "loss", [0.5])
    reader = TFEventReader(tmp_path, ["loss"])
    held = open_fds()
    assert [s.value for s in reader.read()] == ["0.5"]
    assert open_fds() == held
    write_events(tmp_path / "train" / "events.out.tfevents.1", "loss", [0.25])  # read on from where it stopped
    assert [s.value for s in reader.read()] == ["0.25"]
    assert open_fds() == held


def test_the_files_read_are_capped_and_the_cap_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KATIB_MAX_TFEVENT_FILES", "3")
    for i in range(5):
        write_events(tmp_path / f"events.out.tfevents.{i}", "loss", [float(i)])
    reader = TFEventReader(tmp_path, ["loss"])
    assert [s.value for s in reader.read()] == ["0.0", "1.0", "2.0"]  # the first 3, in Katib's order
    notes = getattr(reader, "notes", [])
    assert len(notes) == 1 and "more than 3 files" in notes[0] and "KATIB_MAX_TFEVENT_FILES" in notes[0]
    write_events(tmp_path / "events.out.tfevents.0", "loss", [7.0])  # the files it reads, it reads on
    assert [s.value for s in reader.read()] == ["7.0"]
    assert len(reader.notes) == 1  # said once
    # The collector hands the note on (the controller puts it in the trial's condition).
    c = Collector(kind="TensorFlowEvent", names={"loss"}, output=tmp_path / "trial.log", tfevent_dir=tmp_path)
    c.collect(final=True)
    assert any("KATIB_MAX_TFEVENT_FILES" in n for n in c.notes)


def test_a_collection_reads_a_piece_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A read takes at most a piece of bytes (the collector reads on, piece by piece), a
    collection at most its allowance; the rest comes at the next, nothing twice or lost."""
    import trials._tfevent as tfevent


    monkeypatch.setattr(tfevent, "PIECE", 4096, raising=False)
    monkeypatch.setattr(tfevent, "ALLOWANCE", 16384, raising=False)
    write_events(tmp_path / "events.out.tfevents.1", "loss", [float(i) for i in range(200)], pad=200)
    pieces: list[int] = []
    reader_read = TFEventReader.read

    def counted(self, *args, **kwargs):
        out = reader_read(self, *args, **kwargs)
        pieces.append(len(out))
        return out

    monkeypatch.setattr(TFEventReader, "read", counted)
    c = Collector(kind="TensorFlowEvent", names={"loss"}, output=tmp_path / "trial.log", tfevent_dir=tmp_path)
    first = c.collect()
    assert 0 < len(first) < 200 and len(pieces) > 1 and max(pieces) < 20
    got = list(first)
    for _ in range(30):
        got += c.collect()
    assert [float(s.value) for s in got] == [float(i) for i in range(200)]


def test_folders_deeper_than_the_limit_are_not_walked(tmp_path: Path):
    deep = tmp_path.joinpath(*[f"d{i}" for i in range(20)])
    write_events(deep / "events.out.tfevents.1", "loss", [0.5])
    write_events(tmp_path / "events.out.tfevents.1", "loss", [0.25])
    reader = TFEventReader(tmp_path, ["loss"])
    assert [s.value for s in reader.read()] == ["0.25"]
    assert any("deep" in n for n in getattr(reader, "notes", []))


def test_a_folder_swapped_for_a_link_while_walked_is_not_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The trial swaps a folder of its own for a link to another tenant's folder between
    the server's listing it and opening its files: the server opened the file by its whole
    path and read the other tenant's metrics."""
    victim = tmp_path / "runs" / "ns-b" / "exp" / "trial" / "tfevent"
    write_events(victim / "events.out.tfevents.1", "loss", [4242.0])
    mine = tmp_path / "runs" / "ns-a" / "exp" / "trial" / "tfevent"
    write_events(mine / "sub" / "events.out.tfevents.1", "loss", [1.0])
    real = os.scandir
    calls: list[object] = []

    class Swapping:
        """``os.scandir``'s iterator; the second listing (``sub``'s) swaps ``sub`` once done."""

        def __init__(self, it):
            self.it = it

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

        def __iter__(self):
            return self

        def __next__(self):
            return next(self.it)

        def close(self):
            self.it.close()
            if len(calls) == 2 and not (mine / "sub").is_symlink():
                os.rename(mine / "sub", mine / "subreal")
                os.symlink(victim, mine / "sub")

    def scandir(*args):
        calls.append(args)
        return Swapping(real(*args))

    monkeypatch.setattr(os, "scandir", scandir)
    values = [s.value for s in TFEventReader(mine, ["loss"]).read()]
    assert len(calls) >= 2 and (mine / "sub").is_symlink()  # the swap was made mid-walk
    assert "4242.0" not in values, values


def test_a_file_written_anew_is_read_from_its_start(tmp_path: Path):
    path = tmp_path / "events.out.tfevents.1"
    write_events(path, "loss", [0.5, 0.25])
    reader = TFEventReader(tmp_path, ["loss"])
    assert [s.value for s in reader.read()] == ["0.5", "0.25"]
    path.write_bytes(b"")
    write_events(path, "loss", [0.125])
    assert [s.value for s in reader.read()] == ["0.125"]
    time.sleep(0)
