"""An edit of a stored experiment is made from what was read: a patch that another
server's edit overtook is refused as stale (and made again by the API), while a whole
experiment applied again replaces what it finds, whatever came in between."""

from __future__ import annotations

from pathlib import Path

import pytest

from katib.controller import Controller, admit
from katib.errors import StaleEditError
from katib.spec import Experiment
from katib.store import Store
from tests.conftest import experiment


def _admitted(**spec: object) -> Experiment:
    return admit(experiment(name="e", command=["sh", "-c", "echo loss=${trialParameters.x}"], **spec))


def test_a_patch_made_from_a_replaced_spec_is_stale_and_a_file_applied_is_not(tmp_path: Path):
    store = Store(str(tmp_path / "katib.db"))
    try:
        controller = Controller(store)
        rec, action = controller.submit(_admitted(maxTrialCount=3), tmp_path)
        assert action == "created"
        read = store.get_experiment("default", "e").spec  # what a patch was made from
        labelled = dict(read, metadata={**read["metadata"], "labels": {"team": "a"}})
        assert store.update_experiment(rec.id, if_spec=read, spec=labelled)  # another server's edit

        with pytest.raises(StaleEditError):
            controller.submit(_admitted(maxTrialCount=5), tmp_path, based_on=read)
        assert store.get_experiment("default", "e").spec["spec"]["maxTrialCount"] == 3

        # the stored spec changes between this submit's read and its write: it reads again
        real = store.update_experiment
        raced = []

        def racing(exp_id: int, **fields: object) -> bool:
            if fields.get("if_spec") is not None and not raced:
                raced.append(True)
                now = store.get_experiment("default", "e").spec
                real(exp_id, spec=dict(now, metadata={**now["metadata"], "labels": {"team": "b"}}))
            return real(exp_id, **fields)  # type: ignore[arg-type]

        store.update_experiment = racing  # type: ignore[method-assign]
        _, action = controller.submit(_admitted(maxTrialCount=6), tmp_path)
        assert raced and action == "resumed"
        assert store.get_experiment("default", "e").spec["spec"]["maxTrialCount"] == 6
    finally:
        store.close()
