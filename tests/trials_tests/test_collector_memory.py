"""What collecting a trial's metrics may cost the server: a trial writes its push file and
its log itself, so the reads at its end are bounded too (they read the whole file into
memory: 48 MiB of short lines in a push file took a server from 97 MB to 1.3 GB), and what
one trial can add to the store is capped, saying so, without losing its observation."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import textwrap
from pathlib import Path

from katib.controller._status import MetricReducer
from tests.conftest import experiment, python_command
from trials import Collector, _collector, _tail

ROOT = Path(__file__).resolve().parents[2]


def _observation(samples, names=("loss", "acc")):
    reducer = MetricReducer()
    for s in samples:
        reducer.add(s.time, s.metric, s.value)
    return reducer.observation(names)


def test_a_final_read_holds_a_piece_of_the_file_not_the_whole(tmp_path, monkeypatch):
    """The end-of-trial read parses a piece at a time: no read hands over more than a
    piece's lines, and every metric line of both files is still collected."""
    monkeypatch.setattr(_tail, "PIECE", 4096)
    log, push = tmp_path / "trial.log", tmp_path / "push.jsonl"
    log.write_text("".join(f"step {i} loss={i}\n" for i in range(20_000)) + "loss=-1")  # unterminated last
    push.write_text("".join(f'{{"acc": "{i}"}}\n' for i in range(20_000)) + '{"acc": "-1"}')
    held: list[int] = []
    read = _collector.Tail.read

    def counting(self, final=False):
        lines = read(self, final)
        held.append(len(lines))
        return lines

    monkeypatch.setattr(_collector.Tail, "read", counting)
    c = Collector("StdOut", {"loss", "acc"}, output=log, push_file=push)
    samples = c.collect(final=True)
    assert max(held) <= 4096 // len("loss=1\n") + 1, f"one read held {max(held)} lines"
    assert [s.value for s in samples if s.metric == "loss"] == [*map(str, range(20_000)), "-1"]
    assert [s.value for s in samples if s.metric == "acc"] == [*map(str, range(20_000)), "-1"]
    assert c.collect(final=True) == [] and not c.notes


_RSS = """
import resource, sys
from pathlib import Path
from trials import Collector, _collector
d = Path(sys.argv[1])
line = b"x" * 60 + b"\\n"
with (d / "push.jsonl").open("wb") as f:
    block = line * ((1 << 20) // len(line))
    for _ in range(64):
        f.write(block)
    f.write(b'{"loss": "0.25"}\\n')
(d / "trial.log").write_bytes(b"")
c = Collector("StdOut", {"loss"}, output=d / "trial.log", push_file=d / "push.jsonl")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
samples = c.collect(final=True)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) // 1024, [s.value for s in samples])
"""


def test_collecting_a_64_mib_push_file_keeps_the_servers_memory_flat(tmp_path):
    """Measured in a process of its own: the peak RSS a 64 MiB push file of short lines
    adds when a trial ends (the whole file's lines held at once: ~100 MB)."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(_RSS), str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout.split(maxsplit=1)
    grown = int(out[0])
    assert out[1].strip() == "['0.25']"  # the trial's last metric is read
    assert grown < 40, f"collecting the file took {grown} MB more"


def test_a_trials_samples_are_capped_and_its_observation_is_all_of_them(tmp_path):
    """Past ``max_samples``, only each metric's min, max and latest of the rest are handed
    on (at the trial's end), so the observation is the one all the samples make; a restart
    counts the stored ones."""
    rng = random.Random(6)
    lines = []
    for _ in range(3000):
        lines.append(f"{rng.choice(['2026-01-01T00:00:00Z ', '2026-01-02T00:00:00Z ', ''])}"
                     f"loss={rng.choice(['0.5', '0.50', '0.25', '1', '0.125'])} acc={rng.random():.3f}")
    log = tmp_path / "trial.log"
    log.write_text("\n".join(lines[:1000]) + "\n")
    every = Collector("StdOut", {"loss", "acc"}, output=log, max_samples=10**6)
    capped = Collector("StdOut", {"loss", "acc"}, output=log, max_samples=500)
    got_all, got = every.collect(), capped.collect()
    assert len(got) == 500 and got == got_all[:500]
    assert capped.notes and "500" in capped.notes[0] and "KATIB_MAX_TRIAL_SAMPLES" in capped.notes[0]
    with log.open("a") as f:
        f.write("\n".join(lines[1000:]))
    assert capped.collect() == []  # the rest waits for the end, reduced
    got_all += every.collect(final=True)
    got += capped.collect(final=True)
    assert len(got) <= 500 + 3 * 2
    assert _observation(got) == _observation(got_all)

    again = Collector("StdOut", {"loss", "acc"}, output=log, max_samples=500)  # a restarted controller
    again.skip((s.metric, s.value) for s in got[:500])
    assert _observation(got[:500] + again.collect(final=True)) == _observation(got_all)


def test_a_push_file_is_read_to_the_push_cap_and_says_so(tmp_path):
    push = tmp_path / "push.jsonl"
    push.write_text("".join(f'{{"loss": "{i}"}}\n' for i in range(100)))
    c = Collector("Push", {"loss"}, output=tmp_path / "trial.log", push_file=push, push_bytes=150)
    samples = c.collect(final=True)
    assert [s.value for s in samples] == [str(i) for i in range(10)]  # 15 bytes a line
    assert c.notes and "150 bytes" in c.notes[0] and "KATIB_MAX_PUSH_BYTES" in c.notes[0]


def test_a_final_read_stops_at_the_end_it_found(tmp_path, monkeypatch):
    """A file that still grows (something the trial left behind writes on) does not keep
    the end-of-trial read going."""
    monkeypatch.setattr(_tail, "PIECE", 64)
    log = tmp_path / "trial.log"
    log.write_text("loss=1\n" * 100)
    piece = _collector.Tail._piece

    def growing(self, *args):
        with log.open("a") as f:
            f.write("loss=2\n" * 10)
        return piece(self, *args)

    monkeypatch.setattr(_collector.Tail, "_piece", growing)
    samples = Collector("StdOut", {"loss"}, output=log, max_samples=10**6).collect(final=True)
    assert [s.value for s in samples] == ["1"] * 100


def test_the_trial_that_reached_the_caps_says_so(store, tmp_path, monkeypatch, caplog):
    """End to end: the trial's condition message and the server's log name the limits;
    its observation is what all its values make."""
    from katib.controller import Controller, admit

    monkeypatch.setenv("KATIB_MAX_TRIAL_SAMPLES", "20")
    monkeypatch.setenv("KATIB_MAX_PUSH_BYTES", "200")
    code = ("import katib\nfor i in range(60):\n    print(f'loss={(i * 7) % 60}')\n"
            "for i in range(30):\n    katib.report_metrics({'acc': i})\n")
    doc = experiment(command=python_command(code), maxTrialCount=1, parallelTrialCount=1,
                     objective={"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["acc"]})
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    with caplog.at_level(logging.WARNING, logger="katib.controller"):
        ctl.run(rec.namespace, rec.name)
    t = store.list_trials(rec.id)[0]
    assert t.state == "Succeeded"
    assert t.observation["loss"] == {"min": "0", "max": "59", "latest": str((59 * 7) % 60)}
    assert len(store.observations(t.id)) <= 20 + 3 * 2
    message = next(c.message for c in t.conditions if c.type == "Succeeded")
    assert "KATIB_MAX_TRIAL_SAMPLES" in message and "KATIB_MAX_PUSH_BYTES" in message
    warned = [r.getMessage() for r in caplog.records if t.name in r.getMessage()]
    assert any("KATIB_MAX_TRIAL_SAMPLES" in w for w in warned) and any("KATIB_MAX_PUSH_BYTES" in w for w in warned)
