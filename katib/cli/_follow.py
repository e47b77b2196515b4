"""``katib --server URL run|resume``: submit to (or resume on) a katib server and follow the
experiment there until it ends, printing what ``katib run`` prints here, with its exit codes."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from katib.cli import _api
from katib.cli._app import EXIT_INTERRUPTED, Remote, UnreadableInput, _read_experiments, err, out
from katib.errors import KatibError

_FINAL = ("Succeeded", "Failed", "Killed", "EarlyStopped", "MetricsUnavailable")


class _Seen:
    """What ``_Progress`` reads of a run (lines, or the live table in a terminal), from the
    server's objects: the experiment's name, budget and parameters, its trials, the metrics
    and their strategies, the best value so far."""

    def update(self, rec: Any, trials: list[Any]) -> None:
        from katib import views

        spec = rec.spec.get("spec") or {}
        objective = spec.get("objective") or {}
        self.rec = rec
        self.strategies = views.strategies_of(rec)
        self.objective = objective.get("objectiveMetricName", "")
        self.names = [self.objective, *objective.get("additionalMetricNames", [])]
        self.trials = {t.name: t for t in trials}
        self.reducers: dict[str, Any] = {}  # the server's observations are already reduced
        self.exp = SimpleNamespace(name=rec.name, spec=SimpleNamespace(
            max_trial_count=spec.get("maxTrialCount"),
            parameters=[SimpleNamespace(name=p.get("name")) for p in spec.get("parameters") or []]))

    def _best(self) -> float | None:
        from katib import views

        best = self.rec.status.best
        if best is None:
            return None
        metrics = best.metrics()
        try:
            return float(views.shown_value(metrics, self.objective, self.strategies))
        except (TypeError, ValueError):
            return None


def submit(remote: Remote, file: Path, configmaps: str | None, tick: float) -> int:
    """Create the experiment of ``file`` on the server and follow it to its end."""
    from katib.cli._run import _with_configmap

    docs = _read_experiments(file)
    if len(docs) > 1:
        raise UnreadableInput(f"{file}: holds {len(docs)} experiments; `katib run` takes one (invalid input)")
    doc = _with_configmap(docs[0], configmaps)
    meta = (doc.get("metadata") or {}) if isinstance(doc, dict) else {}
    namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
    c = _api.client(remote)
    # As katib run here: the same file again resumes it, a raised budget restarts it.
    obj, action = c.apply_experiment(doc, namespace)
    name = obj["metadata"]["name"]
    verb = {"unchanged": "already finished"}.get(action, action)
    out.print(f"experiment.kubeflow.org/{name} {verb} on {remote.url}", highlight=False)
    return follow(remote, c, name, namespace, tick)


def resume(remote: Remote, name: str, namespace: str | None, tick: float) -> int:
    """Resume the experiment on the server and follow it to its end."""
    c = _api.client(remote)
    rec, active, _ = _api.experiment(c, remote, name, namespace)
    if not active:
        answer = c.resume_experiment(name, rec.namespace)
        if not answer.get("running") and answer.get("message"):
            raise KatibError(f"experiment {name} did not resume on {remote.url}: {answer['message']}")
    out.print(f"experiment.kubeflow.org/{name} {'resumed' if not active else 'already running'} on {remote.url}",
              highlight=False)
    return follow(remote, c, name, rec.namespace, tick)


def follow(remote: Remote, c: Any, name: str, namespace: str, tick: float) -> int:
    """Print each trial as it starts and ends, then the summary ``katib run`` prints; exit
    130 when the experiment stops on the server before its end (``katib stop``) or on
    Ctrl-C here (the server runs on)."""
    from katib.cli._run import _Progress, _summary

    progress = _Progress(live=out.is_terminal)
    try:
        if progress.live_mode:
            from rich.live import Live

            with Live(console=out, refresh_per_second=4, transient=False) as live:
                progress.live = live
                ended = _watch(remote, c, name, namespace, tick, progress)
                if progress.run is not None:
                    live.update(progress._table())
        else:
            ended = _watch(remote, c, name, namespace, tick, progress)
    except KeyboardInterrupt:
        err.print(f"interrupted: experiment {name} runs on on {remote.url}; "
                  f"`{_api.hint(remote, ['stop'], name, namespace)}` stops it", highlight=False, markup=False)
        return EXIT_INTERRUPTED
    if ended is None:
        err.print(f"stopped on the server: no controller runs it; "
                  f"`{_api.hint(remote, ['resume'], name, namespace)}` carries on", highlight=False, markup=False)
        return EXIT_INTERRUPTED
    return _summary(*ended)


def _watch(remote: Remote, c: Any, name: str, namespace: str, tick: float,
           progress: Any) -> tuple[Any, list[Any]] | None:
    """Poll until the experiment ends (its record and trials) or stops on the server (None)."""
    from katib import views

    seen: dict[str, str] = {}
    run = _Seen()
    idle = 0
    while True:
        obj = next((o for o in c.list_experiments(namespace) if o["metadata"]["name"] == name), None)
        if obj is None:
            raise KatibError(f"experiment {namespace}/{name} is no longer on {remote.url} (deleted)")
        rec, active = _api.experiment_record(obj), bool(obj.get("active"))
        trials = _api.trials(c, rec)
        run.update(rec, trials)
        progress("update", run, None)  # the live table, in a terminal
        for t in trials:
            before = seen.get(t.name)
            if t.state != "Created" and before in (None, "Created"):
                progress("launched", run, t)
            if t.state in _FINAL and before not in _FINAL:
                progress("finished", run, t)
            seen[t.name] = t.state
        if views.phase(rec) in ("Succeeded", "Failed"):
            return rec, trials
        idle = idle + 1 if views.shown_phase(rec, active) == "Stopped" else 0
        if idle >= 3:  # three looks in a row: not the moment between submit and start
            return None
        time.sleep(tick)
