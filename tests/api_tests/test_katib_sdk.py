"""The unmodified kubeflow-katib SDK (0.19, kubernetes <= 35), installed in its own
environment by .ci/run, drives our server: create → wait for Succeeded →
get_optimal_hyperparameters → list_trials → edit_experiment_budget → delete_experiment,
tune() of a small function, and over Katib's gRPC DBManager on the server's --grpc-port:
report_metrics in a trial, get_trial_metrics after."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.api_tests.conftest import LiveServer

SDK_PYTHON = os.environ.get("KATIB_SDK_PYTHON")
SCRIPT = Path(__file__).with_name("sdk") / "drive_katib_sdk.py"


@pytest.fixture
def sdk_python() -> str:
    if not SDK_PYTHON:
        if os.environ.get("CI"):
            pytest.fail("CI must provide the kubeflow-katib SDK's Python in KATIB_SDK_PYTHON (.ci/run makes it)")
        pytest.skip("KATIB_SDK_PYTHON is not set: run .ci/run, or make a venv with kubeflow-katib==0.19.0 'kubernetes<36'")
    return SDK_PYTHON


def test_the_real_sdk_drives_the_server(sdk_python, sqlite_store, tmp_path):
    with LiveServer(sqlite_store, tmp_path, tick=0.2, grpc_address=("127.0.0.1", 0)) as server:
        grpc_address = f"127.0.0.1:{server.app.state.grpc_port}"
        result = subprocess.run([sdk_python, str(SCRIPT), server.url, grpc_address],
                                capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["succeeded"] is True
    assert found["optimal_trial"] in found["trials"] and len(found["trials"]) == 3
    assert 0.01 <= float(found["optimal_lr"]) <= 0.05
    assert found["success_details"] == 3 and found["suggestion_count"] == 3
    assert found["logs"].startswith("accuracy=") and found["followed"] == found["logs"]
    assert found["trials_after_edit"] == 5
    assert found["experiments"] == ["sdk-random"] and found["after_delete"] == []
    assert found["tune_succeeded"] is True and found["tune_best"].startswith("sdk-tune-")
    # Katib's DBManager over gRPC: the SDK's report_metrics in a trial, get_trial_metrics after.
    assert found["grpc_succeeded"] is True
    [(name, value, stamp)] = found["grpc_metrics"]
    assert (name, value) == ("accuracy", found["grpc_expected"]) and stamp.endswith("Z")
    assert found["grpc_observation"] == [["accuracy", found["grpc_expected"]]]
    assert found["grpc_unknown"] == 0
