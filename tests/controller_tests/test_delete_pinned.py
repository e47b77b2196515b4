"""A delete stops the experiment first, which can take a while; it then deletes the
experiment it found, by uid. Before, it deleted whatever had the name by then: one deleted
and made again meanwhile (by another client) lost its rows and its folder."""

from __future__ import annotations

import pytest

from katib.controller import ExperimentManager, admit
from katib.errors import ConflictError
from tests.conftest import experiment


@pytest.mark.parametrize("when", ["before its stop", "after its stop"])
def test_a_delete_never_takes_the_experiment_made_again_while_it_stopped_the_first(sqlite_store, tmp_path, when):
    manager = ExperimentManager(sqlite_store, tmp_path / "runs", tick=0.05)
    doc = experiment(name="e", command=["sh", "-c", "sleep 30 # ${trialParameters.x}"], maxTrialCount=1,
                     parallelTrialCount=1)
    try:
        manager.submit(admit(doc), tmp_path)
        first = sqlite_store.get_experiment("default", "e").uid
        real_stop = manager.stop
        made_again: list[str] = []

        def slow_stop(namespace: str, name: str, **kwargs: object) -> None:
            if when == "after its stop":
                real_stop(namespace, name, **kwargs)  # type: ignore[arg-type]
            if not made_again:  # meanwhile another client deletes it and makes it again
                made_again.append("yes")
                manager.delete(namespace, name)
                manager.submit(admit(doc), tmp_path)
            if when == "before its stop":
                real_stop(namespace, name, **kwargs)  # type: ignore[arg-type]

        manager.stop = slow_stop  # type: ignore[method-assign]
        with pytest.raises(ConflictError, match="deleted and made again"):
            manager.delete("default", "e")
        second = sqlite_store.get_experiment("default", "e")
        assert second.uid != first  # the one made again is still there,
        assert second.stopped_at is None and manager.is_running("default", "e")  # not marked stopped, and runs
    finally:
        manager.shutdown()
