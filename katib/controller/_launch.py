"""Step 5 of the reconcile step: what a stored trial is launched as (its job, folders, path map
and checkpoint), and the launch."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from katib.names import ARTIFACTS, RunLayout, check, inside, map_into, private_dirs
from katib.spec import (
    TRIAL_LABEL,
    Experiment,
    Limits,
    RenderTooLarge,
    TrialMeta,
    count_errors,
    render,
)
from katib.store import ExperimentRecord, TrialRecord
from suggestion import CHECKPOINT_FROM_LABEL, Algorithm
from trials import Deferred, Executor, LaunchError, TrialJob

from ._copy import CheckpointRefused, checkpoint_limit, copy_checkpoint
from ._status import MetricReducer, condition_of, mark_trial

if TYPE_CHECKING:
    from ._controller import Controller
    from ._tally import Tally


WAITING = "; waiting for "  # what ``_waiting`` adds to a Created condition's message (``Deferred``'s "waiting for …")


class Launching:
    """ExperimentRun's step 5 (a mixin: the attributes below are ExperimentRun's)."""

    ctl: Controller
    exp: Experiment
    rec: ExperimentRecord
    algorithm: Algorithm
    executor: Executor
    trials: dict[str, TrialRecord]
    tally: Tally
    names: list[str]

    # ExperimentRun's
    _touch: Callable[[TrialRecord], None]
    _emit: Callable[[str, TrialRecord | None], None]
    _settle: Callable[[], None]
    _db_manager: Any = None  # the loopback DBManager this run started for a Custom collector
    _experiment_folder: Path | None = None

    def _db_manager_address(self) -> str:
        """Where a Custom collector reports: the controller's DBManager (``katib server
        --grpc-port``), else one this run starts on a loopback port (stopped by ``close``)."""
        if getattr(self.executor, "sandbox", None) is not None or getattr(self.executor, "tenants", False):
            # Katib's gRPC API carries no credentials: a tenant's collector could report for
            # any trial (katib server --auth refuses --grpc-port for the same reason).
            raise LaunchError("the Custom metrics collector reports through Katib's DBManager gRPC API, which "
                              "carries no credentials: it is not run for tenants (katib server --auth)")
        if self.ctl.db_manager_address:
            return self.ctl.db_manager_address
        if self._db_manager is None:
            try:
                from katib._dbmanager import serve_grpc

                self._db_manager = serve_grpc(self.ctl.store, self.ctl.runs_root, None, "127.0.0.1", 0)
            except ImportError as exc:
                raise LaunchError(f"the Custom metrics collector reports through Katib's DBManager gRPC API, which "
                                  f"needs what is not installed ({exc.name or exc}): pip install 'katib[grpc]'") from None
        return f"127.0.0.1:{self._db_manager.bound_port}"

    def close(self) -> None:
        """Stop what this run started beside its trials (the loopback DBManager)."""
        if self._db_manager is not None:
            self._db_manager.stop(grace=1)
            self._db_manager = None

    def _collector_kind(self) -> str:
        mc = self.exp.spec.metrics_collector_spec
        return mc.collector.kind if mc and mc.collector and mc.collector.kind else "StdOut"

    def _experiment_dir(self) -> Path:
        """The experiment's folder under the runs root, its names checked and its path
        resolved once per run; each trial's folder is checked to stay inside it."""
        if self._experiment_folder is None:
            private_dirs(self.ctl.runs_root)  # 0700 when new: trials' logs and files are their owner's
            self._experiment_folder = RunLayout(self.ctl.runs_root).experiment(self.exp.namespace, self.exp.name)
        return self._experiment_folder

    def _trial_dir(self, t: TrialRecord) -> Path:
        check("trial", t.name)
        return inside(self._experiment_dir(), t.name, resolved=True)

    def _checkpoint_dir(self, name: str) -> Path:
        check("trial", name)
        return inside(self._experiment_dir(), "checkpoints", name, resolved=True)

    def _path_map(self, t: TrialRecord) -> dict[str, str]:
        """Katib's absolute paths, mapped into the trial's own directories: the metrics
        file, and the directory where the algorithm's trials keep their checkpoint
        (``Algorithm.checkpoint_dir``: PBT's ``suggestion_trial_dir``)."""
        out = {}
        mc = self.exp.spec.metrics_collector_spec
        fsp = mc.source.file_system_path if mc and mc.source else None
        if mc and mc.collector and mc.collector.kind in ("File", "TensorFlowEvent", "Custom") and fsp and fsp.path:
            mapped = str(map_into(self._trial_dir(t), fsp.path))
            # A directory written with its slash (Katib's /var/log/katib/tfevent/) keeps it, so
            # /var/log/katib/tfevent/train maps to <mapped>/train; without it too.
            out[fsp.path.rstrip("/") or fsp.path] = mapped
            if fsp.path.endswith("/") and fsp.path != "/":
                out[fsp.path] = mapped + "/"
        checkpoints = self.algorithm.checkpoint_dir(self.exp)
        if checkpoints:
            out[checkpoints.rstrip("/")] = str(self._checkpoint_dir(t.name))
        return out

    def _prepare_checkpoint(self, t: TrialRecord) -> None:
        """A trial that starts from another's checkpoint (its assignment's
        ``CHECKPOINT_FROM_LABEL`` names that trial) gets a fresh copy of it.

        The other trial wrote that folder (a tenant's, under ``katib server --auth``) and
        the server copies it, outside any sandbox: links stay links (never what they point
        to: the store, another tenant's files), only plain files and folders are copied
        (a FIFO, socket or device is refused), and at most ``KATIB_MAX_CHECKPOINT_BYTES``
        of files (apparent sizes: a sparse file of 16 TB counts 16 TB). Whatever goes wrong
        is a ``LaunchError``: this trial fails with the reason, the experiment goes on."""
        target = self._checkpoint_dir(t.name)
        shutil.rmtree(target, ignore_errors=True)
        source_name = t.labels.get(CHECKPOINT_FROM_LABEL)
        source = self._checkpoint_dir(source_name) if source_name else None
        if source is None or not source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            copy_checkpoint(source, target, checkpoint_limit())
        except (OSError, CheckpointRefused, ValueError) as exc:
            shutil.rmtree(target, ignore_errors=True)
            raise LaunchError(f"cannot start from trial {source_name}'s checkpoint: {exc}") from None

    def _job(self, t: TrialRecord) -> TrialJob:
        tt = self.exp.spec.trial_template
        assert tt is not None and tt.primary_container_name
        labels = {**t.labels, TRIAL_LABEL: t.name}
        try:
            run_spec = render(tt, t.parameters(), TrialMeta(name=t.name, namespace=self.exp.namespace, labels=labels))
        except RenderTooLarge as exc:  # a value from outside the feasible space, or a template stored before the bound
            raise LaunchError(str(exc)) from None
        # The rendered counts, checked again: a template stored before placeholders in counts
        # were checked, or a value from outside the parameter's feasible space, fails this
        # trial alone (the executors and the server's views loop over them).
        problems = count_errors(run_spec, Limits.current())
        if problems:
            raise LaunchError("; ".join(map(str, problems)))
        metadata = run_spec.setdefault("metadata", {})
        metadata.update(name=t.name, namespace=self.exp.namespace)
        metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
        trial_dir = self._trial_dir(t)
        mc = self.exp.spec.metrics_collector_spec
        custom = mc.collector.custom_collector if mc and mc.collector and mc.collector.kind == "Custom" else None
        return TrialJob(
            custom_collector=custom, db_manager=self._db_manager_address() if custom else None,
            name=t.name, experiment=self.exp.name, namespace=self.exp.namespace, run_spec=run_spec,
            primary_container=tt.primary_container_name, workdir=Path(self.rec.workdir),
            trial_dir=trial_dir, path_map=self._path_map(t),
            success_condition=tt.success_condition, failure_condition=tt.failure_condition,
            primary_pod_labels=tt.primary_pod_labels, retain=bool(tt.retain), collector=self._collector_kind(),
            metric_names=list(self.names), objective_type=str(getattr(self.exp.spec.objective, "type", None) or ""),
            collector_source=mc.source.to_dict() if mc and mc.source else None,
            env={
                "KATIB_TRIAL_NAME": t.name, "KATIB_EXPERIMENT_NAME": self.exp.name,
                "KATIB_NAMESPACE": self.exp.namespace, "KATIB_TRIAL_DIR": str(trial_dir),
                "KATIB_PUSH_FILE": str(trial_dir / "push.jsonl"),
                "KATIB_CHECKPOINT_DIR": str(self._checkpoint_dir(t.name)),
                # katib.save_model writes the trial's model here; katib serve reads it.
                "KATIB_ARTIFACT_DIR": str(trial_dir / ARTIFACTS),
            },
        )

    def _waiting(self, t: TrialRecord, why: str) -> None:
        """Say why a trial waits in its ``Created`` condition's message (``katib describe``,
        the viewer, ``kubectl get trial -o yaml``), stored only when it changes: a trial held
        by its namespace's quota or a busy machine said nothing, and looked stuck."""
        cond = condition_of(t.conditions, "Created")
        if cond is None:
            return
        current = cond.message or ""
        at = current.find(WAITING)
        base = current[:at] if at >= 0 else current  # its own message (a restarted trial's says why), kept
        message = f"{base}; {why}" if why else base
        if current != message:
            cond.message = message
            self._touch(t)

    def _launch_created(self) -> None:
        for t in list(self.tally.active.values()):  # not every trial: the active ones
            if t.state != "Created":
                continue
            try:
                job = self._job(t)
                self._prepare_checkpoint(t)
                (job.trial_dir / ARTIFACTS).mkdir(parents=True, exist_ok=True)
                t.handle = self.executor.launch(job)
            except Deferred as wait:  # it waits, pending, for running trials to free what it needs
                self._waiting(t, str(wait))
                continue
            except LaunchError as exc:
                t.completion_time = time.time()
                t.observation = MetricReducer().observation(self.names)
                mark_trial(t, "Failed", str(exc), reason="LaunchFailed")  # no job: ours, not Katib's
                self._touch(t)
                self._settle()
                self._emit("finished", t)
                continue
            t.start_time = time.time()
            self._waiting(t, "")  # it waits no more
            mark_trial(t, "Running")
            self._touch(t)
            self._emit("launched", t)
