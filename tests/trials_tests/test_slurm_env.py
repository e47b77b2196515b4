"""The Slurm executor's commands are the server's: ``sbatch`` (and ``squeue``, ``scontrol``,
``scancel``, ``sacct``) are found on the server's ``PATH``, never on a trial's, and
``sbatch`` does not run with what a trial sets for the loader (``LD_PRELOAD``…), ``PATH`` or
sbatch's own ``SBATCH_*``; the job still gets the trial's whole environment (its batch
script sets those itself). A fake ``sbatch`` on a temporary ``PATH`` stands for Slurm, and
the job is played by running the batch script with the environment sbatch was given, as
``--export=ALL`` hands it over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trials import LaunchError, TrialJob
from trials._members import replica_processes
from trials._slurm import SlurmExecutor, slurm
from trials._slurmjob import batch_script, submit_env

# What a hostile trial sets: every one of these would act on the server's sbatch.
HOSTILE = {"LD_PRELOAD": "/nowhere/evil.so", "LD_LIBRARY_PATH": "/nowhere/lib", "GLIBC_TUNABLES": "glibc.malloc.check=0",
           "MALLOC_ARENA_MAX": "2", "GCONV_PATH": "/nowhere/gconv", "SBATCH_WAIT": "1",
           "QUOTED": "it's a \"value\" with $HOME, `ticks` and\na newline"}


def _fake(folder: Path, name: str, record: Path, answer: str) -> None:
    """A program ``name`` in ``folder`` that writes its argv and environment to ``record``."""
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / name
    program.write_text(f"#!{sys.executable} -I\nimport json, os, sys\n"
                       f"json.dump({{'argv': sys.argv, 'env': dict(os.environ)}}, open({str(record)!r}, 'w'))\n"
                       f"print({answer!r})\n")
    program.chmod(0o755)


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """The server's PATH: a fake sbatch and squeue, then the system's (bash, mv)."""
    server_bin = tmp_path / "server-bin"
    _fake(server_bin, "sbatch", tmp_path / "sbatch.json", "4242")
    _fake(server_bin, "squeue", tmp_path / "squeue.json", "")
    server_path = f"{server_bin}{os.pathsep}/usr/bin{os.pathsep}/bin"
    monkeypatch.setenv("PATH", server_path)
    monkeypatch.setenv("LD_BIND_NOW", "1")  # the server's own loader setting: sbatch runs with it, the job does not
    evil_bin = tmp_path / "trial-bin"  # the trial's own folder, first on its PATH
    for name in ("sbatch", "squeue", "scontrol", "scancel", "sacct"):
        _fake(evil_bin, name, tmp_path / "evil.json", "666")
    return server_path, evil_bin


def _job(tmp_path: Path, env: dict[str, str], out: Path) -> TrialJob:
    code = f"import json, os; json.dump(dict(os.environ), open({str(out)!r}, 'w'))"
    container = {"name": "main", "image": "x", "command": [sys.executable, "-c", code],
                 "env": [{"name": k, "value": v} for k, v in env.items()]}
    return TrialJob(name="t-1", experiment="e", namespace="ns", primary_container="main", workdir=tmp_path,
                    trial_dir=tmp_path / "runs" / "t-1", run_spec={"spec": {"template": {"spec": {"containers": [container]}}}})


def test_sbatch_is_the_servers_and_runs_without_the_trials_loader_variables(tmp_path, cluster):
    server_path, evil_bin = cluster
    trial_path = f"{evil_bin}{os.pathsep}{server_path}"
    job = _job(tmp_path, {"PATH": trial_path, **HOSTILE}, tmp_path / "job-env.json")
    ex = SlurmExecutor(clean_env=True)
    handle = ex.launch(job)
    ex.close()
    assert handle["job_id"] == "4242"
    assert not (tmp_path / "evil.json").exists(), "the trial's own sbatch ran as the server"
    called = json.loads((tmp_path / "sbatch.json").read_text())
    assert called["argv"][0] == str(tmp_path / "server-bin" / "sbatch")
    sbatch_env = called["env"]
    assert sbatch_env["PATH"] == server_path
    for name in HOSTILE.keys() - {"QUOTED"}:
        assert name not in sbatch_env, f"sbatch ran with the trial's {name}"
    assert sbatch_env["QUOTED"] == HOSTILE["QUOTED"] and sbatch_env["LD_BIND_NOW"] == "1"

    # The job (--export=ALL: sbatch's environment, then its batch script) gets the trial's
    # whole environment, its PATH and loader variables included, and not the server's LD_BIND_NOW.
    script = job.trial_dir / "slurm.sh"
    ran = subprocess.run(["/bin/bash", str(script)], env=sbatch_env, cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert (job.trial_dir / "trial.exit").read_text().strip() == "0"
    seen = json.loads((tmp_path / "job-env.json").read_text())
    trial = replica_processes(job, clean_env=True)[0].env
    shell = {"SHLVL", "PWD", "OLDPWD", "_"}
    assert {k: v for k, v in seen.items() if k not in shell} == {k: v for k, v in trial.items() if k not in shell}
    assert seen["PATH"] == trial_path and seen["LD_PRELOAD"] == HOSTILE["LD_PRELOAD"] and "LD_BIND_NOW" not in seen
    assert not (tmp_path / "evil.json").exists()


def test_a_value_the_node_set_itself_stays(tmp_path, cluster):
    """The script removes a server's loader variable only where it still holds the server's value."""
    job = _job(tmp_path, {}, tmp_path / "job-env.json")
    members = replica_processes(job, clean_env=True)
    job.trial_dir.mkdir(parents=True)
    script = job.trial_dir / "slurm.sh"
    script.write_text(batch_script(job, members))
    env = {**submit_env(members[0].env), "LD_BIND_NOW": "node"}  # a prolog's own value
    subprocess.run(["/bin/bash", str(script)], env=env, cwd=tmp_path, check=True, capture_output=True)
    assert json.loads((tmp_path / "job-env.json").read_text())["LD_BIND_NOW"] == "node"


def test_without_sbatch_on_the_servers_path_the_launch_says_so(tmp_path, cluster, monkeypatch):
    server_path, evil_bin = cluster
    monkeypatch.setenv("PATH", str(tmp_path / "server-bin"))
    (tmp_path / "server-bin" / "sbatch").unlink()  # no sbatch on the server's PATH, one on the trial's
    job = _job(tmp_path, {"PATH": f"{evil_bin}{os.pathsep}/usr/bin"}, tmp_path / "job-env.json")
    with pytest.raises(LaunchError, match="cannot submit the trial: sbatch is not on the server's PATH"):
        SlurmExecutor(clean_env=True).launch(job)
    assert not (tmp_path / "evil.json").exists()


def test_every_slurm_command_is_found_on_the_servers_path(tmp_path, cluster, monkeypatch):
    server_path, evil_bin = cluster
    monkeypatch.setenv("PATH", str(tmp_path / "server-bin"))  # its squeue, no scancel
    done = slurm(["squeue", "-h"], env={"PATH": str(evil_bin), "LD_PRELOAD": ""})
    assert done.returncode == 0 and not (tmp_path / "evil.json").exists()
    assert json.loads((tmp_path / "squeue.json").read_text())["argv"][0] == str(tmp_path / "server-bin" / "squeue")
    missing = slurm(["scancel", "1"], env={"PATH": str(evil_bin)})
    assert missing.returncode == 127 and "scancel is not on the server's PATH" in missing.stderr
    assert not (tmp_path / "evil.json").exists()


def test_a_distributed_trial_sets_the_trials_variables_before_srun(tmp_path, cluster):
    container = {"name": "main", "image": "x", "command": ["true"], "env": [{"name": "LD_PRELOAD", "value": "/x.so"}]}
    replica = {"template": {"spec": {"containers": [container]}}}
    job = TrialJob(name="torch", experiment="e", namespace="ns", primary_container="main", workdir=tmp_path,
                   trial_dir=tmp_path / "runs" / "torch",
                   run_spec={"kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
                       "Master": {"replicas": 1, **replica}, "Worker": {"replicas": 1, **replica}}}})
    members = replica_processes(job, clean_env=True)
    job.trial_dir.mkdir(parents=True)
    text = batch_script(job, members)
    assert "LD_PRELOAD" not in submit_env(members[0].env)
    assert text.index("export LD_PRELOAD=/x.so\n") < text.index("srun ")
    assert text.splitlines()[1].startswith("# katib:ns/e/torch@")  # recover() reads the trial from line 2
