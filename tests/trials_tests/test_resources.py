"""The resource model and GPU-aware local scheduling, with a configured GPU inventory."""

from __future__ import annotations

import re

import pytest

from katib.controller import Controller, admit
from tests.conftest import experiment, python_command
from trials import Inventory, Ledger, LocalExecutor, Resources, discover_gpus
from trials._resources import NoCapacity, parse_cpu, parse_memory


@pytest.mark.parametrize(("text", "cpus"), [("500m", 0.5), ("2", 2.0), (1, 1.0), ("1.5", 1.5), (0.25, 0.25), ("1e1", 10.0)])
def test_cpu_quantities(text, cpus):
    assert parse_cpu(text) == cpus


@pytest.mark.parametrize(("text", "size"), [("1Gi", 2**30), ("512Mi", 512 * 2**20), ("1G", 10**9), ("1000", 1000),
                                            # every quantity validation admits works at launch too
                                            ("129e6", 129 * 10**6), ("2Pi", 2**51), ("1.5Gi", 3 * 2**29), ("1E", 10**18),
                                            ("100k", 10**5), ("500m", 1)])
def test_memory_quantities(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["lots", "1Gb", "-", ""])
def test_bad_quantities_are_refused(text):
    with pytest.raises(ValueError):
        parse_memory(text)


def test_container_resources_limits_win_over_requests():
    container = {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "nvidia.com/gpu": 2}}}
    assert Resources.of_container(container) == Resources(cpu=2.0, memory=2**30, gpu=2)
    assert Resources.of_container({}) == Resources()


def test_ledger_never_gives_a_gpu_twice():
    ledger = Ledger(Inventory(cpus=4, memory=0, gpus=["0", "1", "2"]))
    a = ledger.take(Resources(gpu=2))
    assert a.gpus == ["0", "1"]
    with pytest.raises(NoCapacity):
        ledger.take(Resources(gpu=2))
    b = ledger.take(Resources(gpu=1))
    assert b.gpus == ["2"]
    ledger.give_back(a)
    assert ledger.take(Resources(gpu=2)).gpus == ["0", "1"]
    with pytest.raises(ValueError, match="needs 4 GPU"):
        ledger.take(Resources(gpu=4))
    ledger.take(Resources(cpu=3))
    with pytest.raises(NoCapacity):
        ledger.take(Resources(cpu=2))
    with pytest.raises(ValueError, match="needs 5 CPUs and this machine has 4"):
        ledger.take(Resources(cpu=5))


def test_gpu_discovery_honours_configuration(monkeypatch):
    monkeypatch.setenv("KATIB_GPUS", "2,3")
    assert discover_gpus() == ["2", "3"]
    monkeypatch.setenv("KATIB_GPUS", "none")
    assert discover_gpus() == []
    monkeypatch.delenv("KATIB_GPUS")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,5")
    assert discover_gpus() == ["1", "5"]


CODE = ("import os, time; print(f'start={time.time()} gpus=[{os.environ.get(\"CUDA_VISIBLE_DEVICES\")}]', flush=True); "
        "time.sleep(0.4); print(f'end={time.time()}'); print('loss=${trialParameters.x}')")


def gpu_experiment(gpus_per_trial: int, parallel: int = 4, trials: int = 6):
    doc = experiment(command=python_command(CODE), maxTrialCount=trials, parallelTrialCount=parallel)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"nvidia.com/gpu": gpus_per_trial, "cpu": "1"}}
    return admit(doc)


def run(store, tmp_path, exp, gpus):
    executor = LocalExecutor(Ledger(Inventory(cpus=16, memory=0, gpus=gpus)))
    ctl = Controller(store, executor=executor, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(exp, tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    out = []
    for t in store.list_trials(rec.id):
        log = (tmp_path / "runs" / "default" / "demo" / t.name / "trial.log").read_text()
        start, end = (float(re.search(rf"{k}=([0-9.]+)", log).group(1)) for k in ("start", "end"))
        out.append((t, start, end, re.search(r"gpus=\[(.*?)\]", log).group(1)))
    return status, out


def overlapping(a, b) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def test_each_trial_gets_its_own_gpu_and_the_rest_wait(sqlite_store, tmp_path):
    status, runs = run(sqlite_store, tmp_path, gpu_experiment(1), gpus=["0", "1"])
    assert status["trialsSucceeded"] == 6
    for t, _, _, visible in runs:
        assert visible in ("0", "1") and t.handle["devices"]["gpus"] == [visible]
    # Never more trials at once than GPUs (parallelTrialCount is 4): at each trial's start,
    # count the trials running then. (Counting every trial that overlaps one trial's window
    # is not that: on a loaded machine a long trial on one GPU overlaps two that ran one
    # after the other on the other.)
    for a in runs:
        assert sum(1 for b in runs if b[1] <= a[1] < b[2]) <= 2
        assert all(b[3] != a[3] for b in runs if b is not a and overlapping(a, b))  # and never the same GPU


def test_two_gpu_trials_take_turns(sqlite_store, tmp_path):
    status, runs = run(sqlite_store, tmp_path, gpu_experiment(2, parallel=3, trials=3), gpus=["0", "1", "2"])
    assert status["trialsSucceeded"] == 3
    assert not any(overlapping(a, b) for a in runs for b in runs if a is not b)
    assert all(len(v.split(",")) == 2 for _, _, _, v in runs)


def test_a_trial_that_can_never_fit_fails_saying_why(sqlite_store, tmp_path):
    exp = gpu_experiment(4, parallel=1, trials=1)
    executor = LocalExecutor(Ledger(Inventory(cpus=16, memory=0, gpus=["0", "1"])))
    ctl = Controller(sqlite_store, executor=executor, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(exp, tmp_path)
    ctl.run(rec.namespace, rec.name)
    t = sqlite_store.list_trials(rec.id)[0]
    assert t.state == "Failed" and "needs 4 GPU(s) and this machine has 2" in t.conditions[-1].message


def test_cpu_only_trials_see_no_gpu(sqlite_store, tmp_path):
    doc = experiment(command=python_command(CODE), maxTrialCount=1, parallelTrialCount=1)
    status, runs = run(sqlite_store, tmp_path, admit(doc), gpus=["0"])
    assert runs[0][3] == ""  # CUDA_VISIBLE_DEVICES is empty: no GPU for a trial that asked for none
    assert runs[0][0].handle["devices"] == {"cpu": 0.0, "memory": 0, "gpus": []}


def test_a_namespace_quota_keeps_one_tenants_trials_from_holding_the_machine(sqlite_store, tmp_path):
    """Under ``--auth`` one tenant's trials requested the whole machine and never ended,
    and every other tenant's requesting trial stayed pending for ever. With a quota per
    namespace (half the machine by default with --auth) the hog holds its half, the other
    tenant's trial runs beside it, and one that asks more than a quota fails saying why."""
    import threading

    from trials import parse_quota

    ledger = Ledger(Inventory(cpus=2, memory=0, gpus=[]))
    quota = parse_quota("half", ledger.inventory)
    assert quota == Resources(cpu=1.0, memory=float("inf"), gpu=0)  # type: ignore[arg-type]  (memory unknown)
    flag = tmp_path / "go"
    hold = f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.05)\nprint('loss=0.5')"

    def exp(namespace, code, cpu, trials):
        doc = experiment(command=python_command(code), maxTrialCount=trials, parallelTrialCount=trials)
        doc["metadata"]["namespace"] = namespace
        doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["resources"] = {
            "requests": {"cpu": cpu}}
        ctl = Controller(sqlite_store, executor=LocalExecutor(ledger, quota=quota), runs_root=tmp_path / "runs", tick=0.05)
        rec, _ = ctl.submit(admit(doc), tmp_path)
        thread = threading.Thread(target=ctl.run, args=(rec.namespace, rec.name), daemon=True)
        thread.start()
        return rec, thread

    hog, hog_thread = exp("ns-a", hold, "1", 2)  # two trials of one CPU each: the whole machine
    victim, victim_thread = exp("ns-b", "print('loss=0.1')", "1", 1)
    victim_thread.join(30)
    assert not victim_thread.is_alive(), "ns-b's trial waited behind ns-a's"
    assert [t.state for t in sqlite_store.list_trials(victim.id)] == ["Succeeded"]
    assert sorted(t.state for t in sqlite_store.list_trials(hog.id)) == ["Created", "Running"]  # its second waits
    # and says why (it said nothing, and looked stuck): the machine's room once ns-b's trial has ended, its quota
    import time

    deadline = time.monotonic() + 15
    while True:
        [waiting] = [t for t in sqlite_store.list_trials(hog.id) if t.state == "Created"]
        created = next(c for c in waiting.conditions if c.type == "Created")
        if "quota" in (created.message or "") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert created.message == ("Trial is created; waiting for its namespace's quota: ns-a's running trials hold 1 CPUs "
                               "of 1 CPUs (katib server --namespace-quota), and it asks 1 CPUs"), created.message
    assert ledger.held("ns-a") == Resources(cpu=1.0) and ledger.held("ns-b") == Resources()
    flag.touch()
    hog_thread.join(30)
    assert [t.state for t in sqlite_store.list_trials(hog.id)] == ["Succeeded", "Succeeded"]
    assert all(next(c for c in t.conditions if c.type == "Created").message == "Trial is created"
               for t in sqlite_store.list_trials(hog.id))  # it waits no more
    assert ledger.held("ns-a") == Resources()

    greedy, greedy_thread = exp("ns-c", "print('loss=0.1')", "1500m", 1)
    greedy_thread.join(30)
    [t] = sqlite_store.list_trials(greedy.id)
    assert t.state == "Failed", t.conditions
    assert "needs 1.5 CPUs and a namespace's trials may hold 1 at once on this server (katib server --namespace-quota)" \
        in t.conditions[-1].message


@pytest.mark.parametrize(("text", "quota"), [
    ("none", None),
    ("cpu=2,memory=8Gi,gpu=1", Resources(cpu=2.0, memory=8 * 2**30, gpu=1)),
    ("nvidia.com/gpu=2", Resources(cpu=float("inf"), memory=float("inf"), gpu=2)),  # type: ignore[arg-type]
    ("cpu=500m", Resources(cpu=0.5, memory=float("inf"), gpu=float("inf"))),  # type: ignore[arg-type]
])
def test_namespace_quotas_are_read(text, quota):
    from trials import parse_quota

    assert parse_quota(text) == quota


@pytest.mark.parametrize(("text", "message"), [
    ("lots", "write none, half, or NAME=QUANTITY"),
    ("disk=1Gi", "'disk' is not a resource a quota limits"),
    ("cpu=abc", "'cpu=abc'"),
    ("memory=-1Gi", "'memory=-1Gi'"),
    ("cpu=1,cpu=2", "'cpu' is given twice"),  # the last one won, silently
])
def test_a_bad_namespace_quota_says_what_is_wrong(text, message):
    from trials import parse_quota

    with pytest.raises(ValueError, match=re.escape(message)):
        parse_quota(text)


def test_katib_server_bounds_each_namespace_by_default_with_auth(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import katib.cli._server as server_cli
    from katib.cli import app
    from trials import Inventory, parse_quota

    served: list = []
    monkeypatch.setattr(server_cli, "_serve", lambda application, *_, **__: served.append(application))
    monkeypatch.setenv("KATIB_GPUS", "none")
    args = ["server", "--db", str(tmp_path / "k.db"), "--allow-unfenced-trials", "--no-sandbox"]
    quotas = []
    for extra in (["--auth"], ["--auth", "--namespace-quota", "none"], [], ["--namespace-quota", "cpu=1,gpu=0"]):
        result = CliRunner().invoke(app, [*args, *extra])
        assert result.exit_code == 0, (extra, result.output, result.exception)
        quotas.append(served[-1].state.katib.manager.executor_factory().quota)
    assert quotas == [parse_quota("half", Inventory(gpus=[])), None, None,
                      Resources(cpu=1.0, memory=float("inf"), gpu=0)]  # type: ignore[arg-type]
    bad = CliRunner().invoke(app, [*args, "--namespace-quota", "disk=1Gi"])
    assert bad.exit_code != 0 and "--namespace-quota: 'disk' is not a resource a quota limits" in str(bad.exception)


def test_a_quota_leaves_what_the_machine_cannot_tell_or_give_to_the_machines_own_rules():
    from trials import parse_quota

    unknown = Inventory(cpus=4, memory=0, gpus=[])  # memory not known here: not bounded by half of 0
    quota = parse_quota("half", unknown)
    ledger = Ledger(unknown)
    assert ledger.take(Resources(memory=2**30), "ns-a", quota).resources.memory == 2**30
    with pytest.raises(ValueError, match=r"needs 1 GPU\(s\) and this machine has 0"):  # not the quota's message
        ledger.take(Resources(gpu=1), "ns-a", quota)


@pytest.mark.parametrize(("requests", "why"), [
    ({"cpu": "${trialParameters.c}"}, "cpu must not be negative (got '-99.5')"),
    ({"nvidia.com/gpu": "${trialParameters.c}"}, "nvidia.com/gpu must not be negative (got '-99.5')"),
    ({"memory": "${trialParameters.c}"}, "memory must not be negative (got '-99.5')"),
])
def test_a_negative_request_rendered_from_a_parameter_fails_its_trial_and_leaves_the_ledger_whole(
        sqlite_store, tmp_path, requests, why):
    """Admission checks the quantities written, not those a trial's parameters render: a
    CPU count of -99.5 taken and given back left the ledger's total past the machine, so
    no trial of any tenant started again; a GPU count of -1 took every GPU but one."""
    ledger = Ledger(Inventory(cpus=2, memory=2**34, gpus=["0", "1", "2", "3"]))
    doc = experiment(command=python_command("print('loss=${trialParameters.x}')"), maxTrialCount=1,
                     parallelTrialCount=1, maxFailedTrialCount=1)
    doc["spec"]["parameters"].append({"name": "c", "parameterType": "categorical", "feasibleSpace": {"list": ["-99.5"]}})
    doc["spec"]["trialTemplate"]["trialParameters"].append({"name": "c", "reference": "c"})
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"limits" if "gpu" in next(iter(requests)) else "requests": requests}
    ctl = Controller(sqlite_store, executor=LocalExecutor(ledger, quota=Resources(cpu=1, memory=2**33, gpu=2)),
                     runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    [t] = sqlite_store.list_trials(rec.id)
    assert t.state == "Failed" and why in t.conditions[-1].message, t.conditions
    assert ledger.take(Resources(cpu=2, gpu=4)).gpus == ["0", "1", "2", "3"]  # nothing lost, nothing phantom


def test_a_rendered_request_that_is_no_quantity_names_its_field():
    with pytest.raises(ValueError, match=re.escape("resources: memory: not a Kubernetes quantity: 'lots'")):
        Resources.of_container({"resources": {"requests": {"cpu": "1", "memory": "lots"}}})
