"""A trial's Kubernetes manifest: its API group, version and plural, its pod templates,
and its validation against the official Kubernetes schemas (``kubernetes-validate``)."""

from __future__ import annotations

from typing import Any

# Kinds whose plural is not simply lower-case + "s".
_PLURALS = {"Job": "jobs", "Workflow": "workflows", "PipelineRun": "pipelineruns"}
KUBERNETES_VERSION = "1.33.0"  # the schemas manifests are validated against


def plural_of(kind: str) -> str:
    return _PLURALS.get(kind, kind.lower() + "s")


def group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def pod_templates(manifest: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every pod template in a manifest (a dict whose ``spec`` lists ``containers``), with
    its dotted path."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(manifest, dict):
        spec = manifest.get("spec")
        if isinstance(spec, dict) and isinstance(spec.get("containers"), list) and path:
            found.append((path, manifest))
        for key, value in manifest.items():
            found += pod_templates(value, f"{path}.{key}" if path else key)
    elif isinstance(manifest, list):
        for i, value in enumerate(manifest):
            found += pod_templates(value, f"{path}[{i}]")
    return found


def manifest_errors(manifest: dict[str, Any], version: str = KUBERNETES_VERSION) -> list[str]:
    """Where ``manifest`` breaks the official schemas (an empty list when it is valid)."""
    import kubernetes_validate

    def check(document: dict[str, Any], prefix: str) -> list[str]:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            return [f"{prefix}{'.' if prefix and where else ''}{where}: {exc.message}"]
        return []

    try:
        return check(manifest, "")
    except kubernetes_validate.SchemaNotFoundError:
        pass  # a custom resource (PyTorchJob, TFJob…): its pod templates are Kubernetes'
    errors = []
    for path, template in pod_templates(manifest):
        errors += check({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template},
                        path + ".<PodTemplate>")
    return [e.replace(".<PodTemplate>.template", "") for e in errors]


def deadline_of(manifest: dict[str, Any]) -> float | None:
    value = (manifest.get("spec") or {}).get("activeDeadlineSeconds")
    return float(value) if value is not None else None
