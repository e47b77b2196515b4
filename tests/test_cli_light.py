"""`katib validate` stays light: it never loads the store (SQLAlchemy), the executors,
the loop, numpy or torch, so it answers in well under a second of imports."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

CHECK = """
import sys
from katib.cli import app
try:
    app(["validate", "examples/random.yaml"])
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
heavy = sorted(m for m in ("sqlalchemy", "katib.store", "trials", "katib.controller._controller", "numpy", "torch",
                           "optuna", "ray") if m in sys.modules)
assert not heavy, heavy
"""


def test_validate_loads_nothing_heavy():
    r = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "validated" in r.stdout
