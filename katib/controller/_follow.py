"""Steps 1 and 2 of the reconcile step: follow running trials, read their metrics, early-stop
the ones the stopper says to, and set the condition of each trial that ended."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from katib.spec import Experiment
from katib.store import ObservationRow, TrialRecord
from suggestion import Curve, EarlyStopper
from trials import Collector, Executor, RunState

from ._adopt import STOPPING
from ._status import (
    LAST_OUTPUT,
    TRIAL_REASONS,
    MetricReducer,
    condition_of,
    failed_condition,
    mark_trial,
    metric_value,
    numbers,
    reported,
    set_condition,
)

if TYPE_CHECKING:
    from ._controller import Controller
    from ._tally import Tally

log = logging.getLogger("katib.controller")
LOG_TAIL_BYTES = 64 << 10  # what a failed trial's message reads of the end of its log
# A log's colours and cursor moves (CSI and OSC sequences), and the control characters
# left: a message is shown on terminals (katib get, describe, kubectl), which act on them.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?")
_CONTROLS = dict.fromkeys([*range(0x09), *range(0x0A, 0x20), 0x7F, *range(0x80, 0xA0)])


class Following:
    """ExperimentRun's steps 1 and 2 (a mixin: the attributes below are ExperimentRun's)."""

    ctl: Controller
    exp: Experiment
    executor: Executor
    trials: dict[str, TrialRecord]
    tally: Tally
    names: list[str]
    objective: str
    strategies: dict[str, str]
    reducers: dict[str, MetricReducer]
    collectors: dict[str, Collector]
    stopper: EarlyStopper | None
    curves: dict[str, list[float]]
    _stopping: dict[str, str]
    _decided: dict[str, int]
    _samples: list[tuple[int, ObservationRow]]
    _collected_at: float

    # ExperimentRun's and Launching's
    _touch: Callable[[TrialRecord], None]
    _flush: Callable[..., None]
    _emit: Callable[[str, TrialRecord | None], None]
    _settle: Callable[[], None]
    _trial_dir: Callable[[TrialRecord], Path]
    _path_map: Callable[[TrialRecord], dict[str, str]]

    def _follow_running(self) -> None:
        """Notice ended trials (every wake) and read running ones' metrics (every tick)."""
        now = time.monotonic()
        read_metrics = now - self._collected_at >= self.ctl.tick
        if read_metrics:
            self._collected_at = now
        for t in list(self.tally.active.values()):  # not every trial: the active ones
            if t.state != "Running":
                continue
            state = self.executor.poll(t.handle or {})
            if state.finished:
                self._finish(t, state)
                continue
            self._note_waiting(t, state)
            if read_metrics:
                collector = self._collector(t)
                noted = len(collector.notes)
                samples = collector.collect()
                self._note_limits(t, collector, noted)
                if samples:
                    self._reduce(t, samples)
                    self._samples += [(t.id, ObservationRow(*x)) for x in samples]
                    self._emit("metrics", t)
                    if self._extend_curve(t, samples):
                        self._consider_stopping(t)

    def _note_waiting(self, t: TrialRecord, state: RunState) -> None:
        """A running trial's Running condition says what it waits for, as its executor
        reports it (Kubernetes: Kueue's admission, a GPU), and says it runs once it does."""
        reason, message = (state.reason, state.message) if state.reason else TRIAL_REASONS["Running"]
        cond = condition_of(t.conditions, "Running")
        if cond is not None and (cond.reason, cond.message) == (reason, message):
            return
        if cond is not None and not state.reason and cond.reason == reason:
            return  # running, as it says already (in its own words: "followed on by a restarted controller")
        set_condition(t.conditions, "Running", "True", reason, message)
        self._touch(t)
        self._emit("waiting" if state.reason else "running", t)

    def _extend_curve(self, t: TrialRecord, samples: list[Any]) -> bool:
        values = numbers(x.value for x in samples if x.metric == self.objective)
        if values:
            self.curves.setdefault(t.name, []).extend(values)
        return bool(values)

    def _other_curves(self, name: str) -> list[Curve]:
        return [Curve(o.name, self.curves.get(o.name, []), o.state == "Succeeded", ended=o.completion_time)
                for o in self.trials.values() if o.name != name and o.state != "Created"]

    def _stopping_rules(self, t: TrialRecord) -> None:
        """Fix a new trial's rules (Katib's ``Trial.spec.earlyStoppingRules``), stored with it."""
        if self.stopper is not None:
            t.early_stopping_rules = self.stopper.rules(self.exp, t.created_at, self._other_curves(t.name)) or None

    def _consider_stopping(self, t: TrialRecord) -> None:
        if self.stopper is None or t.name in self._stopping or not t.handle:
            return
        others = self._other_curves(t.name)
        curve = self.curves.get(t.name, [])
        reason = self.stopper.should_stop(
            self.exp, Curve(t.name, curve, False, self._decided.get(t.name, 0), created=t.created_at or None), others)
        self._decided[t.name] = len(curve)
        if reason:
            self._stop_early(t, reason)

    def _stop_early(self, t: TrialRecord, reason: str) -> None:
        assert t.handle is not None
        self._stopping[t.name] = reason
        # Stored before the stop is sent: a controller that dies in between leaves the
        # next one a trial it knows was stopped early, not one that failed or is gone.
        t.handle = {**t.handle, STOPPING: reason}
        self._touch(t)
        self._flush()
        self.executor.stop(t.handle)
        self._emit("stopping", t)

    def _collector(self, t: TrialRecord) -> Collector:
        collector = self.collectors.get(t.name)
        if collector is None:
            mc = self.exp.spec.metrics_collector_spec
            kind = mc.collector.kind if mc and mc.collector and mc.collector.kind else "StdOut"
            fsp = mc.source.file_system_path if mc and mc.source else None
            filters = mc.source.filter.metrics_format if mc and mc.source and mc.source.filter else None
            trial_dir = self._trial_dir(t)
            collector = Collector(
                kind=kind, names=set(self.names), output=trial_dir / "trial.log",
                push_file=trial_dir / "push.jsonl",
                metrics_file=Path(self._path_map(t)[fsp.path]) if kind == "File" and fsp and fsp.path else None,
                file_format=(fsp.format or "TEXT") if fsp else "TEXT",
                filters=filters or None,
                tfevent_dir=Path(self._path_map(t)[fsp.path]) if kind == "TensorFlowEvent" and fsp and fsp.path else None,
                metric_order=list(self.names),
                http_get=dict(mc.source.http_get) if kind == "PrometheusMetric" and mc and mc.source and mc.source.http_get
                else None,
            )
            self.collectors[t.name] = collector
        return collector

    def _reduce(self, t: TrialRecord, samples: list[Any]) -> None:
        reducer = self.reducers.setdefault(t.name, MetricReducer())
        for s in samples:
            reducer.add(s.time, s.metric, s.value)
        collector = self.collectors.get(t.name)
        for name, when in (collector.not_numbers if collector is not None else {}).items():
            reducer.not_a_number(name, when)

    def _finish(self, t: TrialRecord, state: RunState) -> None:
        collector = self._collector(t)
        noted = len(collector.notes)
        samples = collector.collect(final=True)  # to the files' ends, a piece at a time
        self._note_limits(t, collector, noted)
        self._reduce(t, samples)
        self._extend_curve(t, samples)
        reducer = self.reducers.get(t.name, MetricReducer())
        t.observation = reducer.observation(self.names)
        t.objective = metric_value(t.observation, self.objective, self.strategies[self.objective])
        t.completion_time = time.time()
        if t.name in self._stopping:
            mark_trial(t, "EarlyStopped", self._stopping.pop(t.name))
        elif state.reason == "Killed":
            mark_trial(t, "Killed", state.message)
        elif state.reason == "LaunchFailed":  # its program could not start (reported after the launch)
            mark_trial(t, "Failed", state.message, reason="LaunchFailed")
        elif state.succeeded:
            if t.objective is not None or reported(t.observation, self.objective):
                mark_trial(t, "Succeeded")
            else:
                mark_trial(t, "MetricsUnavailable", self._no_metrics_hint(t, collector))
        else:
            job_reason = state.reason if state.job_reason is None else state.job_reason
            reason, message = failed_condition(job_reason, self._failure_message(t, state))
            mark_trial(t, "Failed", message, reason=reason)
        cond = condition_of(t.conditions, t.state)
        if collector.notes and cond is not None:  # the limits its metrics reached, said where it ended
            cond.message = "; ".join([m for m in [cond.message, *collector.notes] if m])
        self._samples += [(t.id, ObservationRow(*x)) for x in samples]
        self._touch(t)
        self.collectors.pop(t.name, None)
        self.reducers.pop(t.name, None)
        self._settle()  # the best a listener reads (katib run's line) counts this trial
        self._emit("finished", t)

    def _note_limits(self, t: TrialRecord, collector: Collector, noted: int) -> None:
        """Log the limits the trial's metrics reached since ``noted`` (once each)."""
        for note in collector.notes[noted:]:
            log.warning("experiment %s/%s, trial %s: %s", self.exp.namespace, self.exp.name, t.name, note)

    def _log_tail(self, t: TrialRecord, lines: int = 5) -> str:
        """The last ``lines`` lines of the trial's log that are not blank (of its last
        ``LOG_TAIL_BYTES``: a trial's log may be gigabytes)."""
        try:
            with (self._trial_dir(t) / "trial.log").open("rb") as f:
                start = max(f.seek(0, 2) - LOG_TAIL_BYTES, 0)
                f.seek(start)
                data = f.read(LOG_TAIL_BYTES)
        except OSError:
            return ""
        if start:
            data = data[data.find(b"\n") + 1:]  # from the first whole line
        text = _ESCAPES.sub("", data.decode("utf-8", errors="replace"))
        tail = [kept for line in text.splitlines() if (kept := line.translate(_CONTROLS)).strip()][-lines:]
        return " | ".join(tail)

    def _failure_message(self, t: TrialRecord, state: RunState) -> str:
        tail = self._log_tail(t)
        return f"{state.message}" + (f"{LAST_OUTPUT}{tail}" if tail else "")

    def _no_metrics_hint(self, t: TrialRecord, collector: Collector) -> str:
        kind = collector.kind
        if kind == "File":
            where = f"the file {self._metrics_path_hint()}"
        elif kind == "TensorFlowEvent":
            where = f"the event files under {self._metrics_path_hint()}"
        elif kind == "Push":
            where = "katib.report_metrics() calls"
        else:
            where = "the trial's output"
        algorithm = self.exp.spec.algorithm.algorithm_name if self.exp.spec.algorithm else ""
        # DARTS reports a text objective, its genotype: the example says what such a line is.
        example = f"{self.objective}=Genotype(normal=[...], ...)" if algorithm == "darts" else f"{self.objective}=0.93"
        tail = self._log_tail(t, 3)
        if self.objective in collector.not_numbers and numbers((t.observation or {}).get(self.objective, {}).values()):
            # It reported numbers, then one that is none (a diverged run): its latest is no number.
            hint = (f"the objective metric {self.objective!r} ended with a value that is not a number (nan, inf), "
                    f"and its strategy ({self.strategies[self.objective]}) reads that last value")
            return hint + (f"{LAST_OUTPUT}{tail}" if tail else "")
        hint = (
            f"the objective metric {self.objective!r} was never reported: the {kind} collector read {where}"
            + (f" with filters {collector.filter_patterns}, expecting lines such as {example!r}"
               if kind not in ("Push", "TensorFlowEvent") else "")
        )
        return hint + (f"{LAST_OUTPUT}{tail}" if tail else "")

    def _metrics_path_hint(self) -> str:
        mc = self.exp.spec.metrics_collector_spec
        fsp = mc.source.file_system_path if mc and mc.source else None
        return fsp.path if fsp and fsp.path else "(none)"
