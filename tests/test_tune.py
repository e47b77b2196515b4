"""KatibClient.tune from a notebook's point of view: the function travels with what it uses,
parameters arrive typed, a returned value is the result, a re-run cell is not an error,
and the result reads like Optuna's Study."""

from __future__ import annotations

import json
import math as m  # an import made outside the function
import subprocess
import sys

import pytest

from katib import ExperimentResult, KatibClient, search
from katib._function import ANNOTATION, executor_errors, ship, trial_program
from katib.errors import ConflictError, KatibError, NoResultError

SPACE = {"x": search.double(-4, 4), "n": search.int(1, 3), "opt": search.categorical(["a", "b"]),
         "k": search.discrete([1, 2, 4])}
OFFSET = 0.5  # a notebook variable


def shifted(x):  # a helper function
    return (x - 1) ** 2 + OFFSET


@pytest.fixture
def client(tmp_path):
    with KatibClient(db=str(tmp_path / "k.db"), workdir=tmp_path, tick=0.05) as c:
        yield c


def _types_ok(x, n, opt, k):
    return isinstance(x, float) and isinstance(n, int) and isinstance(opt, str) and isinstance(k, int)


def test_a_function_travels_with_its_surroundings_and_gets_typed_parameters(client):
    scale = 3.0

    def objective(x, n, opt, k):  # keyword arguments named after the parameters
        assert _types_ok(x, n, opt, k), (x, n, opt, k)
        return {"loss": scale * shifted(x) + m.log(n) + (opt == "a") + k / 10, "n_used": n}

    result = client.tune("notebook", objective, SPACE, objective_metric_name="loss", objective_type="minimize",
                         additional_metric_names=["n_used"], max_trial_count=4, parallel_trial_count=2,
                         algorithm_name="random", algorithm_settings={"random_state": 1})
    assert isinstance(result, ExperimentResult) and result.state == "Succeeded"
    assert {t.state for t in result.trials} == {"Succeeded"} and len(result.trials) == 4
    best = result.best_params
    assert _types_ok(best["x"], best["n"], best["opt"], best["k"])
    expected = 3.0 * ((best["x"] - 1) ** 2 + 0.5) + m.log(best["n"]) + (best["opt"] == "a") + best["k"] / 10
    assert result.best_value == pytest.approx(expected)
    assert result.best_trial.metrics["n_used"] == best["n"]
    assert result.best_value == min(t.value for t in result.trials)
    assert result.best_trial.name in result._repr_html_() and "best" in result._repr_html_()
    assert "loss" in result.best_trial._repr_html_()


def test_a_lambda_and_a_parameters_dict_work(client):
    result = client.tune("lambda", lambda p: (p["x"] - OFFSET) ** 2, {"x": search.double(-1, 1)},
                         objective_metric_name="loss", objective_type="minimize", max_trial_count=2, progress=False)
    assert result.best_value == pytest.approx((result.best_params["x"] - 0.5) ** 2)
    # No algorithm named: tune() picks 'auto'.
    assert client.get_experiment("lambda")["spec"]["algorithm"]["algorithmName"] == "auto"


def test_a_plain_value_is_a_constant_passed_to_the_function_as_katibs_sdk_does(client):
    """``{"x": 0.5}`` (not a ``search`` range) was an AttributeError ('float' object has no
    attribute 'get'); Katib's SDK passes such a value to the function as it is."""
    def objective(p):
        assert p["epochs"] == 3 and p["layers"] == [64, 32] and p["name"] == "run", p
        return (p["x"] - p["offset"]) ** 2

    result = client.tune("constants", objective, {"x": search.double(-1, 1), "offset": 0.5, "epochs": 3,
                                                  "layers": [64, 32], "name": "run"},
                         objective_metric_name="loss", objective_type="minimize", max_trial_count=2, progress=False)
    assert {t.state for t in result.trials} == {"Succeeded"}
    assert set(result.best_params) == {"x"}  # only the searched one is a parameter of the experiment
    assert result.best_value == pytest.approx((result.best_params["x"] - 0.5) ** 2)
    assert [p["name"] for p in client.get_experiment("constants")["spec"]["parameters"]] == ["x"]
    with pytest.raises(ConflictError, match="exists with other constant parameters"):  # a re-run cell, epochs changed
        client.tune("constants", objective, {"x": search.double(-1, 1), "offset": 0.5, "epochs": 4,
                                             "layers": [64, 32], "name": "run"},
                    objective_metric_name="loss", objective_type="minimize", max_trial_count=2, if_exists="reuse")
    with pytest.raises(KatibError, match=r"parameters\['f'\]: a constant passed to the function must be a JSON value"):
        client.tune("bad-constant", objective, {"x": search.double(-1, 1), "f": object()}, objective_metric_name="loss")
    with pytest.raises(KatibError, match="at least one must be searched"):
        client.tune("no-search", objective, {"x": 0.5}, objective_metric_name="loss")


def test_all_failing_tune_raises_saying_why(client):
    def broken(parameters):
        raise ValueError("the data is not there")

    with pytest.raises(NoResultError, match="the data is not there"):
        client.tune("broken", broken, {"x": search.double(0, 1)}, objective_metric_name="loss", max_trial_count=2)
    with pytest.raises(NoResultError, match="return a number"):
        client.tune("text", lambda p: "0.5", {"x": search.double(0, 1)}, objective_metric_name="loss",
                    max_trial_count=1)


def test_an_all_failing_tunes_progress_does_not_say_succeeded(client, capsys):
    """Katib ends such an experiment Succeeded (its trial budget reached): the progress
    line said "6/6 trials 6 failed Succeeded", the result's repr the same."""
    def broken(parameters):
        raise ValueError("no data")

    with pytest.raises(NoResultError) as caught:
        client.tune("all-fail", broken, {"x": search.double(0, 1)}, objective_metric_name="loss", max_trial_count=2)
    shown = capsys.readouterr().err
    assert "2 failed" in shown and "ended without a result" in shown and "Succeeded" not in shown, shown
    result = client.get_experiment_result("all-fail")
    assert result.state == "Succeeded"  # Katib's condition, as the SDK reads it
    assert "ended without a result" in repr(result) and "ended without a result" in result._repr_html_()
    assert caught.value is not None


def test_a_failed_experiment_is_not_handed_over_as_a_result(client):
    """Too many trials failed (Katib's Failed: ExperimentFailed) though one succeeded:
    tune() returned the result as if the experiment had succeeded, as ``katib run`` (exit
    1) does not. It raises, and the error carries the result."""
    from katib import ExperimentFailedError

    def first_only(x):
        if x != "1":
            raise ValueError("out of range")
        return 0.5

    with pytest.raises(ExperimentFailedError, match=r"failed \(ExperimentFailed\): Experiment has failed because max failed count") as info:
        client.tune("mostly-broken", first_only, {"x": search.categorical(["1", "2", "3", "4"])},
                    objective_metric_name="loss", max_trial_count=4, max_failed_trial_count=2, algorithm_name="grid",
                    parallel_trial_count=1, progress=False)
    assert info.value.result.state == "Failed" and info.value.result.best_value == 0.5


def test_a_rerun_cell_reuses_or_replaces_on_request(client):
    def quad(x):
        return (x - 1) ** 2

    space = {"x": search.double(-2, 2)}
    first = client.tune("rerun", quad, space, objective_metric_name="loss", objective_type="minimize",
                        max_trial_count=2, progress=False)
    with pytest.raises(ConflictError, match="if_exists='reuse'"):
        client.tune("rerun", quad, space, objective_metric_name="loss", objective_type="minimize", max_trial_count=2)
    again = client.tune("rerun", quad, space, objective_metric_name="loss", objective_type="minimize",
                        max_trial_count=2, if_exists="reuse", progress=False)
    assert [t.name for t in again.trials] == [t.name for t in first.trials]
    with pytest.raises(ConflictError, match="spec.parameters"):
        client.tune("rerun", quad, {"x": search.double(-3, 3)}, objective_metric_name="loss",
                    objective_type="minimize", if_exists="reuse")
    fresh = client.tune("rerun", quad, {"x": search.double(-3, 3)}, objective_metric_name="loss",
                        objective_type="minimize", max_trial_count=2, if_exists="replace", progress=False)
    assert not {t.name for t in fresh.trials} & {t.name for t in first.trials}
    with pytest.raises(ValueError, match="if_exists"):
        client.tune("rerun", quad, space, objective_metric_name="loss", if_exists="overwrite")


def test_results_as_a_table_and_an_optuna_study(client, monkeypatch):
    optuna = pytest.importorskip("optuna")

    def objective(x, n, opt, k):
        return (x - 1) ** 2 + n + (opt == "b") + k

    result = client.tune("results", objective, SPACE, objective_metric_name="loss", objective_type="minimize",
                         max_trial_count=5, parallel_trial_count=3, progress=False)
    frame = result.trials_dataframe()
    assert list(frame.columns[:8]) == ["number", "name", "state", "value", "params_x", "params_n", "params_opt",
                                       "params_k"]
    assert len(frame) == 5 and frame["value"].min() == result.best_value
    study = result.to_optuna_study()
    assert study.direction == optuna.study.StudyDirection.MINIMIZE and len(study.trials) == 5
    assert study.best_value == result.best_value and study.best_params == result.best_params
    assert study.best_trial.user_attrs["katib_trial"] == result.best_trial.name
    assert set(optuna.importance.get_param_importances(study)) == set(SPACE)
    assert optuna.visualization.plot_optimization_history(study) is not None
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(KatibError, match="needs pandas"):
        result.trials_dataframe()


def test_a_function_that_needs_its_surroundings_is_refused_for_kubernetes_before_any_trial():
    from katib._tune import experiment_doc
    from katib.controller import admit
    from katib.controller._admission import runnable_errors

    def needs(x):
        return shifted(x) * m.pi

    def alone(parameters):
        import math

        return math.sqrt(abs(parameters["x"]))

    def doc(fn):
        d, _ = experiment_doc("k8s", fn, {"x": search.double(0, 1)}, "loss", "StdOut", None, objective_type="minimize",
                              objective_goal=None, additional_metric_names=None, algorithm_name="random",
                              algorithm_settings=None, max_trial_count=2, parallel_trial_count=None,
                              max_failed_trial_count=None, resources_per_trial=None, env_per_trial=None, base_image=None)
        return admit(d)

    errors = runnable_errors(doc(needs), "kubernetes")
    assert len(errors) == 1 and errors[0].path == "spec.trialTemplate.trialSpec"
    assert "shifted (a function)" in errors[0].message and "m (the module math)" in errors[0].message
    assert runnable_errors(doc(needs), "local") == [] and runnable_errors(doc(alone), "kubernetes") == []
    assert runnable_errors(doc(lambda p: 1), "kubernetes")[0].message.count("a lambda has no source") == 1
    assert executor_errors({ANNOTATION: "not json"}, "kubernetes") == []


def test_in_a_pod_of_another_image_the_source_runs(tmp_path):
    """Where the pickle cannot load (another Python, no cloudpickle) a self-contained
    function runs from its source, with typed parameters, and reports what it returns."""

    def alone(parameters):
        import math

        return {"loss": math.sqrt(parameters["x"]) + parameters["n"]}

    shipment = ship(alone, {"x": search.double(0, 9), "n": search.int(1, 3)}, "loss", "StdOut", None)
    plan = json.loads(shipment.command[4])
    plan["python"] = [2, 7]  # a pod's Python: the pickle is not for it
    assert shipment.command[:3] == ["python3", "-u", "-c"] and shipment.command[3] == trial_program()
    out = subprocess.run([sys.executable, "-I", "-c", trial_program(), json.dumps(plan), "4.0", "2"],
                         capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert out.strip() == "loss=4.0"
    plan["source"] = None
    failed = subprocess.run([sys.executable, "-I", "-c", trial_program(), json.dumps(plan), "4.0", "2"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert failed.returncode != 0 and "cannot run 'alone' here" in failed.stderr


def test_a_remote_client_tunes_a_closure_and_refuses_a_too_large_one(tmp_path, sqlite_store):
    np = pytest.importorskip("numpy")
    from tests.api_tests.conftest import LiveServer

    bias = 2.0
    with LiveServer(sqlite_store, tmp_path) as server, KatibClient(url=server.url) as client:
        result = client.tune("remote", lambda x: abs(x - bias), {"x": search.double(0, 4)},
                             objective_metric_name="loss", objective_type="minimize", max_trial_count=2,
                             progress=False)
        assert result.best_value == pytest.approx(abs(result.best_params["x"] - 2.0))
        data = np.random.default_rng(0).random((400, 400))
        with pytest.raises(KatibError, match=r"data \(\d+ KiB\)"):
            client.tune("large", lambda x: float(data.mean()) + x, {"x": search.double(0, 4)},
                        objective_metric_name="loss")
        assert [e["metadata"]["name"] for e in client.list_experiments()] == ["remote"]


def test_the_function_must_take_the_parameters():
    with pytest.raises(KatibError, match="keyword arguments named after the parameters"):
        ship(lambda a, b: 1, {"x": search.double(0, 1)}, "loss", "StdOut", None)


def test_values_that_look_like_rich_markup_show_as_they_are(client, capsys):
    # The progress line was rich markup with the best parameters in it: "[/x]" raised
    # MarkupError out of tune(), and "[red]" vanished from what was shown.
    result = client.tune("markup", lambda p: 1.0 if p["opt"] == "[/x]" else 2.0,
                         {"opt": search.categorical(["[/x]", "[red]"])}, objective_metric_name="loss",
                         objective_type="minimize", max_trial_count=2, parallel_trial_count=1, algorithm_name="grid")
    assert result.best_params == {"opt": "[/x]"}
    assert "opt=[/x]" in capsys.readouterr().err


def test_a_result_read_from_katib_objects_takes_no_nan_or_infinity():
    """A Katib server may hold ``nan`` or ``inf`` as a trial's value (its collectors keep what
    reads as a float): the client's result reads them as no value, not as a best value."""
    exp = {"metadata": {"name": "e"}, "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"}},
           "status": {"currentOptimalTrial": {"bestTrialName": "e-1"}}}
    trial = {"metadata": {"name": "e-1"}, "status": {"observation": {"metrics": [
        {"name": "loss", "min": "nan", "max": "nan", "latest": "nan"}, {"name": "acc", "min": "inf", "max": "inf", "latest": "inf"}]}}}
    result = ExperimentResult(exp, [trial])
    assert result.trials[0].value is None and result.trials[0].metrics == {}
    with pytest.raises(NoResultError):
        _ = result.best_value


def test_what_the_function_returns_is_its_result_whatever_it_printed(client):
    # Trials report on stdout, which the StdOut collector reads whole: a training-progress
    # line 'score=0.999' and the returned 0.5 were two values of one metric, and Katib's
    # default strategy (max) made the line the result.
    def objective(x):
        print("score=0.999")  # an epoch's score, say
        return {"score": 0.5 + 0 * x, "loss": 2.0}

    result = client.tune("returned", objective, {"x": search.double(0, 1)}, "score", additional_metric_names=["loss"],
                         max_trial_count=2, progress=False)
    assert result.best_value == 0.5
    assert {t.metrics["score"] for t in result.trials} == {0.5}
    # A caller who wants Katib's reading names it.
    result = client.tune("maxed", objective, {"x": search.double(0, 1)}, "score", max_trial_count=1, progress=False,
                         metric_strategies={"score": "max"})
    assert result.best_value == 0.999


def test_a_metric_name_the_stdout_filter_cannot_read_whole_is_refused(client):
    # Katib's filter reads 'val/score=0.9' as 'score=0.9': a returned {'score': 0.5,
    # 'train/score': 0.99} made 0.99 the score, and a metric named 'val/score' was never read.
    with pytest.raises(ValueError, match=r"metric name 'val/score' cannot be read from a trial's output"):
        client.tune("slash", lambda x: x, {"x": search.double(0, 1)}, "val/score", max_trial_count=1, progress=False)
    with pytest.raises(NoResultError):
        client.tune("returned-slash", lambda x: {"score": 0.5, "train/score": 0.99}, {"x": search.double(0, 1)}, "score",
                    max_trial_count=1, progress=False)
    (trial,) = client.get_experiment_result("returned-slash").trials
    assert "metric 'train/score' cannot be reported on the trial's output" in client.get_trial_log(trial.name)
    # What Push carries is not text: any name goes.
    assert client.tune("pushed", lambda x: {"val/score": 0.25}, {"x": search.double(0, 1)}, "val/score",
                       metrics_collector="Push", max_trial_count=1, progress=False).best_value == 0.25


def test_a_stopped_experiments_result_says_stopped_not_created(client):
    # After a stop (Ctrl-C in tune, stop_experiment) its Running condition is False: the
    # result's state fell back to its newest true condition, "Created", where katib get
    # says Stopped.
    import time

    client.tune("stopped", lambda x: time.sleep(30), {"x": search.double(0, 1)}, "score", max_trial_count=3,
                progress=False, wait=False)
    deadline = time.monotonic() + 20
    while client.get_experiment_result("stopped").state != "Running" and time.monotonic() < deadline:
        time.sleep(0.1)
    client.stop_experiment("stopped")
    assert client.get_experiment_result("stopped").state == "Stopped"


def test_a_failed_trials_number_is_no_value_in_the_table(client):
    # A trial that reported its metric and then crashed is Failed: its number is not a result
    # (Katib's best trial and Optuna's FAIL trials have none). The table's value column
    # carried it, so a notebook's sort_values("value") put a crashed trial on top.
    def objective(x):
        print("score=0.99", flush=True)
        if x > 0.5:
            raise RuntimeError("diverged")
        return 0.1

    result = client.tune("crashy", objective, {"x": search.discrete([0.25, 0.75])}, "score", algorithm_name="grid",
                         max_trial_count=2, max_failed_trial_count=2, progress=False)
    failed = next(t for t in result.trials if t.state == "Failed")
    # Reported, not a value: Katib's trial object has no observation for a failed trial (its
    # reports are its metric logs: get_trial_metrics)
    assert failed.value is None and "score" not in failed.metrics
    table = result.trials_dataframe().sort_values("value", ascending=False)
    assert table.iloc[0]["state"] == "Succeeded" and table.iloc[0]["value"] == 0.1


def test_reuse_takes_the_cells_new_budget(client):
    # A re-run cell with a bigger max_trial_count returned the old result and ran nothing.
    space = {"x": search.double(-2, 2)}
    client.tune("budget", lambda x: x * x, space, "loss", objective_type="minimize", max_trial_count=2,
                parallel_trial_count=1, progress=False, wait=False)
    client.stop_experiment("budget")
    more = client.tune("budget", lambda x: x * x, space, "loss", objective_type="minimize", max_trial_count=3,
                       parallel_trial_count=1, if_exists="reuse", progress=False)
    assert client.get_experiment("budget")["spec"]["maxTrialCount"] == 3
    assert more.state == "Succeeded" and len(more.trials) == 3


def test_names_the_filter_cannot_read_and_strategies_of_no_metric_are_refused(client):
    # The collector's filter is RE2's, whose \w is ASCII: 'accé' passed a Python \w check and
    # no trial ever reported it. A strategy for a metric the experiment has not did nothing.
    with pytest.raises(ValueError, match="'accé' cannot be read"):
        client.tune("accent", lambda x: x, {"x": search.double(0, 1)}, "accé", max_trial_count=1, progress=False)
    with pytest.raises(ValueError, match="metric_strategies names 'acc'"):
        client.tune("typo", lambda x: x, {"x": search.double(0, 1)}, "score", max_trial_count=1, progress=False,
                    metric_strategies={"acc": "max"})


def test_reuse_takes_an_experiment_made_before_tune_named_its_strategies(client):
    # tune() now stores metricStrategies (latest): an experiment an earlier version made
    # (Katib's defaults) was "another spec.objective", and the hint was to replace it.
    from katib import _tune

    doc, shipment = _tune.experiment_doc(
        "older", lambda x: x, {"x": search.double(0, 1)}, "score", "StdOut", None, objective_type="maximize",
        objective_goal=None, additional_metric_names=None, algorithm_name="random", algorithm_settings=None,
        max_trial_count=1, parallel_trial_count=1, max_failed_trial_count=None, resources_per_trial=None,
        env_per_trial=None, base_image=None)
    del doc["spec"]["objective"]["metricStrategies"]  # as the earlier version wrote it
    _tune.create(client, doc, shipment, "default", "error")
    result = client.tune("older", lambda x: x, {"x": search.double(0, 1)}, "score", algorithm_name="random",
                         max_trial_count=1, parallel_trial_count=1, if_exists="reuse", progress=False)
    assert result.state == "Succeeded"
