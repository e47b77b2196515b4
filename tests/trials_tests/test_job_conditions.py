"""A trial's ``successCondition`` / ``failureCondition`` over its job, as Katib judges them.

Ported from ``pkg/controller.v1beta1/trial/util/job_util_test.go`` (TestGetDeployedJobStatus),
plus what its ``GetDeployedJobStatus`` says of any path: a condition holds only when the path
finds an object or a non-empty array, so a plain value (a number, a string, ``false``) never
ends a trial.
"""

from __future__ import annotations

import copy

import pytest

from katib.spec._template import JOB_FAILURE, JOB_SUCCESS
from trials._gjson import holds

UPSTREAM = "pkg/controller.v1beta1/trial/util/job_util_test.go"
JOB = {"metadata": {"name": "test-job"}, "status": {
    "conditions": [{"type": "Failed", "status": "False", "reason": "test-reason", "message": "test-message"},
                   {"type": "Complete", "status": "True", "reason": "test-reason", "message": "test-message"}],
    "succeeded": 1}}


def _judge(job: dict, success: str = JOB_SUCCESS, failure: str = JOB_FAILURE) -> str:
    if holds(job, failure):
        return "Failed"
    if holds(job, success):
        return "Succeeded"
    return "Running"


def _with(failed: str, complete: str) -> dict:
    job = copy.deepcopy(JOB)
    job["status"]["conditions"][0]["status"], job["status"]["conditions"][1]["status"] = failed, complete
    return job


@pytest.mark.parametrize(("case", "job", "success", "want"), [
    ("Job status is running", _with("False", "False"), JOB_SUCCESS, "Running"),
    ("Job status is succeeded, reason and message must be returned", JOB, JOB_SUCCESS, "Succeeded"),
    ("Job status is failed, reason and message must be returned", _with("True", "False"), JOB_SUCCESS, "Failed"),
    ("Job status is succeeded because status.succeeded = 1", JOB, "status.[@this].#(succeeded==1)", "Succeeded"),
], ids=lambda v: v if isinstance(v, str) and " " in v else "")
def test_get_deployed_job_status(case, job, success, want):
    assert _judge(job, success) == want, f"{UPSTREAM}: {case}"


@pytest.mark.parametrize("path", [
    "status.succeeded",  # a number
    "status.conditions.#(type==\"Complete\").status",  # a string, whatever it says
    "status.conditions.#(type==\"Failed\").status",
    "status.active",  # missing
    "status.conditions.#(type==\"Suspended\")#",  # an empty array of matches
    "metadata.name",
])
def test_a_plain_value_found_is_no_condition(path):
    job = copy.deepcopy(JOB)
    job["status"]["ready"] = False
    assert not holds(job, path)
    assert not holds(job, "status.ready")
    assert _judge(_with("False", "False"), success=path) == "Running"


def test_an_object_or_a_non_empty_array_is():
    assert holds(JOB, "status")
    assert holds(JOB, 'status.conditions.#(type=="Complete")')
    assert holds(JOB, 'status.conditions.#(type=="Complete")#')
