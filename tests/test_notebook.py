"""examples/notebooks/tune.ipynb runs top to bottom in a real Jupyter kernel, as a newcomer
would run it: tune, watch, read the table, plot, pick the best."""

from __future__ import annotations

import pytest

from tests.conftest import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("pandas")
pytest.importorskip("plotly")

NOTEBOOK = REPO / "examples" / "notebooks" / "tune.ipynb"


def test_the_example_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    monkeypatch.setenv("KATIB_DB", str(tmp_path / "katib.db"))  # the kernel's KatibClient() store, not ~/.katib
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first cell that fails
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html = "\n".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "experiment default/digits-svc</b>: Succeeded, 6 trials" in html  # the result's own view
    assert "digits-svc" in html and "trials" in html  # the progress line, updated in place
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    accuracy = float(text.split("test accuracy of the best model: ")[1].split()[0])
    assert accuracy > 0.9
    assert any("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs)
