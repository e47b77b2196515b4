"""Every entry point this installation registers, read once per process.

``importlib.metadata.entry_points(group=...)`` reads the metadata of every installed
distribution on each call (10 to 20 ms with a few hundred installed); the algorithm,
executor and collector registries each asked for their group on every `katib run`. One
read serves them all. A package installed while a process runs is seen by the next one
(``forget`` reads again: tests that install one on ``sys.path``).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoints, entry_points


@cache
def _every() -> EntryPoints:
    found = entry_points()
    if isinstance(found, EntryPoints):  # Python 3.12 on
        return found
    return EntryPoints(ep for group in found.groups for ep in found.select(group=group))  # 3.11: SelectableGroups


def entry_points_in(group: str, name: str | None = None) -> EntryPoints:
    """The entry points of ``group`` (of that ``name``), in the order the installation lists them."""
    return _every().select(group=group) if name is None else _every().select(group=group, name=name)


def forget() -> None:
    """Read the installation's entry points again on the next call."""
    _every.cache_clear()
