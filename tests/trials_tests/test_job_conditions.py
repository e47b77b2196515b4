"""A trial's ``successCondition`` / ``failureCondition`` over its job, as Katib judges them.

Ported from ``pkg/controller.v1beta1/trial/util/job_util_test.go`` (TestGetDeployedJobStatus),
plus what its ``GetDeployedJobStatus`` says of any path: a condition holds only when the path
finds an object or a non-empty array, so a plain value (a number, a string, ``false``) never
ends a trial.
"""

from __future__ import annotations

import copy

import pytest

from katib.spec._gjson import holds
from katib.spec._template import JOB_FAILURE, JOB_SUCCESS

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


# -- tidwall/gjson v1.14.1, the version Katib vendors (go.mod): parseQuery, parseArrayPath
# (a quoted value's quotes stripped) and queryMatches (compared by the document value's type).
GJSON_JOB = {"metadata": {"name": "j", "annotations": {"example.com/done": {"at": "x"}}},
             "status": {"succeeded": 1, "ready": True, "active": 0, "note": None,
                        "conditions": [{"type": "Failed", "status": "False"},
                                       {"type": "Complete", "status": "True", "reason": "CompletionsReached"}]}}


@pytest.mark.parametrize(("path", "want"), [
    ('status.[@this].#(succeeded=="1")#', True),  # the number 1 against "1": compared as numbers
    ('status.[@this].#(succeeded==1)#', True),
    ('status.[@this].#(succeeded>0.5)#', True),
    ('status.[@this].#(succeeded=="2")#', False),
    ('status.[@this].#(ready=="true")#', True),  # a boolean against "true"
    ('status.[@this].#(ready==true)#', True),
    ('status.[@this].#(ready!=true)#', False),
    ('status.[@this].#(ready==~true)#', True),  # ~: the value read as a boolean
    ('status.[@this].#(active==~false)#', True),  # 0 is false
    ('status.[@this].#(missing==~false)#', True),  # a missing value too
    ('status.[@this].#(note)#', True),  # null exists
    ('status.conditions.#(reason)#', True),  # existence: no operator
    ('status.conditions.#(message)#', False),
    ('status.conditions.#(type!%"Fail*")#', True),  # not like
    ('status.conditions.#(type%"Comp?ete")#', True),
    ('status.conditions.#(type=Complete)#', True),  # a single '=' and an unquoted string
    ('status.conditions.#[type=="Complete"]#', True),  # brackets for parentheses
    ('status.conditions.#(type>"Complete")#', True),  # "Failed" > "Complete", byte by byte
    ('metadata.annotations.example\\.com/done', True),  # an escaped dot is part of the key
    ('metadata.annotations.example.com/done', False),
    ('metadata.annot*', True),  # a wildcard: the first key that matches
    ('status.conditions.#(type=="Complete")#|#(status=="True")#', True),
    ('status.conditions.#(type=="Failed")#|#(status=="True")#', False),
])
def test_gjson_queries_match_as_gjson_does(path, want):
    assert holds(GJSON_JOB, path) is want, path


def test_hash_dot_key_maps_over_the_array():
    from katib.spec._gjson import get

    assert get(GJSON_JOB, "status.conditions.#.type") == ["Failed", "Complete"]
    assert get(GJSON_JOB, "status.conditions.#") == 2


def test_an_array_of_plain_values_found_is_no_condition_katib_can_read():
    # Katib unmarshals the first match into its job status: a string fails, and the trial is
    # left as it was. It is no condition here either, and the executor says why it waits.
    from katib.spec._gjson import unreadable

    path = 'status.conditions.#(type=="Complete")#.status'
    assert not holds(GJSON_JOB, path)
    assert unreadable(GJSON_JOB, path) == ["True"]
    assert unreadable(GJSON_JOB, JOB_SUCCESS) is None


@pytest.mark.parametrize(("path", "says"), [
    ("status.conditions.@reverse", "modifier '@reverse'"),
    ('status.{"a":type}', "multipath"),
    ("status.[type,reason]", "multipath"),
    ("..status", "JSON-lines"),
    ('status.conditions.#(type=="Complete"', "does not parse"),
    ('status.conditions.#(type=="Complete")x', "does not parse"),
    ("status.cond)itions", "parenthesis"),
])
def test_a_gjson_form_not_read_here_is_refused_naming_the_field(path, says):
    from pathlib import Path

    import yaml

    from katib.errors import ValidationError
    from katib.spec import admit

    doc = yaml.safe_load((Path(__file__).parents[2] / "examples" / "random.yaml").read_text())
    doc["spec"]["trialTemplate"]["successCondition"] = path
    doc["spec"]["trialTemplate"]["failureCondition"] = JOB_FAILURE
    with pytest.raises(ValidationError) as err:
        admit(doc)
    text = str(err.value)
    assert "spec.trialTemplate.successCondition" in text and says in text, text


@pytest.mark.parametrize("path", [JOB_SUCCESS, JOB_FAILURE, "status.[@this].#(succeeded==1)",
                                  'status.conditions.#(type=="Complete")#.status', "status.conditions.#.type",
                                  "metadata.annotations.example\\.com/done", "status.@this"])
def test_the_forms_read_here_are_admitted(path):
    from katib.spec._gjson import path_problem

    assert path_problem(path) == ""


def test_a_condition_of_unbounded_size_or_depth_is_refused_not_a_crash():
    # Queries nested in queries' paths were checked by recursion: 3,000 deep raised
    # RecursionError at admission (a stack trace, where a field's error was due).
    from katib.spec._gjson import path_problem

    deep = "status." + "#(" * 3000 + "a" + "==1)" * 3000
    assert "more than 16 deep" in path_problem(deep) or "longer than" in path_problem(deep)
    assert "more than 16 deep" in path_problem("status." + "#(" * 20 + "a" + "==1)" * 20)
    assert "longer than 4096" in path_problem("status." + "a" * 5000)


def test_after_an_all_matches_query_the_rest_of_the_path_is_each_matchs():
    # gjson applies what follows '#(…)#.' to each match: a query there is asked of each
    # condition object (no array: no match), not of the array of matches.
    assert not holds(GJSON_JOB, 'status.conditions.#(type=="Complete")#.#(status=="True")')
    assert holds(GJSON_JOB, 'status.conditions.#(type=="Complete")#|#(status=="True")')


def test_a_wildcard_pattern_costs_time_linear_in_the_text():
    """``*a*a*…*b`` against an image name made Python's backtracking ``re`` run for seconds
    (20 s at 8 stars over 60 characters), holding the GIL: one tenant's condition froze the
    server's every request. Matching is RE2's now; one too complex to decide is no match, as
    GJSON's MatchLimit answers."""
    import time

    job = {"spec": {"containers": [{"image": "a" * 200, "name": "x.y*z"}]}, "items": {"a" * 200: {"type": "T"}}}
    started = time.monotonic()
    assert not holds(job, 'spec.containers.#(image%"' + "*a" * 13 + '*b")')
    assert not holds(job, "items." + "*a" * 13 + "*b")  # a wildcard key, the same way
    assert holds(job, 'spec.containers.#(image%"' + "*a" * 13 + '*")')
    assert holds(job, 'spec.containers.#(image!%"' + "*a" * 300 + '*b")')
    assert time.monotonic() - started < 1
    # In a quoted value JSON's escapes come first: a doubled backslash is the pattern's escape.
    assert holds(job, 'spec.containers.#(name%"x.y\\\\*z")') and not holds(job, 'spec.containers.#(name%"x?y\\\\*")')
    assert holds(job, 'spec.containers.#(name%"x?y*")') and holds(job, "items.a?a*")
    job["spec"]["containers"][0]["name"] = "héllo\nwörld"
    assert holds(job, 'spec.containers.#(name%"h?llo*d")')


def test_a_long_pattern_over_a_long_value_is_bounded_and_stars_match_anything():
    """RE2's cost is the pattern's length times the value's: a 16 KB pattern over a 250 KB
    annotation took 20 s a poll. Past the budget it is no match (GJSON's MatchLimit); a
    pattern of stars alone matches any value at once, and a trailing escape none (Go's)."""
    import time

    job = {"metadata": {"annotations": {"big": "x" * 250_000, "name": "a\\"}}}
    started = time.monotonic()
    assert not holds(job, 'metadata.[@this].#(annotations.big%"*' + "y" * 16_000 + '*")')
    assert time.monotonic() - started < 1
    job["metadata"]["annotations"]["big"] = "x" * 2_000_000
    assert holds(job, 'metadata.[@this].#(annotations.big%"*")')
    assert not holds(job, 'metadata.[@this].#(annotations.name%"a\\\\")')  # the pattern a\ : Go says no
