"""``inside`` with a resolved root looks only at the parts it adds: it must answer exactly
what ``root.joinpath(*parts).resolve()`` answers, links, missing folders and files
included, and refuse the same escapes."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from katib.errors import ValidationError
from katib.names import inside


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder with plain folders, a file, links inside and outside it, and a loop."""
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "file").write_text("x")
    (tmp_path / "outside").mkdir()
    os.symlink(root / "a", root / "in-link")
    os.symlink(tmp_path / "outside", root / "out-link")
    os.symlink("a/b", root / "relative-link")
    os.symlink(root / "loop", root / "loop")
    os.symlink(root / "missing-target", root / "dangling")
    return root


COMPONENTS = ["a", "b", "file", "in-link", "out-link", "relative-link", "loop", "dangling", "missing", ".", "..", "", "a/b"]


def _expected(root: Path, parts: tuple[str, ...]) -> Path | None:
    try:
        path = root.joinpath(*parts).resolve()
    except RuntimeError:  # a symlink loop, as resolve() reports it on 3.11
        return None
    return path if path == root or root in path.parents else None


def _got(root: Path, parts: tuple[str, ...], resolved: bool) -> Path | None:
    try:
        return inside(root, *parts, resolved=resolved)
    except ValidationError:
        return None
    except RuntimeError:
        return None


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_inside_a_resolved_root_answers_what_resolve_answers(tree, depth):
    for parts in itertools.product(COMPONENTS, repeat=depth):
        want = _expected(tree, parts)
        assert _got(tree, parts, resolved=True) == want, parts
        assert _got(tree, parts, resolved=False) == want, parts


def test_an_absolute_part_and_a_link_out_are_refused(tree):
    for parts in (("/etc",), ("a", "/etc"), ("out-link",), ("out-link", "x"), ("..",), ("a", "..", "..")):
        with pytest.raises(ValidationError, match="leaves its folder"):
            inside(tree, *parts, resolved=True)
