"""Kubernetes API discovery, so ``kubectl`` (and any client that discovers before it
acts) can find the resources this server serves: ``/version``, ``/api``, ``/api/v1``,
``/apis``, and each group and group version. Only what the routes serve is listed, each
with the verbs it answers; kubectl then builds the same requests the Katib SDK does."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from katib import __version__
from katib.errors import FieldError, NotFoundError, ValidationError
from katib.runtimes import TRAINER_GROUP, TRAINER_VERSION
from katib.spec import API_VERSION

router = APIRouter(tags=["kubernetes"])

# The Kubernetes API level these endpoints follow (lists, Status errors, selectors).
KUBE_MAJOR, KUBE_MINOR = "1", "31"
KATIB_CATEGORIES = ["all", "kubeflow", "katib"]  # Katib's CRDs' categories


def _resource(name: str, kind: str, verbs: list[str], namespaced: bool = True, *,
              singular: str = "", short: str = "", categories: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
                           "verbs": verbs}
    if short:
        out["shortNames"] = [short]
    if categories:
        out["categories"] = categories
    return out


_READ = ["get", "list"]
_WATCHED = ["get", "list", "watch"]
# group version -> its resources (subresources as "plural/sub"), as the routes serve them
RESOURCES: dict[str, list[dict[str, Any]]] = {
    "v1": [
        _resource("configmaps", "ConfigMap", ["create", "delete", "get", "list"], singular="configmap", short="cm"),
        _resource("events", "Event", ["list", "watch"], singular="event", short="ev"),
        _resource("namespaces", "Namespace", ["get", "list", "patch"], False, singular="namespace", short="ns"),
        _resource("persistentvolumeclaims", "PersistentVolumeClaim", ["get"], singular="persistentvolumeclaim", short="pvc"),
        _resource("pods", "Pod", _WATCHED, singular="pod", short="po"),
        _resource("pods/log", "Pod", ["get"]),
    ],
    API_VERSION: [
        _resource("experiments", "Experiment", ["create", "delete", "get", "list", "patch", "watch"],
                  singular="experiment", categories=KATIB_CATEGORIES),
        _resource("suggestions", "Suggestion", _WATCHED, singular="suggestion", categories=KATIB_CATEGORIES),
        _resource("trials", "Trial", _WATCHED, singular="trial", categories=KATIB_CATEGORIES),
    ],
    f"{TRAINER_GROUP}/{TRAINER_VERSION}": [
        _resource("clustertrainingruntimes", "ClusterTrainingRuntime", _READ, False, singular="clustertrainingruntime"),
        _resource("optimizationjobs", "OptimizationJob", ["create", "delete", "get", "list"], singular="optimizationjob"),
        _resource("trainingruntimes", "TrainingRuntime", _READ, singular="trainingruntime"),
        _resource("trainjobs", "TrainJob", _READ, singular="trainjob"),
    ],
}
GROUPS = {gv.partition("/")[0]: gv for gv in RESOURCES if "/" in gv}


def _group(name: str) -> dict[str, Any]:
    gv = GROUPS[name]
    version = {"groupVersion": gv, "version": gv.partition("/")[2]}
    return {"name": name, "versions": [version], "preferredVersion": version}


@router.get("/version")
def version() -> dict[str, str]:
    """The server's version, as Kubernetes answers ``/version``: the API level its
    endpoints follow, and katib's own version in ``gitVersion``."""
    return {"major": KUBE_MAJOR, "minor": KUBE_MINOR, "gitVersion": f"v{KUBE_MAJOR}.{KUBE_MINOR}.0+katib.{__version__}",
            "gitCommit": "", "gitTreeState": "", "buildDate": "", "goVersion": "", "compiler": "", "platform": "katib"}


@router.get("/api")
def core_versions(request: Request) -> dict[str, Any]:
    host = request.headers.get("host", "")
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}


@router.get("/api/v1")
def core_resources() -> dict[str, Any]:
    return _resource_list("v1")


@router.get("/apis")
def groups() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(name) for name in GROUPS]}


@router.get("/apis/{group}")
def group(group: str) -> dict[str, Any]:
    if group not in GROUPS:
        raise NotFoundError(f"API group {group!r} is not served here (served: {', '.join(GROUPS)})")
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group)}


@router.get("/apis/{group}/{version}")
def group_resources(group: str, version: str) -> dict[str, Any]:
    gv = f"{group}/{version}"
    if gv not in RESOURCES:
        raise NotFoundError(f"API version {gv!r} is not served here (served: {', '.join(GROUPS.values())})")
    return _resource_list(gv)


@router.get("/apis/{group}/{version}/{resource}")
def across_namespaces(group: str, version: str, resource: str) -> dict[str, Any]:
    """A list across every namespace (``kubectl get -A``), which this server does not
    serve: said so, naming the way that works."""
    return _one_namespace(f"{group}/{version}", resource)


@router.get("/api/v1/pods")
def pods_across_namespaces() -> dict[str, Any]:
    return _one_namespace("v1", "pods")


def _one_namespace(gv: str, resource: str) -> dict[str, Any]:
    served = {r["name"]: r for r in RESOURCES.get(gv, [])}
    if resource not in served:
        raise NotFoundError(f"{gv} has no resource {resource!r} here (served: {', '.join(sorted(served)) or 'none'})")
    if not served[resource]["namespaced"]:
        raise NotFoundError(f"{resource} {gv} is served at /apis/{gv}/{resource}")
    raise ValidationError([FieldError("namespace", f"{resource} are listed one namespace at a time here "
                                                   f"(kubectl get {resource} -n NAMESPACE, not -A)")], "request")


def _resource_list(gv: str) -> dict[str, Any]:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": RESOURCES[gv]}


# Swagger 2.0's Document as protocol buffers (gnostic's openapi_v2.Document), which is how
# kubectl reads /openapi/v2: field 1, ``swagger``, is "2.0"; nothing else. kubectl validates
# a document against the definitions it finds there before sending it; with none, this
# server's own validation (always strict: an unknown field is an error) is the one that runs.
OPENAPI_V2_PROTOBUF = b"\x0a\x032.0"
OPENAPI_V2_TYPE = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"  # asked for
OPENAPI_V2_ANSWER = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"  # answered (Go parses no '@')


@router.get("/openapi/v2")
def openapi_v2(request: Request) -> Response:
    if OPENAPI_V2_TYPE in request.headers.get("accept", ""):
        return Response(OPENAPI_V2_PROTOBUF, media_type=OPENAPI_V2_ANSWER)
    return JSONResponse({"swagger": "2.0", "info": {"title": "katib", "version": __version__}, "paths": {}})


def _plain(schema: Any) -> Any:
    """A pydantic schema as Kubernetes writes its own: an optional field (``anyOf`` of a
    type and null) as that type, ``nullable``, so ``kubectl explain`` shows its type and
    walks into it; pydantic's titles dropped."""
    if isinstance(schema, list):
        return [_plain(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _plain(v) for k, v in schema.items() if k != "title" or not isinstance(v, str)}
    options = out.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == 1 and len(kept) < len(options):
            del out["anyOf"]
            inner = kept[0]
            if "$ref" in inner:  # OpenAPI 3.0 ignores siblings of a $ref: wrapped in allOf
                out["allOf"] = [inner]
            else:
                out.update(inner)
            out["nullable"] = True
            if out.get("default") is None:
                out.pop("default", None)
    return out


@cache
def _katib_v3() -> dict[str, Any]:
    """The OpenAPI v3 document of ``kubeflow.org/v1beta1``: the Experiment's schema (the
    model admission validates with) and the Trial's for ``kubectl explain``, and its patch's
    ``fieldValidation``, which tells kubectl this server validates what it is sent."""
    from katib.spec import Experiment, Trial

    components: dict[str, Any] = {}
    for model in (Experiment, Trial):  # a Suggestion has no model: kubectl explain says it has no schema
        schema = _plain(model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}"))
        components.update(schema.pop("$defs", {}))
        kind = {"group": "kubeflow.org", "version": API_VERSION.partition("/")[2], "kind": model.__name__}
        components[model.__name__] = {**schema, "x-kubernetes-group-version-kind": [kind]}
    gvk = components["Experiment"]["x-kubernetes-group-version-kind"][0]
    ref = {"$ref": "#/components/schemas/Experiment"}
    query = [{"name": n, "in": "query", "schema": {"type": "string"}} for n in ("dryRun", "fieldManager", "fieldValidation")]
    one = {
        "get": {"operationId": "readKubeflowOrgV1beta1NamespacedExperiment", "x-kubernetes-action": "get",
                "x-kubernetes-group-version-kind": gvk,
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}},
        "patch": {"operationId": "patchKubeflowOrgV1beta1NamespacedExperiment", "x-kubernetes-action": "patch",
                  "x-kubernetes-group-version-kind": gvk, "parameters": query,
                  "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}},
    }
    trial_gvk = components["Trial"]["x-kubernetes-group-version-kind"][0]
    trial = {"get": {"operationId": "readKubeflowOrgV1beta1NamespacedTrial", "x-kubernetes-action": "get",
                     "x-kubernetes-group-version-kind": trial_gvk,
                     "responses": {"200": {"description": "OK", "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/Trial"}}}}}}}
    return {"openapi": "3.0.0", "info": {"title": "katib", "version": __version__},
            "paths": {"/apis/kubeflow.org/v1beta1/namespaces/{namespace}/experiments/{name}": one,
                      "/apis/kubeflow.org/v1beta1/namespaces/{namespace}/trials/{name}": trial},
            "components": {"schemas": components}}


@router.get("/openapi/v3")
def openapi_v3() -> dict[str, Any]:
    """The OpenAPI v3 documents there are, by group version (kubectl's ``explain`` and its
    check that the server validates what it is sent read them)."""
    return {"paths": {f"apis/{API_VERSION}": {"serverRelativeURL": f"/openapi/v3/apis/{API_VERSION}"}}}


@router.get(f"/openapi/v3/apis/{API_VERSION}")
def openapi_v3_katib() -> dict[str, Any]:
    return _katib_v3()
