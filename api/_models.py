"""Response models of our API: Katib's typed resources (``katib.spec``, ``katib.views``) and
the few objects around them. Routes declare them with ``response_model_exclude_none``, so
the wire is Katib's JSON: camelCase, unset fields left out.
"""

from __future__ import annotations

from katib.spec import ExperimentStatus, KatibModel
from katib.views import ExperimentObject


class LastFailure(KatibModel):
    """The trial that failed last, beside a failed experiment: why it failed."""

    trial: str
    state: str
    reason: str
    message: str


class ExperimentItem(ExperimentObject):
    """An experiment in the viewer's list, with what the viewer may offer for it."""

    active: bool
    stoppable: bool
    resumable: bool
    last_failure: LastFailure | None = None


class ExperimentList(KatibModel):
    items: list[ExperimentItem]
    read_only: bool
    metadata: dict[str, str] | None = None  # {"continue": the next page's token} while more follow


class ExperimentStatusAnswer(KatibModel):
    """An experiment's status, with whether a controller of this server runs it now."""

    status: ExperimentStatus
    running: bool
    completed: bool
    phase: str


class KubeExperimentList(KatibModel):
    """Kubernetes' ``ExperimentList``."""

    api_version: str
    kind: str
    metadata: dict[str, str]
    items: list[ExperimentObject]


class ControllerAnswer(KatibModel):
    """Whether the experiment's controller runs now (``message``: why one that was started
    is not running)."""

    running: bool
    message: str | None = None


class TrialStopping(KatibModel):
    trial: str
    stopping: bool


class MetricValue(KatibModel):
    name: str
    value: str


class MetricLogEntry(KatibModel):
    """One reported value with its time (RFC 3339), as Katib's ``MetricLog``."""

    time_stamp: str | None
    metric: MetricValue


class ObservationLog(KatibModel):
    metric_logs: list[MetricLogEntry]
    # "continue": the next page's token while more follow; "resume": the token of what
    # follows this answer (what was reported since); "earlierItemCount" (with ?tail=).
    metadata: dict[str, str | int] | None = None
