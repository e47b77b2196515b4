"""Metrics collector kinds by name: what reads a trial's samples for
``metricsCollectorSpec.collector.kind``, a registry with entry points as executors are.

The ``katib.collectors`` entry-point group maps a kind to a ``Source`` subclass
(``KIND = "package.module:Class"``); the built-ins are registered there too (pyproject.toml,
and the same list below for a source checkout). A kind nobody registered reads nothing but
the values pushed with ``katib.report_metrics`` (``Collector`` reads those whatever the kind,
as Katib's DB manager takes them). Nothing is imported until a kind is used.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from katib.errors import KatibError

from ._collector import DEFAULT_FILTER, Sample, Tail, parse_katib_json, parse_text, split_reported

COLLECTORS_GROUP = "katib.collectors"

BUILTIN_SOURCES: dict[str, tuple[str, str | None]] = {
    "StdOut": ("trials._sources:StdOutSource", None),
    "File": ("trials._sources:FileSource", None),
    "TensorFlowEvent": ("trials._sources:TFEventSource", "tfevent"),
    "PrometheusMetric": ("trials._prometheus:PrometheusSource", None),
    "Push": ("trials._sources:PushSource", None),
    "Custom": ("trials._sources:CustomSource", "grpc"),
}


@dataclass(frozen=True)
class SourceContext:
    """What a source needs to know of its trial: the metric names (``metric_order``: the
    objective first), the trial's output file, the path the collector spec names (mapped
    into the trial's folder: a file, or a directory of event files), the File format and
    the TEXT filters."""

    kind: str
    names: set[str]
    output: Path
    path: Path | None = None
    file_format: str = "TEXT"
    filters: list[Any] = field(default_factory=list)  # compiled patterns (re's or RE2's: Collector)
    metric_order: list[str] = field(default_factory=list)
    http_get: dict[str, Any] | None = None  # PrometheusMetric: the spec's source.httpGet


class Source(ABC):
    """Reads one trial's samples of one collector kind, incrementally."""

    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx

    @property
    def notes(self) -> list[str]:
        """The limits this source reached reading the trial's files, said once each (the
        trial's condition message says them: ``Collector.notes``)."""
        return []

    @abstractmethod
    def read(self, final: bool = False) -> list[Sample]:
        """The samples written since the last call; ``final``: the trial has ended (read
        an unterminated last line too)."""


class StdOutSource(Source):
    """The trial's output, parsed as TEXT with the ``metricsFormat`` filters; with Katib's
    default filter, the Kubeflow SDK's ``report_metrics`` lines (JSON objects) too."""

    def __init__(self, ctx: SourceContext) -> None:
        super().__init__(ctx)
        self._tail = Tail(ctx.output)

    def read(self, final: bool = False) -> list[Sample]:
        lines = self._tail.read(final)
        if [f.pattern for f in self.ctx.filters] != [DEFAULT_FILTER]:
            return parse_text(lines, self.ctx.names, self.ctx.filters, marks=True)
        # The default collector also reads the Kubeflow SDK's report_metrics lines.
        reported, rest = split_reported(lines, self.ctx.names)
        return reported + parse_text(rest, self.ctx.names, self.ctx.filters, marks=True)


class FileSource(Source):
    """A file the trial writes: TEXT (the filters) or JSON (Katib's JSON lines)."""

    def __init__(self, ctx: SourceContext) -> None:
        super().__init__(ctx)
        self._tail = Tail(ctx.path) if ctx.path is not None else None

    def read(self, final: bool = False) -> list[Sample]:
        if self._tail is None:
            return []
        lines = self._tail.read(final)
        if self.ctx.file_format == "JSON":
            return parse_katib_json(lines, self.ctx.names)
        return parse_text(lines, self.ctx.names, self.ctx.filters, marks=True)


class TFEventSource(Source):
    """TensorBoard event files under a directory (``trials._tfevent``)."""

    def __init__(self, ctx: SourceContext) -> None:
        super().__init__(ctx)
        self._reader: Any = None
        if ctx.path is not None:
            from ._tfevent import TFEventReader

            self._reader = TFEventReader(ctx.path, ctx.metric_order or sorted(ctx.names))

    def read(self, final: bool = False) -> list[Sample]:
        return self._reader.read(final) if self._reader is not None else []

    @property
    def notes(self) -> list[str]:
        """The limits the event folder reached (``TFEventReader.notes``)."""
        return list(self._reader.notes) if self._reader is not None else []


class PushSource(Source):
    """Only the pushed values, which ``Collector`` reads for every kind."""

    def read(self, final: bool = False) -> list[Sample]:
        return []


class CustomSource(PushSource):
    """Katib's ``Custom`` collector: the user's collector container runs beside the trial
    (``TrialJob.custom_collector``; the local and Ray executors run its command) and reports through
    the DBManager's ``ReportObservationLog``, which the trial reads as pushed values."""


@cache
def _sources() -> dict[str, Any]:
    from katib._entry_points import entry_points_in

    from ._registry import Plugin, _entry_points

    builtin = {k: Plugin(k, target, extra) for k, (target, extra) in BUILTIN_SOURCES.items()}
    sources = {**_entry_points(COLLECTORS_GROUP), **builtin}
    # Custom is the kind Katib leaves to its users: a package's own Custom source replaces
    # ours, whichever of the two entry points the installation lists first.
    for ep in entry_points_in(COLLECTORS_GROUP, "Custom"):
        if ep.value != BUILTIN_SOURCES["Custom"][0]:
            sources["Custom"] = Plugin("Custom", ep.value, None, ep.dist.name if ep.dist else None)
    return sources


def collector_kinds() -> list[str]:
    """Every collector kind this installation reads: the built-ins first (no imports)."""
    return [*BUILTIN_SOURCES, *sorted(set(_sources()) - set(BUILTIN_SOURCES))]


def make_source(ctx: SourceContext) -> Source:
    """The source registered for ``ctx.kind`` (``PushSource`` for a kind nobody registered).
    ``KatibError`` names the kind and what to install when its code is missing."""
    plugin = _sources().get(ctx.kind)
    if plugin is None:
        return PushSource(ctx)
    module, _, attr = plugin.target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise KatibError(f"the {ctx.kind} metrics collector needs what is not installed "
                         f"({exc.name or exc}): {plugin.install}") from None
    except AttributeError:
        raise KatibError(f"the {ctx.kind} metrics collector: {plugin.target} does not exist") from None
    if not (isinstance(cls, type) and issubclass(cls, Source)):
        raise KatibError(f"the {ctx.kind} metrics collector: {plugin.target} is not a trials.Source")
    return cls(ctx)


__all__ = ["COLLECTORS_GROUP", "Source", "SourceContext", "collector_kinds", "make_source"]
