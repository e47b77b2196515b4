"""Run with the *real* kubeflow-katib SDK's Python (its own environment) against a katib
server: ``python drive_katib_sdk.py http://127.0.0.1:PORT``. Prints one JSON line of
findings; exits non-zero when the SDK fails."""

import json
import sys

import kubeflow.katib as katib
from kubeflow.katib import KatibClient, models
from kubernetes.client import (
    ApiClient,
    Configuration,
    V1Container,
    V1Job,
    V1JobSpec,
    V1ObjectMeta,
    V1PodSpec,
    V1PodTemplateSpec,
)

host = sys.argv[1]
config = Configuration()
config.host = host
client = KatibClient(client_configuration=config, namespace="default")
found = {}

# 1. create_experiment with SDK models, the way Katib's docs build one.
job = V1Job(
    api_version="batch/v1", kind="Job",
    spec=V1JobSpec(template=V1PodTemplateSpec(spec=V1PodSpec(restart_policy="Never", containers=[V1Container(
        name="training-container", image="python:3.11",
        command=["python3", "-c", "print('accuracy=' + str(1 - (float('${trialParameters.lr}') - 0.03) ** 2))"],
    )]))),
)
experiment = models.V1beta1Experiment(
    api_version="kubeflow.org/v1beta1", kind="Experiment",
    metadata=V1ObjectMeta(name="sdk-random", namespace="default"),
    spec=models.V1beta1ExperimentSpec(
        max_trial_count=3, parallel_trial_count=2, max_failed_trial_count=1, resume_policy="LongRunning",
        algorithm=models.V1beta1AlgorithmSpec(algorithm_name="random"),
        objective=models.V1beta1ObjectiveSpec(type="maximize", objective_metric_name="accuracy"),
        parameters=[models.V1beta1ParameterSpec(name="lr", parameter_type="double",
                                                feasible_space=models.V1beta1FeasibleSpace(min="0.01", max="0.05"))],
        trial_template=models.V1beta1TrialTemplate(
            primary_container_name="training-container",
            trial_parameters=[models.V1beta1TrialParameterSpec(name="lr", reference="lr")],
            trial_spec=ApiClient().sanitize_for_serialization(job),
        ),
    ),
)
client.create_experiment(experiment)
client.wait_for_experiment_condition(name="sdk-random", timeout=120, polling_interval=1)
found["succeeded"] = client.is_experiment_succeeded("sdk-random")
optimal = client.get_optimal_hyperparameters("sdk-random")
found["optimal_trial"] = optimal.best_trial_name
found["optimal_lr"] = optimal.parameter_assignments[0].value
found["trials"] = sorted(t.metadata.name for t in client.list_trials("sdk-random"))
found["success_details"] = len(client.get_success_trial_details("sdk-random"))
found["suggestion_count"] = client.get_suggestion("sdk-random").status.suggestion_count
found["logs"] = "\n".join(client.get_job_logs("sdk-random", found["trials"][0], namespace="default"))
# follow=True streams the log (kubectl logs -f) until the trial has ended: this one has
found["followed"] = "\n".join(client.get_job_logs("sdk-random", found["trials"][0], namespace="default", follow=True))

# 2. edit_experiment_budget restarts a finished LongRunning experiment.
client.edit_experiment_budget("sdk-random", max_trial_count=5)
client.wait_for_experiment_condition(name="sdk-random", timeout=120, polling_interval=1)
found["trials_after_edit"] = len(client.list_trials("sdk-random"))
found["experiments"] = [e.metadata.name for e in client.list_experiments()]

# 3. delete_experiment
client.delete_experiment("sdk-random")
found["after_delete"] = [e.metadata.name for e in client.list_experiments()]


# 4. tune() of a plain function: its source runs as `bash -c` in a local trial.
def objective(parameters):
    import math

    x = float(parameters["x"])
    print(f"result={1 - math.sin(x) ** 2:.6f}")


client.tune(name="sdk-tune", objective=objective, parameters={"x": katib.search.double(min=0.1, max=3.0)},
            objective_metric_name="result", objective_type="minimize", max_trial_count=4, parallel_trial_count=2,
            resources_per_trial={"cpu": "1"})
client.wait_for_experiment_condition(name="sdk-tune", timeout=180, polling_interval=1)
found["tune_succeeded"] = client.is_experiment_succeeded("sdk-tune")
found["tune_best"] = client.get_optimal_hyperparameters("sdk-tune").best_trial_name


# 5. Katib's gRPC DBManager (argv[2]): a trial pushes with the SDK's own report_metrics, and
#    get_trial_metrics reads the trial's log back.
if len(sys.argv) > 2:
    grpc_address = sys.argv[2]
    # report_metrics reads the pod's namespace from the service-account file, which only a pod
    # has: the trial gives that one function its answer; the gRPC call is the SDK's own.
    push = ("import kubeflow.katib.utils.utils as u; u.get_current_k8s_namespace = lambda: 'default'; "
            "from kubeflow.katib import report_metrics; "
            f"report_metrics({{'accuracy': 1 - float('${{trialParameters.lr}}')}}, db_manager_address='{grpc_address}')")
    job.spec.template.spec.containers[0].command = [sys.executable, "-c", push]
    experiment.metadata.name = "sdk-grpc"
    experiment.spec.max_trial_count = 2
    experiment.spec.metrics_collector_spec = models.V1beta1MetricsCollectorSpec(
        collector=models.V1beta1CollectorSpec(kind="Push"))
    experiment.spec.trial_template.trial_spec = ApiClient().sanitize_for_serialization(job)
    client.create_experiment(experiment)
    client.wait_for_experiment_condition(name="sdk-grpc", timeout=120, polling_interval=1)
    found["grpc_succeeded"] = client.is_experiment_succeeded("sdk-grpc")
    trial = client.list_trials("sdk-grpc")[0]
    lr = [a.value for a in trial.spec.parameter_assignments if a.name == "lr"][0]
    logs = client.get_trial_metrics(trial.metadata.name, db_manager_address=grpc_address)
    found["grpc_metrics"] = [(m.metric.name, m.metric.value, m.time_stamp) for m in logs]
    found["grpc_expected"] = str(1 - float(lr))
    found["grpc_observation"] = [(m.name, m.latest) for m in trial.status.observation.metrics]
    try:
        found["grpc_unknown"] = len(client.get_trial_metrics("no-such-trial", db_manager_address=grpc_address))
    except RuntimeError as exc:
        found["grpc_unknown"] = str(exc)

print(json.dumps(found, default=str))
