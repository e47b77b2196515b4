"""Every benchmark script runs after the install docs/benchmarks.md names: it names one, and
every module a script imports (at any depth: most import their peers inside functions)
imports in that install, which is the tests' own (``pip install -e '.[dev]'``)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

BENCH = sorted((REPO / "bench").glob("*.py"))
OURS = {"katib", "trials", "suggestion", "nas", "api", "tests"}
_SKIP = OURS | set(sys.stdlib_module_names)


def _imports(path) -> set[str]:
    """The import statements of ``path`` (as written) that reach beyond the standard library
    and our own packages."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {ast.unparse(ast.Import(names=[a])) for a in node.names if a.name.split(".")[0] not in _SKIP}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] not in _SKIP:
            found.add(ast.unparse(node))
    return found


def test_the_benchmarks_doc_names_the_tests_install():
    opening = (REPO / "docs" / "benchmarks.md").read_text().split("\n## ", 1)[0]
    assert re.search(r"pip install -e '\.\[dev\]'", opening), "docs/benchmarks.md must name the install first"


def test_every_module_a_benchmark_imports_is_installed():
    wanted = {m: sorted(p.name for p in BENCH if m in _imports(p)) for p in BENCH for m in _imports(p)}
    assert {"from ray import tune", "import optuna", "from playwright.sync_api import sync_playwright"} <= set(wanted)
    # Each statement as the script has it, on its own; ray.tune, for one, raises at import
    # when its extra's dependencies are missing (find_spec would not see that).
    code = (
        "import sys\n"
        "for statement in sys.argv[1:]:\n"
        "    try:\n"
        "        exec(statement, {})\n"
        "    except Exception as e:\n"
        "        print(f'{statement}\\t{type(e).__name__}: {e}')\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *sorted(wanted)], capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    failed = [line.split("\t") for line in out.stdout.splitlines() if line]
    assert out.returncode == 0 and not failed, [f"{what} ({', '.join(wanted[what])}): {why}" for what, why in failed] \
        or out.stderr[-2000:]


@pytest.mark.parametrize("script", BENCH, ids=[p.name for p in BENCH])
def test_every_benchmark_says_how_to_run_it(script):
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0 and "usage:" in out.stdout, out.stderr[-2000:]
