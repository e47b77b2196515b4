"""JSON Patch (RFC 6902) as ``kubectl patch --type=json`` sends it: the RFC's own examples
(appendix A), its errors, and a patch of an experiment's budget over HTTP."""

from __future__ import annotations

import pytest

from api._jsonpatch import apply
from katib.errors import ValidationError
from tests.conftest import experiment

KUBE = "/apis/kubeflow.org/v1beta1/namespaces/default"


@pytest.mark.parametrize(("doc", "patch", "expected"), [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),  # A.1
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),  # A.2
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),  # A.3
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),  # A.4
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo", "foo": "bar"}),  # A.5
    ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),  # A.6
    ({"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),  # A.7
    ({"baz": "qux", "foo": ["a", 2, "c"]}, [{"op": "test", "path": "/baz", "value": "qux"},
                                            {"op": "test", "path": "/foo/1", "value": 2}], {"baz": "qux", "foo": ["a", 2, "c"]}),  # A.8
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}], {"foo": "bar", "child": {"grandchild": {}}}),  # A.10
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}], {"foo": ["bar", ["abc", "def"]]}),  # A.16
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),  # A.14
    ({"a": 1}, [{"op": "copy", "from": "/a", "path": "/b"}], {"a": 1, "b": 1}),
])
def test_the_rfcs_examples(doc, patch, expected):
    before = repr(doc)
    assert apply(doc, patch) == expected
    assert repr(doc) == before  # the document itself is left as it was


@pytest.mark.parametrize(("doc", "patch", "message"), [
    ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], "is not 'bar'"),  # A.9
    ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], "does not exist"),  # A.12
    ({"foo": "bar"}, [{"op": "remove", "path": "/nothing"}], "does not exist"),
    ({"foo": "bar"}, [{"op": "replace", "path": "/nothing", "value": 1}], "does not exist"),
    ({"foo": [1]}, [{"op": "add", "path": "/foo/5", "value": 1}], "past the end"),
    ({"foo": [1]}, [{"op": "remove", "path": "/foo/01"}], "not an index"),
    ({"foo": "bar"}, [{"op": "launch", "path": "/foo"}], "op must be one of"),
    ({"foo": "bar"}, [{"op": "add", "path": "foo", "value": 1}], "JSON Pointer"),
    ({"foo": "bar"}, [{"op": "replace", "path": "/foo"}], "needs a value"),
    ({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/c"}], "into itself"),
    ({"foo": "bar"}, ["add"], "an operation is an object"),
])
def test_a_bad_operation_is_named_by_its_index(doc, patch, message):
    with pytest.raises(ValidationError) as caught:
        apply(doc, patch)
    [error] = caught.value.errors
    assert error.path == f"[{len(patch) - 1}]" and message in error.message


def test_copies_cannot_grow_a_document_past_what_a_document_may_hold():
    doc = {"a": list(range(1000))}  # 1,002 values: each copy of the whole doubles it
    doubling = [{"op": "copy", "from": "", "path": f"/x{i}"} for i in range(20)]
    assert len(apply(doc, doubling[:6])) == 7  # 64,128 values
    with pytest.raises(ValidationError) as caught:
        apply(doc, doubling)
    [error] = caught.value.errors
    assert error.path == "[6]" and "more than 100000 values" in error.message  # not 2**20 copies


def test_copies_cannot_nest_a_document_past_what_a_document_may_hold():
    doc = {"a": {"b": 1}}
    nesting = [{"op": "copy", "from": "/a", "path": "/a/b"}] * 100  # each one level deeper
    with pytest.raises(ValidationError) as caught:
        apply(doc, nesting)  # copies into their own leaves nested until a RecursionError, a 500
    assert "nest deeper than 64 levels" in caught.value.errors[0].message
    assert caught.value.errors[0].path == "[62]"  # /a at depth 63 would be copied to depth 2
    assert apply(doc, nesting[:62])


@pytest.mark.parametrize(("value", "same"), [(True, False), (1, True), (1.0, True), ("1", False), ([1], False)])
def test_a_test_compares_json_values_not_pythons(value, same):
    doc = {"n": 1}
    patch = [{"op": "test", "path": "/n", "value": value}]
    if same:
        assert apply(doc, patch) == doc
    else:
        with pytest.raises(ValidationError):
            apply(doc, patch)


def test_kubectl_patch_type_json_edits_the_budget_and_nothing_else(live):
    c = live.client
    doc = experiment(maxTrialCount=2, parallelTrialCount=1)
    assert c.post(f"{KUBE}/experiments", json=doc).status_code == 201
    json_patch = {"content-type": "application/json-patch+json"}
    r = c.patch(f"{KUBE}/experiments/demo", headers=json_patch,
                content='[{"op": "test", "path": "/spec/maxTrialCount", "value": 2},'
                        ' {"op": "replace", "path": "/spec/maxTrialCount", "value": 3}]')
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["maxTrialCount"] == 3
    refused = c.patch(f"{KUBE}/experiments/demo", headers=json_patch,
                      content='[{"op": "replace", "path": "/spec/objective/type", "value": "maximize"}]')
    assert refused.status_code == 422 and "objective" in refused.text
    failed_test = c.patch(f"{KUBE}/experiments/demo", headers=json_patch,
                          content='[{"op": "test", "path": "/spec/maxTrialCount", "value": 2}]')
    assert failed_test.status_code == 422 and "[0]" in failed_test.text
    assert c.get(f"{KUBE}/experiments/demo").json()["spec"]["maxTrialCount"] == 3
    for path, field in (("/metadata/namespace", "metadata.namespace"), ("/metadata/name", "metadata.name")):
        moved = c.patch(f"{KUBE}/experiments/demo", headers=json_patch,
                        content=f'[{{"op": "replace", "path": "{path}", "value": "elsewhere"}}]')
        causes = [cause["field"] for cause in moved.json()["details"]["causes"]]
        assert moved.status_code == 422 and causes == [field], moved.text  # a moved namespace was said of the name
