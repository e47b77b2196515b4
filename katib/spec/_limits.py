"""The server's limits on an experiment: how large a spec may be before a run cannot survive it.

Each bound has a default and an environment variable an operator sets to change it
(``KATIB_MAX_PARALLEL_TRIALS=5000 katib server``); validation reads them when it runs, and
each error names the variable that raises its limit. Lengths that are the store's column
widths are not settable: a longer value would be refused by PostgreSQL in the middle of a run.

>>> Limits().parallel_trials
1000
>>> Limits.from_env({"KATIB_MAX_REPLICAS": "128"}).replicas
128
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

# The store's varchar widths (katib/store/_schema.py; tests keep them equal).
METRIC_NAME_MAX = 255  # observations.metric_name


def _env(name: str) -> dict[str, str]:
    return {"env": name}


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what one experiment may ask for."""

    parallel_trials: int = field(default=1000, metadata=_env("KATIB_MAX_PARALLEL_TRIALS"))
    """spec.parallelTrialCount: trials (processes, actors, pods) running at once."""
    trials: int = field(default=10_000_000, metadata=_env("KATIB_MAX_TRIALS"))
    """spec.maxTrialCount and spec.maxFailedTrialCount."""
    replicas: int = field(default=64, metadata=_env("KATIB_MAX_REPLICAS"))
    """Replicas of one replica spec of a training job, and a Job's parallelism and completions."""
    list_values: int = field(default=10_000, metadata=_env("KATIB_MAX_LIST_VALUES"))
    """Values of one categorical or discrete parameter."""
    parameters: int = field(default=1000, metadata=_env("KATIB_MAX_PARAMETERS"))
    """Parameters of the search space."""
    nas_layers: int = field(default=256, metadata=_env("KATIB_MAX_NAS_LAYERS"))
    """spec.nasConfig.graphConfig.numLayers (an ENAS architecture grows with its square)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The defaults, with each limit whose variable is set in ``environ`` (``os.environ``)."""
        environ = os.environ if environ is None else environ
        changes: dict[str, int] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            text = environ.get(name)
            if text is None:
                continue
            try:
                value = int(text.strip())
            except ValueError:
                value = 0
            if value <= 0:
                raise ValueError(f"{name} must be a positive integer (got {text!r})")
            changes[f.name] = value
        return replace(cls(), **changes)

    @classmethod
    def current(cls) -> Limits:
        """``from_env()`` as a trial's launch and the server's views of stored trials read
        it: where a variable is bad (validation names it, refusing every experiment until
        it is fixed) the defaults, not an error in the middle of a run or a list."""
        try:
            return cls.from_env()
        except ValueError:
            return cls()

    def env_var(self, limit: str) -> str:
        """The environment variable that sets ``limit`` (a field name)."""
        return str(next(f for f in fields(self) if f.name == limit).metadata["env"])

    def exceeded(self, limit: str, value: int, what: str = "") -> str | None:
        """The message when ``value`` is above ``limit`` (a field name), else None.

        ``what`` names the counted things (``"values"``): "must have at most N values".
        """
        bound = getattr(self, limit)
        if value <= bound:
            return None
        rule = f"must have at most {bound} {what}, not {value}" if what else f"must be at most {bound}"
        return f"{rule} (the server's limit; raise it with {self.env_var(limit)})"


def too_long(value: str, longest: int, column: str) -> str | None:
    """The message when ``value`` is longer than the store's ``column`` holds, else None."""
    if len(value) <= longest:
        return None
    return f"must be at most {longest} characters (got {len(value)}), the length of the store's {column} column"


__all__ = ["METRIC_NAME_MAX", "Limits", "too_long"]
