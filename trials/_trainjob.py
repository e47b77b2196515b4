"""A Kubeflow Trainer ``TrainJob`` trial as local processes: one per trainer node.

The TrainJob is resolved against its runtime (``katib.runtimes``); node ``i`` runs the
resolved ``node`` container's command with the environment Trainer's torch plugin and
torchrun give it: ``PET_NNODES``, ``PET_NPROC_PER_NODE``, ``PET_NODE_RANK``,
``PET_MASTER_ADDR``, ``PET_MASTER_PORT``, and ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK`` (one process per node
here), plus JobSet's ``JOB_COMPLETION_INDEX``. A node of one process (Trainer's default on
CPUs: ``auto`` is one process per CPU the node asks for, at least one) needs no elastic
agent, so a small ``torchrun`` stands in for the real one: it runs the script with this
Python, the environment above already set (the same variables torchrun gives its one
worker); so it does where torch is not installed. A node of several processes (GPUs, or
``numProcPerNode``) runs the installed ``torchrun``, which starts them.

Node 0's output is the trial's log (``trial.log``), node ``i``'s is ``node-i.log``. Each node
runs in a folder of its own under the trial's (``node-<i>``) when its command writes the
script it then runs (the Kubeflow SDK's ``CustomTrainer`` does: ``printf … > train.py;
torchrun train.py``), so parallel trials and nodes never overwrite one another's script;
otherwise in the experiment's working directory, like every other local trial.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from katib.errors import ValidationError
from katib.runtimes import resolve

from ._executor import LaunchError, TrialJob

# The Kubeflow SDK's CustomTrainer writes its function to a file with a here-document.
_WRITES_SCRIPT = "read -r -d '' SCRIPT << EOM"

_TORCHRUN = '''#!{python}
"""torchrun's stand-in (katib's local TrainJob): the environment is set; run the script."""
import os, sys
args = sys.argv[1:]
flags_with_values = {{"--nnodes", "--nproc-per-node", "--nproc_per_node", "--node-rank", "--node_rank",
                      "--master-addr", "--master_addr", "--master-port", "--master_port", "--rdzv-backend",
                      "--rdzv_backend", "--rdzv-endpoint", "--rdzv_endpoint", "--rdzv-id", "--rdzv_id",
                      "--max-restarts", "--max_restarts", "--monitor-interval", "--monitor_interval"}}
while args and args[0].startswith("-"):
    flag = args.pop(0)
    if flag in flags_with_values and "=" not in flag and args:
        args.pop(0)
if not args:
    sys.exit("torchrun: no script given")
os.execv(sys.executable, [sys.executable, *args])
'''


def _shim_dir(trial_dir: Path) -> Path:
    folder = trial_dir / ".katib-bin"
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "torchrun"
    shim.write_text(_TORCHRUN.format(python=sys.executable))
    shim.chmod(0o755)
    return folder


def trainjob_members(job: TrialJob, clean_env: bool) -> list[Any]:
    """The trial's nodes as ``Member``s of the local executor."""
    from ._members import Member, command_of, free_port, trial_env

    try:
        resolved = resolve(job.run_spec, job.namespace)
    except ValidationError as exc:
        raise LaunchError("; ".join(f"trialSpec.{e}" for e in exc.errors)) from None
    container = resolved.container
    argv = command_of(container, job.path_map)
    writes_script = any(_WRITES_SCRIPT in a for a in argv)
    port = str(free_port())
    n = resolved.num_nodes
    members = []
    for rank in range(n):
        name = f"node-{rank}"
        node_container = dict(container)
        if writes_script:
            folder = job.trial_dir / name
            folder.mkdir(parents=True, exist_ok=True)
            node_container["workingDir"] = str(folder)
        env = trial_env(job, container, clean_env)
        env.update(
            MASTER_ADDR="127.0.0.1", MASTER_PORT=port, WORLD_SIZE=str(n), RANK=str(rank), GROUP_RANK=str(rank),
            LOCAL_RANK="0", LOCAL_WORLD_SIZE="1", JOB_COMPLETION_INDEX=str(rank),
        )
        if resolved.torch:
            env.update(PET_NNODES=str(n), PET_NPROC_PER_NODE=resolved.proc_per_node, PET_NODE_RANK=str(rank),
                       PET_MASTER_ADDR="127.0.0.1", PET_MASTER_PORT=port)
            if resolved.proc_per_node == "1" or shutil.which("torchrun", path=env.get("PATH")) is None:
                env["PATH"] = str(_shim_dir(job.trial_dir)) + os.pathsep + env.get("PATH", "")
        members.append(Member(name, node_container, argv, env, log_name="trial.log" if rank == 0 else f"{name}.log"))
    return members


KATIB_MANAGER = "katib.kubeflow.org/manager"  # the runtimePatches entry katib owns


def label_trainjob(manifest: dict[str, Any], labels: dict[str, str], env: dict[str, str], fenced: bool = False) -> None:
    """A TrainJob created in a cluster: katib's variables in ``spec.trainer.env``, and a
    ``runtimePatches`` entry of its own (manager ``katib.kubeflow.org/manager``) that puts
    the trial's labels on the trainer nodes' pods, so the executor finds and follows them
    (a TrainJob has no pod template of its own to label). ``fenced`` (a tenant's): the
    nodes' pods mount no service account token, as the fence gives every pod template."""
    spec = manifest.setdefault("spec", {})
    trainer = spec.get("trainer") if isinstance(spec.get("trainer"), dict) else {}
    spec["trainer"] = trainer
    kept = [e for e in trainer.get("env") or [] if not (isinstance(e, dict) and e.get("name") in env)]
    trainer["env"] = kept + [{"name": k, "value": v} for k, v in env.items()]
    patches = [p for p in spec.get("runtimePatches") or [] if not (isinstance(p, dict) and p.get("manager") == KATIB_MANAGER)]
    pod: dict[str, Any] = {"metadata": {"labels": dict(labels)}}
    if fenced:
        pod["spec"] = {"automountServiceAccountToken": False}
    patches.append({"manager": KATIB_MANAGER, "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [
        {"name": "node", "template": {"spec": {"template": pod}}}]}}}})
    spec["runtimePatches"] = patches


# What a tenant's TrainJob may set: the trainer and initializer, and which runtime. A field
# not named here is refused, whatever Trainer's version calls it: podSpecOverrides (v2.0),
# podTemplateOverrides and runtimePatches (later) reach the runtime's pod specs, which the
# fence cannot see (a volume of the node's /, the server's service account); managedBy
# hands the job to another controller.
TENANT_TRAINJOB_FIELDS = frozenset({"runtimeRef", "trainer", "initializer", "labels", "annotations", "suspend",
                                    "runtimePatches"})


def trainjob_escapes(manifest: dict[str, Any]) -> list[str]:
    """Under --auth: a tenant's TrainJob may set only ``TENANT_TRAINJOB_FIELDS``, and no
    ``runtimePatches`` but katib's own (the runtime itself is the cluster admin's)."""
    spec = manifest.get("spec") or {}
    found = [f"spec.{key}: a tenant's TrainJob may not set it (it reaches its runtime's pods, or who runs it); "
             f"it may set {', '.join(sorted(TENANT_TRAINJOB_FIELDS - {'runtimePatches'}))}"
             for key in spec if key not in TENANT_TRAINJOB_FIELDS]
    for i, patch in enumerate(spec.get("runtimePatches") or []):
        if not (isinstance(patch, dict) and patch.get("manager") == KATIB_MANAGER):
            found.append(f"spec.runtimePatches[{i}]: a tenant's TrainJob may not patch its runtime's pods")
    return found
