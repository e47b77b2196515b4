"""``KatibClient.tune``'s loop around the client: build the experiment for a function,
handle a re-run cell (``if_exists``), watch it to its end with a progress line, and hand
back an ``ExperimentResult``.

The progress line is rich's: a live line in a terminal, and in Jupyter one output that is
updated in place (an IPython display handle showing rich's HTML, so no widget library is
needed).
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._function import ANNOTATION, searched, ship
from ._results import ExperimentResult
from .errors import ConflictError, ExperimentFailedError, KatibError, NoResultError, NotFoundError
from .names import private_dirs

if TYPE_CHECKING:
    from .client import KatibClient

IF_EXISTS = ("error", "reuse", "replace")
# What must match for a re-run cell to reuse an experiment: the same search, the same goal.
_SAME = ("parameters", "objective", "algorithm")


# A metric name Katib's default StdOut filter reads whole: its \w is RE2's, ASCII only.
STDOUT_NAME = re.compile(r"[A-Za-z0-9_|-]+")


def experiment_doc(name: str, objective: Callable[..., Any], parameters: dict[str, Any],
                   metric: str, collector: str, payload_dir: Path | None, **fields: Any) -> tuple[dict[str, Any], Any]:
    """The experiment that runs ``objective`` in each trial, and the shipment (whose pickle
    ``create`` writes when it does not go inline)."""
    additional_names = list(fields.get("additional_metric_names") or [])
    if collector == "StdOut":
        for metric_name in [metric, *additional_names]:
            if not STDOUT_NAME.fullmatch(metric_name):
                raise ValueError(f"metric name {metric_name!r} cannot be read from a trial's output: Katib's StdOut filter reads "
                                 "names of letters, digits, '_', '-' and '|' ('val/acc=0.9' reads as 'acc'); rename it, "
                                 "or tune(..., metrics_collector='Push')")
    strategies = fields.pop("metric_strategies", None)
    unknown = sorted(set(strategies or {}) - {metric, *additional_names})
    if unknown:
        raise ValueError(f"metric_strategies names {', '.join(map(repr, unknown))}, which is neither the objective "
                         f"metric ({metric!r}) nor one of additional_metric_names")
    shipment = ship(objective, parameters, metric, collector, payload_dir)
    parameters = searched(parameters)[0]
    container: dict[str, Any] = {"name": "training-container", "image": fields.pop("base_image") or "python:3.11",
                                 "command": shipment.command}
    resources, env = fields.pop("resources_per_trial"), fields.pop("env_per_trial")
    if resources:
        container["resources"] = {"limits": {k: str(v) for k, v in resources.items()}}
    if env:
        container["env"] = [{"name": k, "value": str(v)} for k, v in env.items()]
    doc: dict[str, Any] = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": name, "annotations": {ANNOTATION: shipment.annotation}},
        "spec": {
            "objective": {"type": fields.pop("objective_type"), "objectiveMetricName": metric},
            "algorithm": {"algorithmName": fields.pop("algorithm_name"),
                          "algorithmSettings": [{"name": k, "value": str(v)}
                                                for k, v in (fields.pop("algorithm_settings") or {}).items()]},
            "parameters": [{"name": p, **spec} for p, spec in parameters.items()],
            "metricsCollectorSpec": {"collector": {"kind": collector}},
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "trialParameters": [{"name": p, "reference": p} for p in parameters],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "restartPolicy": "Never", "containers": [container]}}}},
            },
        },
    }
    spec = doc["spec"]
    max_trials, parallel = fields.pop("max_trial_count"), fields.pop("parallel_trial_count")
    if parallel is None and max_trials is not None:
        parallel = min(3, max_trials)  # Katib's default, within the budget
    goal, additional = fields.pop("objective_goal"), fields.pop("additional_metric_names")
    if goal is not None:
        spec["objective"]["goal"] = goal
    if additional:
        spec["objective"]["additionalMetricNames"] = additional
    # What the function returns is its result, printed (or pushed) last: each metric is read
    # at its latest value, as Ray Tune's and Optuna's results are, unless the caller names a
    # strategy (Katib's SDK leaves Katib's default: the objective's max or min over every
    # value the function printed, a training-progress line included).
    chosen = {m: "latest" for m in [metric, *(additional or [])]}
    chosen.update(strategies or {})
    spec["objective"]["metricStrategies"] = [{"name": k, "value": v} for k, v in chosen.items()]
    for key, value in (("maxTrialCount", max_trials), ("parallelTrialCount", parallel),
                       ("maxFailedTrialCount", fields.pop("max_failed_trial_count"))):
        if value is not None:
            spec[key] = value
    assert not fields, fields
    return doc, shipment


def create(client: KatibClient, doc: dict[str, Any], shipment: Any, namespace: str, if_exists: str) -> str:
    """Create the experiment, or reuse or replace the one of that name; ``created`` or ``reused``."""
    if if_exists not in IF_EXISTS:
        raise ValueError(f"if_exists must be one of {', '.join(IF_EXISTS)} (got {if_exists!r})")
    name = doc["metadata"]["name"]
    try:
        existing = client.get_experiment(name, namespace)
    except NotFoundError:
        existing = None
    if existing is not None:
        if if_exists == "error":
            raise ConflictError(f"experiment {namespace}/{name} already exists: tune(..., if_exists='reuse') keeps it "
                                "and its results (and carries on if it is unfinished), if_exists='replace' deletes it "
                                "and starts again")
        if if_exists == "reuse":
            _check_same(existing, doc)
            _take_budget(client, existing, doc, namespace)
            if client._backend.idle(name, namespace):
                client.resume_experiment(name, namespace)
            return "reused"
        client.delete_experiment(name, namespace)
    if shipment.payload_file is not None:
        private_dirs(shipment.payload_file.parent)  # under the runs folder: 0700 where new
        shipment.payload_file.write_bytes(shipment.payload)
    client.create_experiment(doc, namespace)
    return "created"


def _check_same(existing: dict[str, Any], doc: dict[str, Any]) -> None:
    old, new = existing.get("spec") or {}, _defaulted(doc)
    meta = existing.get("metadata") or {}
    for key in _SAME:
        if _compared(key, old.get(key)) != _compared(key, new.get(key)):
            raise ConflictError(f"experiment {meta.get('namespace')}/{meta.get('name')} exists with another "
                                f"spec.{key}: if_exists='replace' starts it again with this one")
    if _constants(meta) != _constants(doc.get("metadata") or {}):  # what the function is given besides
        raise ConflictError(f"experiment {meta.get('namespace')}/{meta.get('name')} exists with other constant "
                            "parameters: if_exists='replace' starts it again with these")


def _compared(key: str, value: Any) -> Any:
    """What of a spec field a reuse compares: an objective without its metricStrategies (tune
    now names them; an experiment made before kept Katib's defaults, and is still the same)."""
    if key == "objective" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k != "metricStrategies"}
    return value


def _take_budget(client: KatibClient, existing: dict[str, Any], doc: dict[str, Any], namespace: str) -> None:
    """A reused experiment takes the cell's budget (more trials, another parallelism), as an
    edit of those fields would; it was kept silently, and the cell's new budget ignored. An
    experiment that cannot take it (ended, under Katib's resumePolicy Never) says so."""
    old, new = existing.get("spec") or {}, doc["spec"]
    changed = {k: new[k] for k in ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount")
               if new.get(k) is not None and new[k] != old.get(k)}
    if changed:
        client.edit_experiment_budget(doc["metadata"]["name"], namespace, max_trial_count=changed.get("maxTrialCount"),
                                      parallel_trial_count=changed.get("parallelTrialCount"),
                                      max_failed_trial_count=changed.get("maxFailedTrialCount"))


def _constants(meta: dict[str, Any]) -> Any:
    import json

    try:
        return json.loads((meta.get("annotations") or {}).get(ANNOTATION) or "{}").get("constants") or {}
    except (ValueError, AttributeError):
        return {}


def _defaulted(doc: dict[str, Any]) -> dict[str, Any]:
    """The spec as the store keeps it (Katib's defaults applied), to compare like with like."""
    from katib.spec import admit

    return admit(doc).to_dict().get("spec") or {}


def watch(client: KatibClient, name: str, namespace: str, progress: bool, timeout: float | None,
          poll: float = 0.5) -> ExperimentResult:
    """Wait for the experiment to end, showing its progress; the result. ``NoResultError``
    when it ended without a best trial; ``KeyboardInterrupt`` stops it (embedded) and
    ``if_exists='reuse'`` carries on later."""
    display = _Display(name) if progress else None
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            began = time.monotonic()
            idle = client._backend.idle(name, namespace)
            result = client.get_experiment_result(name, namespace)
            read = time.monotonic() - began  # every trial read: a second or more at thousands of trials
            if display is not None:
                display.update(result)
            if result.state in ("Succeeded", "Failed"):
                break
            if idle:
                raise KatibError(f"experiment {namespace}/{name} is unfinished but nothing runs it: "
                                 "tune(..., if_exists='reuse') or resume_experiment() carries on")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"experiment {namespace}/{name} has not ended after {timeout}s; "
                                   "get_experiment_result() reads it as it stands")
            time.sleep(max(poll, 2 * read))  # the watch takes at most a third of a core from the trials
    except KeyboardInterrupt:
        stop = getattr(getattr(client._backend, "manager", None), "stop", None)
        if stop is not None:
            stop(namespace, name)
        raise
    finally:
        if display is not None:
            display.close()
    if not result._has_best():
        from .client import _no_result

        raise _no_result(result.experiment) or NoResultError(f"experiment {namespace}/{name} has no result")
    if result.state == "Failed":  # it has a best trial, but it did not succeed: say so
        failed: dict[str, Any] = next((c for c in (result.experiment.get("status") or {}).get("conditions", [])
                       if c.get("type") == "Failed" and c.get("status") == "True"), {})
        raise ExperimentFailedError(f"experiment {namespace}/{name} failed ({failed.get('reason')}): "
                                    f"{failed.get('message')}; the error's .result holds what it got to", result)
    return result


class _Display:
    """One line that says how the experiment stands: a terminal's live line, or a Jupyter
    output updated in place."""

    def __init__(self, name: str) -> None:
        from rich.console import Console

        self.name = name
        self.console = Console(stderr=True)
        self.handle: Any = None
        self.live: Any = None
        if self.console.is_jupyter:
            import contextlib
            import warnings

            from IPython.display import display

            with warnings.catch_warnings(), contextlib.suppress(ImportError):
                warnings.simplefilter("ignore")  # Optuna's tqdm.auto warns in Jupyter without ipywidgets
                import tqdm.auto  # noqa: F401

            self.handle = display(_Html(f"tune {name}: starting", f"tune {name}: starting"), display_id=True)
        else:
            from rich.live import Live

            self.live = Live(console=self.console, refresh_per_second=4, transient=False)
            self.live.start()

    def update(self, result: ExperimentResult) -> None:
        renderable = _render(result)
        if self.handle is not None:
            self.handle.update(_Html(_html(renderable), _text(renderable)))
        elif self.live is not None:
            self.live.update(renderable, refresh=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            if not self.console.is_terminal:
                self.console.line()  # a file or pipe got the last state without its line's end


def _render(result: ExperimentResult) -> Any:
    from rich.markup import escape
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    total = int((result.experiment.get("spec") or {}).get("maxTrialCount") or 0) or None
    counts: dict[str, int] = {}
    for t in result.trials:
        counts[t.state] = counts.get(t.state, 0) + 1
    ended = sum(n for s, n in counts.items() if s not in ("Running", "Created"))
    line = Table.grid(padding=(0, 1))
    line.add_row(f"[bold]{escape(result.name)}[/]", ProgressBar(total=total, completed=ended, width=30),
                 f"{ended}/{total or '?'} trials", _counts(counts),
                 f"[dim]{result.state}[/]" if result._shown_state() == result.state else f"[red]{result._shown_state()}[/]")
    grid = Table.grid()
    grid.add_row(line)
    if result._has_best():
        best = result.best_trial
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
        value = f"{best.value:.6g}" if best.value is not None else "?"
        grid.add_row(f"best {escape(result.metric_name)}=[bold green]{value}[/] ({escape(params)})")
    return grid


def _counts(counts: dict[str, int]) -> str:
    shown = [("Running", "running", "cyan"), ("Succeeded", "succeeded", "green"), ("Failed", "failed", "red"),
             ("MetricsUnavailable", "without the metric", "red"), ("EarlyStopped", "early-stopped", "yellow"),
             ("Killed", "stopped", "yellow")]
    return ", ".join(f"[{color}]{counts[s]} {word}[/]" for s, word, color in shown if counts.get(s))


def _console(width: int = 110) -> Any:
    from rich.console import Console

    return Console(record=True, file=io.StringIO(), width=width, force_jupyter=False, force_terminal=True)


def _html(renderable: Any) -> str:
    console = _console()
    console.print(renderable)
    return console.export_html(inline_styles=True, code_format="<pre style='font-family:monospace'>{code}</pre>")


def _text(renderable: Any) -> str:
    console = _console()
    console.print(renderable)
    return console.export_text()


class _Html:
    def __init__(self, html: str, text: str) -> None:
        self.html, self.text = html, text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text
