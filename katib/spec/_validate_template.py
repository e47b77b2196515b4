"""A trial template's rules (reference §4): its trial parameters and their references, the
rendered job, Katib's batch Job and the metrics collector. Part of ``validate``."""

from __future__ import annotations

import posixpath
import re
from typing import Any
from urllib.parse import unquote

from katib.errors import FieldError

from ._gjson import path_problem
from ._job_fields import unknown_job_fields
from ._limits import Limits
from ._models import Experiment, ParameterSpec, TrialTemplate
from ._template import (
    METADATA_REFERENCE,
    RenderTooLarge,
    TrialMeta,
    find_containers,
    is_metadata_reference,
    placeholders,
    render,
)
from ._workload import workload_errors

COLLECTOR_KINDS = ("StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "Push")
# Trial parameters that the NAS algorithms hand to trials.
NAS_PARAMETERS = ("architecture", "nn_config", "algorithm-settings", "search-space", "num-layers")


def _parameter_names(exp: Experiment) -> set[str]:
    if exp.spec.nas_config is not None:
        return set(NAS_PARAMETERS)
    return {p.name for p in exp.spec.parameters or [] if p.name}


EXECUTORS = ("local", "external")
# A port written as a string, as Kubernetes' IntOrString allows and Go's strconv.Atoi reads.
_PORT_TEXT = re.compile(r"\+?[0-9]{1,9}")
# Errors of one kind listed one by one before the rest are counted.
MAX_LISTED = 10


def _trial_template(exp: Experiment, limits: Limits) -> list[FieldError]:
    tt = exp.spec.trial_template
    path = "spec.trialTemplate"
    if exp.spec.executor not in (None, *EXECUTORS):
        return [FieldError("spec.executor", f"must be one of {', '.join(EXECUTORS)} (got {exp.spec.executor!r})")]
    if exp.spec.executor == "external":
        return [] if tt is None else [FieldError(path, "must not be set with the external executor (trials come from ask and tell)")]
    if tt is None:
        return [FieldError(path, "is required")]
    errors = []
    if not tt.primary_container_name:
        errors.append(FieldError(f"{path}.primaryContainerName", "is required"))
    kind = (tt.trial_spec or {}).get("kind")
    for field, value in (("successCondition", tt.success_condition), ("failureCondition", tt.failure_condition)):
        problem = path_problem(value) if value else ""
        if problem:
            errors.append(FieldError(f"{path}.{field}", f"{problem} (a GJSON path over the trial's job)"))
        # A ConfigMap template's kind is only known once the cluster hands it over.
        if not value and tt.trial_spec is not None:
            errors.append(FieldError(
                f"{path}.{field}",
                f"is required for trials of kind {kind} (defaults exist only for batch/v1 Job, TFJob, PyTorchJob, XGBoostJob, MPIJob and TrainJob)",
            ))
    if (tt.trial_spec is None) == (tt.config_map is None):
        errors.append(FieldError(path, "exactly one of trialSpec and configMap must be set"))
    if tt.config_map is not None:
        cm = tt.config_map
        for field, value in (("configMapName", cm.config_map_name), ("templatePath", cm.template_path)):
            if not value:
                errors.append(FieldError(f"{path}.configMap.{field}", "is required"))
    if not tt.trial_parameters:
        errors.append(FieldError(f"{path}.trialParameters", "must list at least one trial parameter"))
    errors += _trial_parameters(tt, _parameter_names(exp), path)
    errors += _unreferenced(exp, tt)
    if tt.trial_spec is not None:
        errors += _metadata_keys(tt, path)
        errors += _rendered(exp, tt, path)
        errors += workload_errors(tt.trial_spec, f"{path}.trialSpec", limits, _referenced(exp, tt))
    return errors


def _referenced(exp: Experiment, tt: TrialTemplate) -> dict[str, ParameterSpec]:
    """Each trial parameter's name, with the experiment parameter it references (a NAS
    experiment's and a metadata key's values are strings: none)."""
    if exp.spec.nas_config is not None:
        return {}
    params = {p.name: p for p in exp.spec.parameters or [] if p.name}
    return {tp.name: params[tp.reference] for tp in tt.trial_parameters or []
            if tp.name and tp.reference in params}


def _trial_parameters(tt: TrialTemplate, param_names: set[str], path: str) -> list[FieldError]:
    errors = []
    names: set[str] = set()
    refs: set[str] = set()
    used = placeholders(tt.trial_spec) if tt.trial_spec is not None else None
    for i, tp in enumerate(tt.trial_parameters or []):
        p = f"{path}.trialParameters[{i}]"
        if not tp.name:
            errors.append(FieldError(f"{p}.name", "is required"))
        elif "{" in tp.name or "}" in tp.name:
            errors.append(FieldError(f"{p}.name", f"must not contain '{{' or '}}' (got {tp.name!r})"))
        elif tp.name in names:
            errors.append(FieldError(f"{p}.name", f"duplicate trial parameter name {tp.name!r}"))
        elif used is not None and tp.name not in used:
            errors.append(FieldError(f"{p}.name", f"${{trialParameters.{tp.name}}} does not appear in the trial template"))
        if not tp.reference:
            errors.append(FieldError(f"{p}.reference", "is required"))
        elif tp.reference in refs:
            errors.append(FieldError(f"{p}.reference", f"duplicate reference {tp.reference!r}"))
        elif tp.reference not in param_names and not is_metadata_reference(tp.reference):
            known = ", ".join(sorted(param_names)) or "none"
            errors.append(FieldError(
                f"{p}.reference",
                f"must name a parameter ({known}) or a metadata key such as ${{trialSpec.Name}} (got {tp.reference!r})",
            ))
        names.add(tp.name or "")
        refs.add(tp.reference or "")
    for missing in sorted((used or set()) - names):
        errors.append(FieldError(f"{path}.trialSpec", f"placeholder ${{trialParameters.{missing}}} has no trial parameter"))
    return errors


def _unreferenced(exp: Experiment, tt: TrialTemplate) -> list[FieldError]:
    """Every searched parameter reaches the trial through a trial parameter: Katib fails each
    trial's creation otherwise (its manifest generator's errParamNotFoundInTrialParameters),
    and a dimension that never reaches the trial is searched for nothing."""
    if exp.spec.nas_config is not None or not tt.trial_parameters:
        return []
    refs = {tp.reference for tp in tt.trial_parameters}
    missing = [(i, p.name) for i, p in enumerate(exp.spec.parameters or []) if p.name and p.name not in refs]
    errors = [FieldError(f"spec.parameters[{i}].name", f"{name!r} is not referenced by any "
                         f"spec.trialTemplate.trialParameters entry (add one with reference: {name}, or drop the parameter)")
              for i, name in missing[:MAX_LISTED]]
    if len(missing) > MAX_LISTED:
        errors.append(FieldError("spec.parameters", f"{len(missing) - MAX_LISTED} more parameters are not referenced by "
                                 "any spec.trialTemplate.trialParameters entry"))
    return errors


def _metadata_keys(tt: TrialTemplate, path: str) -> list[FieldError]:
    """A ``${trialSpec.Labels[k]}`` or ``${trialSpec.Annotations[k]}`` reference names a key
    of the trial template's own metadata, as Katib's generator requires ("failed to fetch
    Label"); a typo would otherwise hand every trial an empty string."""
    assert tt.trial_spec is not None
    metadata = tt.trial_spec.get("metadata") or {}
    errors = []
    for i, tp in enumerate(tt.trial_parameters or []):
        m = METADATA_REFERENCE.match(tp.reference or "")
        if m is None or (m.group(2) is None and m.group(3) is None):
            continue
        field, key = ("labels", m.group(2)) if m.group(2) is not None else ("annotations", m.group(3))
        own = metadata.get(field) if isinstance(metadata, dict) else None
        if not isinstance(own, dict) or key not in own:
            errors.append(FieldError(f"{path}.trialParameters[{i}].reference",
                                     f"the trial template's metadata.{field} has no key {key!r} (got {tp.reference!r})"))
    return errors


def _rendered(exp: Experiment, tt: TrialTemplate, path: str) -> list[FieldError]:
    errors = []
    assert tt.trial_spec is not None
    meta = TrialMeta(name=f"{exp.name or 'experiment'}-abcdefgh", namespace=exp.namespace)
    try:
        render(tt, _longest_values(exp), meta)  # what a trial's spec can grow to, at most
        rendered = render(tt, {}, meta)
    except RenderTooLarge as exc:
        return [FieldError(f"{path}.trialSpec", str(exc))]
    p = f"{path}.trialSpec"
    if not rendered.get("apiVersion"):
        errors.append(FieldError(f"{p}.apiVersion", "is required"))
    if not rendered.get("kind"):
        errors.append(FieldError(f"{p}.kind", "is required"))
    metadata = rendered.get("metadata") or {}
    for field in ("name", "namespace"):
        if isinstance(metadata, dict) and metadata.get(field):
            errors.append(FieldError(f"{p}.metadata.{field}", "must not be set: Katib names each trial's job itself"))
    if rendered.get("kind") == "Job" and rendered.get("apiVersion") == "batch/v1":
        errors += unknown_job_fields(rendered, p) or _batch_job(rendered, p)
    if tt.primary_container_name:
        containers = find_containers(rendered)
        if containers and tt.primary_container_name not in [c.get("name") for c in containers]:
            names = ", ".join(repr(c.get("name")) for c in containers)
            errors.append(FieldError(
                f"{path}.primaryContainerName",
                f"no container named {tt.primary_container_name!r} in the trial template (containers: {names})",
            ))
    return errors


def _longest_values(exp: Experiment) -> dict[str, str]:
    """Each parameter's longest value: a list's longest, a number's text at most 24 characters."""
    values = {}
    for p in exp.spec.parameters or []:
        fs = p.feasible_space
        options = [str(v) for v in (fs.list_ or [])] if fs is not None else []
        values[p.name or ""] = max(options, key=len) if options else "0" * 24
    return values


def _batch_job(job: dict[str, Any], p: str) -> list[FieldError]:
    template = (job.get("spec") or {}).get("template")
    if not isinstance(template, dict):
        return [FieldError(f"{p}.spec.template", "is required for a batch/v1 Job")]
    pod = template.get("spec")
    if not isinstance(pod, dict):
        return [FieldError(f"{p}.spec.template.spec", "is required for a batch/v1 Job")]
    errors = []
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        errors.append(FieldError(f"{p}.spec.template.spec.containers", "must list at least one container"))
    else:
        for i, c in enumerate(containers):
            cp = f"{p}.spec.template.spec.containers[{i}]"
            if not isinstance(c, dict):
                errors.append(FieldError(cp, "must be an object"))
                continue
            if not c.get("name"):
                errors.append(FieldError(f"{cp}.name", "is required"))
            if not c.get("image"):
                errors.append(FieldError(f"{cp}.image", "is required"))
            for field in ("command", "args"):
                if c.get(field) is not None and not isinstance(c[field], list):
                    errors.append(FieldError(f"{cp}.{field}", "must be a list of strings"))
    restart = pod.get("restartPolicy")
    if restart is not None and restart not in ("Never", "OnFailure"):
        errors.append(FieldError(f"{p}.spec.template.spec.restartPolicy", f"must be Never or OnFailure for a Job (got {restart!r})"))
    return errors


def _metrics_collector(exp: Experiment) -> list[FieldError]:
    mc = exp.spec.metrics_collector_spec
    if mc is None or mc.collector is None:
        return []
    path = "spec.metricsCollectorSpec"
    kind = mc.collector.kind
    errors = []
    if kind not in COLLECTOR_KINDS:
        return [FieldError(f"{path}.collector.kind", f"must be one of {', '.join(COLLECTOR_KINDS)} (got {kind!r})")]
    source = mc.source
    fsp = source.file_system_path if source else None
    fpath = f"{path}.source.fileSystemPath"
    if kind == "File":
        if fsp is None:
            errors.append(FieldError(fpath, "is required for the File collector"))
        else:
            if fsp.kind != "File":
                errors.append(FieldError(f"{fpath}.kind", f"must be File for the File collector (got {fsp.kind!r})"))
            if not fsp.path or not fsp.path.startswith("/"):
                errors.append(FieldError(f"{fpath}.path", f"must be an absolute path (got {fsp.path!r})"))
            elif ".." in fsp.path.split("/"):
                errors.append(FieldError(f"{fpath}.path", f"must not contain '..': it is mapped into the trial's folder (got {fsp.path!r})"))
            if fsp.format not in ("TEXT", "JSON"):
                errors.append(FieldError(f"{fpath}.format", f"must be TEXT or JSON (got {fsp.format!r})"))
            if fsp.format == "JSON" and source and source.filter is not None:  # even empty, as Katib's
                errors.append(FieldError(f"{path}.source.filter", "must not be set with the JSON format"))
    elif kind == "TensorFlowEvent":
        if fsp is None:
            errors.append(FieldError(fpath, "is required for the TensorFlowEvent collector"))
        else:
            if fsp.kind != "Directory":
                errors.append(FieldError(f"{fpath}.kind", f"must be Directory for the TensorFlowEvent collector (got {fsp.kind!r})"))
            if not fsp.path or not fsp.path.startswith("/"):
                errors.append(FieldError(f"{fpath}.path", f"must be an absolute path (got {fsp.path!r})"))
            elif ".." in fsp.path.split("/"):
                errors.append(FieldError(f"{fpath}.path", f"must not contain '..': it is mapped into the trial's folder (got {fsp.path!r})"))
            if fsp.format:
                errors.append(FieldError(f"{fpath}.format", f"must be empty for the TensorFlowEvent collector (got {fsp.format!r})"))
    elif kind == "PrometheusMetric":
        http = (source.http_get if source else None) or {}
        errors += [FieldError(f"{path}.source.httpGet.{name}", rule) for name, rule in http_get_errors(http)]
    elif kind == "Custom":
        if not mc.collector.custom_collector:
            errors.append(FieldError(f"{path}.collector.customCollector", "is required for the Custom collector"))
        if fsp is not None and (not fsp.path or not fsp.path.startswith("/") or fsp.kind not in ("File", "Directory")):
            errors.append(FieldError(fpath, "must have an absolute path and the kind File or Directory for the Custom "
                                            f"collector (got path {fsp.path!r}, kind {fsp.kind!r})"))
        elif fsp is not None and ".." in (fsp.path or "").split("/"):
            errors.append(FieldError(f"{fpath}.path", f"must not contain '..': it is mapped into the trial's folder (got {fsp.path!r})"))
    if fsp is not None and fsp.path and fsp.path.startswith("/") and ".." not in fsp.path.split("/"):
        top = posixpath.normpath(fsp.path).strip("/").split("/")[0]
        if top in SERVER_FILES or top.endswith((".exit", ".exit.tmp")):
            errors.append(FieldError(f"{fpath}.path", f"must not be the trial folder's {top!r}, a file the server "
                                                      f"keeps there (got {fsp.path!r})"))
    if source and source.filter:
        for i, fmt in enumerate(source.filter.metrics_format or []):
            problem = filter_problem(fmt)
            if problem:
                errors.append(FieldError(f"{path}.source.filter.metricsFormat[{i}]", problem))
    return errors


# What the server keeps at the top of a trial's folder, where a collector's path is mapped:
# its pid and handle, the primary log, the exit records (trials._wrap, trials._executor).
SERVER_FILES = frozenset({"pid", "handle.json", "trial.log"})


def compile_filter(pattern: str) -> Any:
    r"""A ``metricsFormat`` regex compiled by RE2 (``google-re2``), the engine of Katib's own
    collector (Go's ``regexp``): it matches in time linear in the line, so a pattern such
    as ``((?:a+)+)=(\d)`` cannot hold the server on a trial's output, as Python's
    backtracking ``re`` did (seconds per line of 25 characters, doubling with each one).
    ``ValueError`` (saying why) for what RE2 does not take: backreferences, lookaround."""
    import re2

    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options=options)
    except re2.error as exc:
        why = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(why) from None


def filter_problem(pattern: str) -> str | None:
    """Why a ``metricsFormat`` regex is unusable, or None."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"is not a valid regular expression ({exc})"
    except (RecursionError, OverflowError):  # groups nested thousands deep: a 500 was answered
        return "is not a regular expression Katib's collector takes: it nests too deeply"
    try:
        groups = compile_filter(pattern).groups
    except ValueError as exc:
        return (f"is not a regular expression Katib's collector takes (Go's RE2 syntax: no backreferences or "
                f"lookaround): {exc}")
    # Katib's collector reads groups 1 and 2 (the metric's name, its value); more may follow.
    if groups < 2:
        return f"must have at least two groups, the metric name and then its value (got {groups})"
    return None


_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)


def port_value(port: Any) -> Any:
    """An ``httpGet.port`` as Katib reads it: an IntOrString whose text Go's ``strconv.Atoi``
    takes (``"9090"``, ``"+9090"``) is that number; anything else is left as it is."""
    if isinstance(port, str) and _PORT_TEXT.fullmatch(port):
        return int(port)
    return port


def http_get_errors(http: dict[str, Any]) -> list[tuple[str, str]]:
    """``(field, rule)`` for each way a PrometheusMetric ``source.httpGet`` is not an
    HTTP(S) endpoint: the scheme HTTP or HTTPS (a Kubernetes HTTPGetAction's), a host that
    is a DNS name or an IP address (no ``/``, ``#``, ``@``: the endpoint is fetched by
    katib, and nothing but the endpoint may be), a port from 1 to 65535, a path from ``/``
    with no ``..`` segment, space, ``#`` or control character (Katib asks the leading ``/``).

    >>> http_get_errors({"scheme": "HTTP", "host": "trainer-0.svc", "port": 8080, "path": "/metrics"})
    []
    >>> [f for f, _ in http_get_errors({"scheme": "FILE", "host": "localhost/etc/passwd#", "port": 1, "path": "/"})]
    ['scheme', 'host']
    """
    out: list[tuple[str, str]] = []
    scheme = http.get("scheme")
    if scheme is not None and str(scheme).upper() not in ("HTTP", "HTTPS"):
        out.append(("scheme", f"must be HTTP or HTTPS (got {_short(scheme)})"))
    host = http.get("host")
    if host is not None and host != "" and not _is_host(host):
        out.append(("host", f"must be a DNS name or an IP address (got {_short(host)})"))
    port = port_value(http.get("port"))
    if isinstance(port, bool) or not isinstance(port, int) or port <= 0:
        out.append(("port", f"must be a positive port number (got {_short(port)})"))
    elif port > 65535:
        out.append(("port", f"must be a port number from 1 to 65535 (got {port})"))
    target = http.get("path", "")
    if not isinstance(target, str) or not target.startswith("/"):
        out.append(("path", f"must start with '/' (got {_short(target)})"))
    # (%2e%2e is .. to a server that decodes it)
    elif ".." in unquote(target.split("?")[0]).split("/") or any(c in target for c in " #\\") or not target.isprintable():
        out.append(("path", f"must be a URL path with no '..' segment, space, '#' or control character (got {_short(target)})"))
    return out


def _short(value: Any) -> str:
    """``repr`` of a value in an error, a long string cut to 80 characters."""
    return repr(value[:80]) if isinstance(value, str) else repr(value)[:80]


def _is_host(host: Any) -> bool:
    import ipaddress

    if not isinstance(host, str) or len(host) > 253:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return all(_HOST_LABEL.match(label) for label in host.removesuffix(".").split("."))
