"""What pip installs: the README's install commands bring what the README then uses, and
the pins take every patch release of a supported line."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.conftest import REPO

requirements = pytest.importorskip("packaging.requirements")

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _installed_by(extras: str) -> set[str]:
    """The distributions ``pip install -e '.[extras]'`` brings (our own extras expanded)."""
    names: set[str] = set()
    todo = [*PROJECT["dependencies"], *[d for e in extras.split(",") if e for d in PROJECT["optional-dependencies"][e]]]
    while todo:
        req = requirements.Requirement(todo.pop())
        if req.name == "katib":
            todo += [d for e in req.extras for d in PROJECT["optional-dependencies"][e]]
        else:
            names.add(req.name.lower())
    return names


def test_every_readme_install_brings_the_http_client():
    """The README's client example says KatibClient(url=...) for a server: httpx must come
    with whichever install the README shows."""
    readme = (REPO / "README.md").read_text()
    installs = set(re.findall(r"pip install -e '\.\[([a-z,]+)\]'", readme))
    assert {"examples", "server"} <= installs
    for extras in installs:
        assert "httpx" in _installed_by(extras), extras


def _spec(extra: str, name: str):
    reqs = [requirements.Requirement(d) for d in PROJECT["optional-dependencies"][extra]]
    return next(r for r in reqs if r.name == name).specifier


@pytest.mark.parametrize(("extra", "name", "inside", "outside"), [
    ("kubernetes", "kubernetes", ["30.1.0", "35.0.0", "35.0.1"], ["29.0.0", "36.0.0"]),
    ("torch", "torch", ["2.4.0", "2.13.0", "2.13.1", "2.14.0"], ["2.3.1"]),
])
def test_pins_are_ranges(extra, name, inside, outside):
    spec = _spec(extra, name)
    assert all(spec.contains(v) for v in inside), (spec, inside)
    assert not any(spec.contains(v) for v in outside), (spec, outside)
