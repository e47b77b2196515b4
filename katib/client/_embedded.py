"""The embedded backend of ``KatibClient``: the store and the controllers in this process
(a read starts nothing; what the client creates or resumes runs in its threads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConflictError


class _Embedded:
    def __init__(self, db: str | None, workdir: Path, tick: float) -> None:
        from katib.controller import ExperimentManager
        from katib.store import Store

        self.store = Store(db)
        from katib.names import runs_root

        self.manager = ExperimentManager(self.store, runs_root(self.store.url), tick=tick)
        self.workdir = workdir
        from katib.controller import AskTell

        self.ask_tell = AskTell(self.store)

    def create(self, doc: dict[str, Any], namespace: str) -> dict[str, Any]:
        from katib import views
        from katib.controller import admit
        from katib.optimizationjobs import stored_experiment

        doc.setdefault("metadata", {})["namespace"] = namespace
        # The name first: one that exists is a conflict whatever the document (apply then
        # submits it again, which checks it as an edit of that experiment).
        if stored_experiment(self.store, doc, namespace) is not None:
            raise ConflictError(f"experiment {namespace}/{doc['metadata'].get('name')} already exists")
        exp = admit(doc)
        rec, _ = self.manager.submit(exp, self.workdir)
        return views.experiment_object(rec)

    def submit_again(self, doc: dict[str, Any], namespace: str) -> tuple[dict[str, Any], str]:
        """As ``katib run`` of the same file: resumed, restarted, unchanged, or refused."""
        from katib import views
        from katib.controller import admit
        from katib.optimizationjobs import source_annotation, stored_experiment

        doc.setdefault("metadata", {})["namespace"] = namespace
        # The stored experiment's OptimizationJob annotation, if it has one, may come back
        # with it unchanged (an object fetched, edited and applied again), as in an edit.
        exp = admit(doc, kept_source=source_annotation(stored_experiment(self.store, doc, namespace)))
        rec = self.store.get_experiment(exp.namespace, exp.name)
        rec, action = self.manager.submit(exp, self.workdir if not rec.workdir else Path(rec.workdir))
        return views.experiment_object(rec), action

    def get(self, name: str, namespace: str) -> dict[str, Any]:
        from katib import views

        return views.experiment_object(self.store.get_experiment(namespace, name))  # a read starts nothing

    def idle(self, name: str, namespace: str) -> bool:
        """Unfinished, and nothing runs it: no controller here, no live one elsewhere, no
        outside loop (ask and tell)."""
        from katib.controller import is_completed

        running = self.manager.is_running(namespace, name)  # before the read: a run that ends in between is done
        rec = self.store.get_experiment(namespace, name)
        external = (rec.spec.get("spec") or {}).get("executor") == "external"
        return not (running or external or is_completed(rec.status) or (rec.owner and _owner_alive(rec.owner)))

    def resume(self, name: str, namespace: str) -> dict[str, Any]:
        error = self.manager.resume(namespace, name)
        running = self.manager.is_running(namespace, name)
        return {"running": running, **({"message": error} if error and not running else {})}

    def close(self) -> None:
        self.manager.shutdown()  # the controllers this client started; their trials stop, resume carries on
        self.store.close()

    def experiments(self, namespace: str) -> list[dict[str, Any]]:
        from katib import views

        return [views.experiment_object(r) for r in self.store.list_experiments(namespace)]

    def trials(self, name: str, namespace: str) -> list[dict[str, Any]]:
        from katib import views

        rec = self.store.get_experiment(namespace, name)
        return [views.trial_object(rec, t) for t in self.store.list_trials(rec.id)]

    def observations(self, trial: str, namespace: str, metric: str | None) -> list[dict[str, Any]]:
        from katib.controller import rfc3339

        _, t = self.store.get_trial(namespace, trial)
        return [{"timeStamp": rfc3339(o.time), "metric": {"name": o.metric_name, "value": o.value}}
                for o in self.store.observations(t.id, metric)]

    def budget(self, name: str, namespace: str, budget: dict[str, Any]) -> dict[str, Any]:
        from katib import views
        from katib.controller import admit, edit_again_while_stale
        from katib.optimizationjobs import source_annotation

        def edit() -> dict[str, Any]:
            rec = self.store.get_experiment(namespace, name)
            obj = views.experiment_object(rec)
            obj.pop("status")
            obj["spec"].update(budget)
            for key in ("uid", "creationTimestamp"):
                obj["metadata"].pop(key, None)
            rec, _ = self.manager.submit(admit(obj, kept_source=source_annotation(rec)), Path(rec.workdir),
                                         based_on=rec.spec)
            return views.experiment_object(rec)

        return edit_again_while_stale(edit, f"experiment {namespace}/{name}")

    def delete(self, name: str, namespace: str) -> None:
        self.manager.delete(namespace, name)

    def all_experiments(self) -> list[dict[str, Any]]:
        from katib import views

        return [views.experiment_object(r) for r in self.store.list_experiments(None)]

    def stop(self, name: str, namespace: str) -> dict[str, Any]:
        self.store.get_experiment(namespace, name)
        self.manager.stop(namespace, name)
        return {"running": self.manager.is_running(namespace, name)}

    def stop_trial(self, name: str, namespace: str) -> None:
        rec, t = self.store.get_trial(namespace, name)
        if t.state != "Running" or not self.manager.stop_trial_early(namespace, rec.name, name, "stopped by a user"):
            raise ConflictError(f"trial {namespace}/{name} is {t.state}"
                                + ("" if t.state != "Running" else f", and this client does not run experiment {rec.name}")
                                + ": only a running trial of an experiment this client runs can be stopped")

    def retry_trial(self, name: str, namespace: str) -> None:
        rec, _ = self.store.get_trial(namespace, name)
        if self.manager.retry_trial(namespace, rec.name, name) is None:
            raise ConflictError(f"trial {namespace}/{name}: this client does not run experiment {rec.name} "
                                "(it has ended, another process runs it, or nothing does)")

    def trial(self, name: str, namespace: str) -> dict[str, Any]:
        from katib import views

        return views.trial_object(*self.store.get_trial(namespace, name))

    def log(self, name: str, namespace: str, tail: int | None) -> str:
        from katib.controller import trial_log

        rec, t = self.store.get_trial(namespace, name)
        return trial_log(self.manager.runs_root, rec, t, tail)

    def log_since(self, name: str, namespace: str, offset: int) -> tuple[bytes, int]:
        from katib.controller import trial_log_since

        rec, t = self.store.get_trial(namespace, name)
        return trial_log_since(self.manager.runs_root, rec, t, offset) or (b"", offset)

    def ask(self, name: str, namespace: str, count: int) -> list[dict[str, Any]]:
        return self.ask_tell.ask(namespace, name, count)

    def tell(self, name: str, namespace: str, trial: str, metrics: Any, outcome: str) -> dict[str, Any]:
        return self.ask_tell.tell(namespace, name, trial, metrics, outcome)


def _owner_alive(owner: str) -> bool:
    from trials import owner_alive

    return owner_alive(owner)
