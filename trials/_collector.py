"""Metrics collection: turn what a trial emits into ``(time, metric, value)`` samples.

Sources, per the experiment's ``metricsCollectorSpec``:

- ``StdOut``: the trial's output (stdout and stderr), parsed as TEXT with the
  ``metricsFormat`` filters (Katib's default: ``name=value``); with the default filter, a
  line that is a JSON object is what the Kubeflow SDK's ``report_metrics`` prints
  (``split_reported``);
- ``File``: a file the trial writes, TEXT (filters) or JSON (one object per line);
- ``Push``: values the trial sends with ``katib.report_metrics`` (always read, whatever
  the collector kind, as Katib's DB manager accepts them whatever the kind).

As Katib's file collector reads them, a TEXT line whose first token is an RFC 3339
timestamp gets that time, a JSON line its ``timestamp`` (RFC 3339 text or seconds since the
epoch); other lines get Go's zero time, 0001-01-01T00:00:00Z (``ZERO_TIME``), so they sort
before every timestamped value and "latest" is what Katib says it is. In the JSON format a
metric is a JSON *string* (``"loss": "0.25"``; a genotype is kept as text); JSON numbers are
not metrics there, as in Katib. Pushed values keep the time they were pushed. Only the
experiment's metric names are kept. Collection is
incremental: each ``collect()`` reads the lines completed since the last one, so early
stopping and live views see intermediate values while the trial runs.

The files are the trial's, so what reading them costs the server is bounded: a file is read
a piece at a time, each parsed before the next, also at the trial's end (``Tail``); the
server reads at most ``KATIB_MAX_PUSH_BYTES`` of a push file, as it takes at most that many
bytes of pushes; and it stores at most ``KATIB_MAX_TRIAL_SAMPLES`` samples of a trial, then
of the rest what the trial's observation needs (``Collector.collect``; ``notes`` says so).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from katib._push import PUSH_BYTES_ENV, env_limit, push_bytes_limit
from katib._times import parse_time

from ._tail import _PIECES, Tail, _Pieces

DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
ZERO_TIME = -62135596800.0  # Go's time.Time{}: 0001-01-01T00:00:00Z, Katib's time for a line without one
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class Sample(NamedTuple):
    time: float
    metric: str
    value: str




def _number(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return None
    return text if math.isfinite(number) else None


def _text(value: object) -> str | None:
    """A metric value as stored: a finite number, else non-empty text (a genotype, say)."""
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    try:
        float(text)
    except ValueError:
        return text or None
    return _number(text)


def parse_text(
    lines: Iterable[str], names: set[str], filters: list[Any], now: float | None = None, marks: bool = False
) -> list[Sample]:
    """TEXT format: each filter's (name, value) matches on each line. A custom filter may
    capture text values (Katib's DARTS filter ``([\\w-]+)=(Genotype.*)``); the default one
    only numbers. ``marks``: a metric's match whose value is no number (``loss=nan``, which
    Katib's default filter reads as ``''``) is a sample of value ``''``, which the collector
    stores not, but notes as the metric's newest value (``Collector.not_numbers``)."""
    out: list[Sample] = []
    read_at = ZERO_TIME if now is None else now
    readers = [(pattern.finditer, _number if pattern.pattern == DEFAULT_FILTER else _text) for pattern in filters]
    for line in lines:
        stamp = None
        first, _, rest = line.strip().partition(" ")
        if rest and _RFC3339.match(first):
            stamp = parse_time(first)
        body = rest if stamp is not None else line
        at = stamp if stamp is not None else read_at
        unread: list[str] = []
        found = len(out)
        for finditer, read in readers:
            for match in finditer(body):
                name, raw = match.group(1, 2)
                name = name.strip()  # Katib trims both captures (a filter may take the spaces around '=')
                if name in names and (value := read(raw)) is not None:  # other names' values are not read
                    out.append(Sample(at, name, value))
                elif marks and name in names:
                    unread.append(name)
        if unread:  # no number where no filter read one on the line (a genotype's filter beside a numbers' one)
            read_here = {x.metric for x in out[found:]}
            out += [Sample(at, name, "") for name in dict.fromkeys(unread) if name not in read_here]
    return out


def parse_json(lines: Iterable[str], names: set[str], now: float | None = None, keep_text: bool = False) -> list[Sample]:
    """JSON format: one object per line, an optional ``timestamp``, metric values: finite
    numbers, and with ``keep_text`` text too (a genotype a Katib collector reported to the
    DBManager, which keeps text as Katib's does)."""
    out: list[Sample] = []
    read_at = time.time() if now is None else now
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):  # not an object (a quick no: a trial may write millions)
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        stamp = parse_time(obj.get("timestamp"))
        for name, raw in obj.items():
            value = _text(raw) if keep_text else _number(raw)
            if name in names and value is not None:
                out.append(Sample(stamp if stamp is not None else read_at, name, value))
    return out


_REPORT_KEYS = frozenset({"step", "epoch", "timestamp"})


def split_reported(lines: Iterable[str], names: set[str]) -> tuple[list[Sample], list[str]]:
    """The lines the Kubeflow SDK's ``report_metrics(metrics, *, step, epoch, timestamp)``
    prints (one JSON object a line, values as strings: ``{"loss": "0.25", "step": "3",
    "timestamp": "…"}``; the metrics may also sit in a ``metrics`` object) read as samples,
    and the other lines as they are. A metric is a number, in a string or not; the time is
    the ``timestamp`` (RFC 3339 or seconds since the epoch), else ``ZERO_TIME``."""
    samples: list[Sample] = []
    rest: list[str] = []
    for line in lines:
        text = line.strip()
        obj: Any = None
        if text.startswith("{") and text.endswith("}"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError:
                obj = None
        if not isinstance(obj, dict):
            rest.append(line)
            continue
        stamp = parse_time(obj.get("timestamp"))
        metrics = obj["metrics"] if isinstance(obj.get("metrics"), dict) else obj
        for name, raw in metrics.items():
            value = _number(raw)
            if name in names and name not in _REPORT_KEYS and value is not None:
                samples.append(Sample(ZERO_TIME if stamp is None else stamp, name, value))
    return samples, rest


def parse_katib_json(lines: Iterable[str], names: set[str]) -> list[Sample]:
    """The File collector's JSON format as Katib reads it: one object per line; a metric is
    a JSON string, kept as written (a number in text, or text such as a genotype); the
    ``timestamp`` is RFC 3339 text or seconds since the epoch, else ``ZERO_TIME``. A line
    that is not a JSON object is skipped (Katib fails the whole file)."""
    out: list[Sample] = []
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):  # not an object (a quick no: a trial may write millions)
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        raw = obj.get("timestamp")
        stamp = None
        if isinstance(raw, str) and _RFC3339.match(raw):
            stamp = parse_time(raw)
        elif isinstance(raw, int | float) and not isinstance(raw, bool):
            stamp = parse_time(raw)
        for name, value in obj.items():
            if name in names and isinstance(value, str):
                out.append(Sample(ZERO_TIME if stamp is None else stamp, name, value))
    return out


SAMPLES = 100_000  # the most samples of one trial handed on (stored) before only the reduced rest
SAMPLES_ENV = "KATIB_MAX_TRIAL_SAMPLES"


class _Rest:
    """Past the cap on a trial's samples: of the rest, each metric's min, max and latest,
    which is all its observation needs (``MetricReducer``: strict comparisons, so the
    first of equal values; the latest, the last read of the newest)."""

    def __init__(self) -> None:
        self.dropped = 0
        self._m: dict[str, list[Any]] = {}  # metric -> [min, its number, max, its number, latest]

    def add(self, s: Sample) -> None:
        self.dropped += 1
        try:
            number: float | None = float(s.value)
        except ValueError:
            number = None
        cur = self._m.get(s.metric)
        if cur is None:
            cur = self._m[s.metric] = [None, None, None, None, s]
        if number is not None:
            if cur[0] is None or number < cur[1]:
                cur[0], cur[1] = s, number
            if cur[2] is None or number > cur[3]:
                cur[2], cur[3] = s, number
        if s.time >= cur[4].time:
            cur[4] = s

    def samples(self) -> list[Sample]:
        """Each metric's min and max, then its latest (added last, it stays the latest)."""
        out: list[Sample] = []
        for low, _, high, _, latest in self._m.values():
            for s in (low, high):
                if s is not None and s is not latest and s not in out:
                    out.append(s)
            out.append(latest)
        return out


def _compiled(filters: list[str]) -> list[Any]:
    """The filters as patterns: Katib's default by ``re`` (ours, and quicker on short lines),
    a user's by RE2 (``katib.spec.compile_filter``: linear time, whatever the pattern). One
    RE2 refuses (stored before admission checked it) matches nothing."""
    from katib.spec import compile_filter

    out = []
    for f in filters:
        if f == DEFAULT_FILTER:
            out.append(re.compile(f))
            continue
        try:
            out.append(compile_filter(f))
        except ValueError:
            continue
    return out


class Collector:
    """Collects one trial's metrics from its sources.

    >>> c = Collector(kind="StdOut", names={"loss"}, output=Path("trial.log"))  # doctest: +SKIP
    >>> c.collect()  # doctest: +SKIP
    [Sample(time=1700000000.0, metric='loss', value='0.25')]
    """

    def __init__(
        self,
        kind: str,
        names: set[str],
        output: Path,
        push_file: Path | None = None,
        metrics_file: Path | None = None,
        file_format: str = "TEXT",
        filters: list[str] | None = None,
        tfevent_dir: Path | None = None,
        metric_order: list[str] | None = None,
        http_get: dict[str, Any] | None = None,
        push_bytes: int | None = None,
        max_samples: int | None = None,
    ) -> None:
        self.kind = kind
        self.names = names
        self.format = file_format
        self.filters = _compiled(filters or [DEFAULT_FILTER])
        from ._sources import SourceContext, make_source

        # What reads this kind: the katib.collectors registry (trials/_sources.py).
        self._source = make_source(SourceContext(
            kind, names, output, metrics_file if metrics_file is not None else tfevent_dir, file_format,
            self.filters, metric_order or [], http_get))
        # The server takes at most KATIB_MAX_PUSH_BYTES of a trial's pushes (POST …/metrics),
        # and reads no more of a push file a trial writes itself.
        self.push_bytes = push_bytes_limit() if push_bytes is None else push_bytes
        self.max_samples = env_limit(SAMPLES_ENV, SAMPLES) if max_samples is None else max_samples
        self._push = Tail(push_file, self.push_bytes) if push_file is not None else None
        self._stored: Counter[tuple[str, str]] = Counter()
        self._kept = 0  # samples handed on (and stored before a restart), up to max_samples
        self._rest = _Rest()  # past max_samples: what the trial's observation needs of the rest
        self.notes: list[str] = []  # the limits this trial's metrics reached, said once each
        # Metric -> the time of its newest value, where that value read as a number and was
        # none (nan, inf): not stored, but its latest is no number (MetricReducer.not_a_number).
        self.not_numbers: dict[str, float] = {}

    def skip(self, stored: Iterable[tuple[str, str]]) -> None:
        """``(metric, value)`` samples already stored. A restarted controller that follows
        on a running trial reads its output from the start again; one match of each of
        these is dropped, so nothing is stored twice and nothing not stored is lost."""
        held = self._stored.total()
        self._stored.update(stored)
        self._kept += self._stored.total() - held

    @property
    def filter_patterns(self) -> list[str]:
        return [f.pattern for f in self.filters]

    def collect(self, final: bool = False) -> list[Sample]:
        """New samples since the last call; ``final`` also reads an unterminated last line,
        and reads each file to its end (as it was when the read began).

        A file is read a piece at a time (``Tail``), each piece parsed before the next, so
        what a call holds is a piece's lines and the samples it hands on: at most
        ``max_samples`` (``KATIB_MAX_TRIAL_SAMPLES``) of a trial in all; of the ones after,
        each metric's min, max and latest, handed on by the final call, so the trial's
        observation is what all its samples make it. ``notes`` says which limit was hit."""
        out: list[Sample] = []
        pieces = _Pieces()
        token = _PIECES.set(pieces)
        try:
            while True:  # the source's files (what a Tail reads), a piece at a time
                pieces.more = False
                self._take(self._source.read(final), out)
                if not pieces.more:
                    break
            while self._push is not None:
                self._take(parse_json(self._push.read(final), self.names, keep_text=True), out)
                if not self._push.more:
                    break
        finally:
            _PIECES.reset(token)
        for note in getattr(self._source, "notes", ()):  # a plugin source may not say
            self._note(note)
        if self._push is not None and self._push.capped:
            self._note(f"the trial's push file holds more than {self.push_bytes} bytes: the server read its "
                       f"first {self.push_bytes} bytes of metrics, the rest was not recorded "
                       f"(the server's limit of pushed metrics per trial; raise it with {PUSH_BYTES_ENV})")
        if final and self._rest.dropped:
            out += self._rest.samples()
            self._rest = _Rest()  # handed on once
        return out

    def _take(self, samples: list[Sample], out: list[Sample]) -> None:
        # Every source's values pass here: empty text and what reads as a number and is none
        # (nan, inf, 1e400: a Prometheus NaN, a TensorFlow event's, a JSON file's string)
        # are no result, and are not stored.
        kept = []
        for x in samples:
            if _text(x.value) is not None:
                kept.append(x)
                self.not_numbers.pop(x.metric, None)
            elif x.value is not None and not isinstance(x.value, bool):  # a diverged run's nan (Katib's
                self.not_numbers[x.metric] = x.time                        # default filter reads it as '')
        samples = kept
        if self._stored:
            samples = [x for x in samples if not self._seen(x)]
        room = max(self.max_samples - self._kept, 0)
        if len(samples) > room:
            for s in samples[room:]:
                self._rest.add(s)
            del samples[room:]
            self._note(f"the trial reported more than {self.max_samples} metric values: the first "
                       f"{self.max_samples} are stored, and of the rest each metric's min, max and latest "
                       f"(its observation counts them all; the server's limit, raise it with {SAMPLES_ENV})")
        self._kept += len(samples)
        out += samples

    def _note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    def _seen(self, sample: Sample) -> bool:
        key = (sample.metric, sample.value)
        if self._stored[key] <= 0:
            return False
        self._stored[key] -= 1
        if not self._stored[key]:
            del self._stored[key]
        return True
