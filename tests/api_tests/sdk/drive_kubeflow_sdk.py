"""Run with the *real* Kubeflow SDK's Python (``kubeflow==0.5.0`` in its own environment)
against a katib server: ``python drive_kubeflow_sdk.py http://127.0.0.1:PORT``. Its
``OptimizerClient`` writes a Katib Experiment whose trials are Trainer TrainJobs running a
``CustomTrainer`` function; prints one JSON line of findings; exits non-zero when the SDK fails."""

import json
import sys

from kubeflow.optimizer import (
    KubernetesBackendConfig,
    Objective,
    OptimizerClient,
    RandomSearch,
    Search,
    TrainJobTemplate,
    TrialConfig,
)
from kubeflow.trainer import CustomTrainer
from kubernetes.client import Configuration


def train(lr, momentum, optimizer):
    # A tiny "training": a quadratic in lr and momentum; sgd costs a little more.
    import math

    loss = (math.log10(float(lr)) + 2) ** 2 + (float(momentum) - 0.7) ** 2 + (0.1 if optimizer == "sgd" else 0.0)
    print(f"optimizer {optimizer} lr {lr} momentum {momentum}")
    print(f"loss={loss}")


config = Configuration()
config.host = sys.argv[1]
client = OptimizerClient(KubernetesBackendConfig(namespace="default", client_configuration=config))
found = {}

name = client.optimize(
    TrainJobTemplate(trainer=CustomTrainer(func=train)),
    trial_config=TrialConfig(num_trials=3, parallel_trials=3, max_failed_trials=1),
    search_space={
        "lr": Search.loguniform(0.001, 0.1),
        "momentum": Search.uniform(0.5, 0.9),
        "optimizer": Search.choice(["sgd", "adam"]),
    },
    objectives=[Objective(metric="loss", direction="minimize")],
    algorithm=RandomSearch(random_state=7),
)
found["name"] = name
job = client.wait_for_job_status(name, timeout=120, polling_interval=1)
found["status"] = job.status
found["trials"] = {t.name: {"parameters": t.parameters, "metrics": {m.name: m.latest for m in t.metrics},
                            "trainjob_status": t.trainjob.status, "runtime": t.trainjob.runtime.name,
                            "steps": [[s.name, s.status] for s in t.trainjob.steps], "num_nodes": t.trainjob.num_nodes}
                   for t in job.trials}
got = client.get_job(name)
found["get_job"] = {"name": got.name, "status": got.status, "num_trials": got.trial_config.num_trials,
                    "algorithm": type(got.algorithm).__name__, "objectives": [o.metric for o in got.objectives],
                    "search_space": sorted(got.search_space)}
found["list_jobs"] = [j.name for j in client.list_jobs()]
best = client.get_best_results(name)
found["best"] = {"parameters": best.parameters, "metrics": {m.name: [m.min, m.max, m.latest] for m in best.metrics}}
found["logs"] = list(client.get_job_logs(name))
first = sorted(found["trials"])[0]
found["trial_logs"] = {first: list(client.get_job_logs(name, trial_name=first))}
found["followed_logs"] = list(client.get_job_logs(name, trial_name=first, follow=True))  # kubectl logs -f: it has ended
found["events"] = [[e.involved_object_kind, e.involved_object_name, e.reason] for e in client.get_job_events(name)]
client.delete_job(name)
found["after_delete"] = [j.name for j in client.list_jobs()]
print(json.dumps(found))
