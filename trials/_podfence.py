"""What a trial's pods may hold and do, checked before a trial's job is sent to a cluster.

On Kubernetes the cluster fences a trial in: its pods run in its experiment's namespace,
where RBAC, the namespace's service accounts and Pod Security Admission apply. The executor
makes sure a template does not walk around that fence:

- **The server's identity stays the server's.** A pod may not run as the service account
  the server itself uses (``serviceAccountName``, or ``default`` when it names none):
  that account may create jobs in every tenant's namespace, so a pod holding its token
  could do whatever the server does. Refused under --auth, or whenever the account is
  given (a single user's ``katib run`` may run its pods as that user's own account).
- **No API token unless asked for.** Each pod template gets
  ``automountServiceAccountToken: false`` unless it says otherwise: a trial computes,
  it does not talk to the cluster's API.
- **Its own namespace.** A pod template may not name another namespace.
- **Under --auth** (``tenants``), the Pod Security Standards' *baseline* profile's
  essentials, so that the fence holds even where the namespace's admission does not
  enforce it: no host namespaces (``hostPID``, ``hostIPC``, ``hostNetwork``: another
  tenant's processes, the node's network), no privileged containers, no capabilities
  beyond the baseline's, no ``hostPath`` volumes (the node's disk), no ``hostPort``.

The server's service account is read from its credentials (the bearer token a pod's
service account, or a kubeconfig's user, carries: a JWT whose subject is
``system:serviceaccount:NAMESPACE:NAME``), or given as ``NAMESPACE/NAME``.

>>> identity_of_token("not-a-jwt") is None
True
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ._manifest import pod_templates

# Capabilities the baseline profile lets a container add (the container runtime's defaults).
BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
_SA_SUBJECT = "system:serviceaccount:"


def identity_of_token(token: str) -> tuple[str, str] | None:
    """The ``(namespace, name)`` of the service account whose token ``token`` is, or None
    (not a service account's JWT). The signature is not checked: the server reads its own."""
    parts = token.strip().removeprefix("Bearer ").removeprefix("bearer ").split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return None
    if not isinstance(claims, dict):
        return None
    subject = str(claims.get("sub", ""))
    if subject.startswith(_SA_SUBJECT) and subject.count(":") == 3:
        namespace, name = subject[len(_SA_SUBJECT):].split(":")
        return namespace, name
    legacy = (claims.get("kubernetes.io/serviceaccount/namespace"), claims.get("kubernetes.io/serviceaccount/service-account.name"))
    return (str(legacy[0]), str(legacy[1])) if all(legacy) else None


def identity_of_client(api_client: Any) -> tuple[str, str] | None:
    """The service account an official-client ``ApiClient`` authenticates as, if any."""
    config = getattr(api_client, "configuration", None)
    if config is None:
        return None
    hook = getattr(config, "refresh_api_key_hook", None)
    if hook is not None:  # in-cluster: the token file, read afresh
        try:
            hook(config)
        except Exception:  # noqa: BLE001 - no identity then, as without a token
            return None
    for value in (getattr(config, "api_key", None) or {}).values():
        found = identity_of_token(str(value))
        if found is not None:
            return found
    return None


def parse_account(value: str) -> tuple[str, str]:
    """``NAMESPACE/NAME`` as a service account's namespace and name."""
    namespace, _, name = value.partition("/")
    if not namespace or not name or "/" in name:
        raise ValueError(f"a service account is NAMESPACE/NAME (got {value!r})")
    return namespace, name


def fence(manifest: dict[str, Any]) -> None:
    """What every pod template gets unless it says otherwise: no service account token."""
    for _, template in pod_templates(manifest):
        template["spec"].setdefault("automountServiceAccountToken", False)


def problems(manifest: dict[str, Any], namespace: str, server_account: tuple[str, str] | None,
             tenants: bool) -> list[str]:
    """Why the pods of ``manifest`` (to run in ``namespace``) would get out of their fence;
    empty when they would not."""
    found: list[str] = []
    for path, template in pod_templates(manifest):
        spec = template["spec"]
        where = f"{path}.spec"
        own = _dict(template.get("metadata")).get("namespace")
        if own not in (None, "", namespace):
            found.append(f"{path}.metadata.namespace: a trial's pods run in its experiment's namespace "
                         f"{namespace!r}, not {own!r}")
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        if server_account is not None and (namespace, account) == server_account:
            field = "serviceAccountName" if (spec.get("serviceAccountName") or spec.get("serviceAccount")) else \
                "serviceAccountName (none given: the namespace's default)"
            found.append(f"{where}.{field}: the server's own service account {namespace}/{account} may not be used "
                         f"by trial pods; give the template a service account of its own")
        if tenants:
            found += _baseline(spec, where)
            for key, value in _dict(_dict(template.get("metadata")).get("annotations")).items():
                if str(key).startswith(APPARMOR_ANNOTATION) and value != "runtime/default" \
                        and not str(value).startswith("localhost/"):
                    found.append(f"{path}.metadata.annotations[{key}]: a tenant's trial may not run without "
                                 f"AppArmor ({value!r})")
    return found


def _baseline(spec: dict[str, Any], where: str) -> list[str]:
    """The baseline Pod Security Standard's rules that keep a pod off its node and its neighbours."""
    found = [f"{where}.{key}: a tenant's trial may not share the node's {what}"
             for key, what in (("hostPID", "processes"), ("hostIPC", "IPC"), ("hostNetwork", "network"))
             if spec.get(key)]
    for i, volume in enumerate(_list(spec.get("volumes"))):
        if isinstance(volume, dict) and "hostPath" in volume:
            found.append(f"{where}.volumes[{i}].hostPath: a tenant's trial may not mount the node's files")
    pod_security = _dict(spec.get("securityContext"))
    found += _confinement(pod_security, f"{where}.securityContext")
    for j, sysctl in enumerate(_list(pod_security.get("sysctls"))):
        name = _dict(sysctl).get("name")
        if name not in SAFE_SYSCTLS:
            found.append(f"{where}.securityContext.sysctls[{j}]: {name!r} is not one of the sysctls a tenant's "
                         "trial may set (Pod Security baseline's safe set)")
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for i, container in enumerate(_list(spec.get(kind))):
            if not isinstance(container, dict):
                continue
            at = f"{where}.{kind}[{i}]"
            security = _dict(container.get("securityContext"))
            found += _confinement(security, f"{at}.securityContext")
            if security.get("procMount") not in (None, "Default"):
                found.append(f"{at}.securityContext.procMount: a tenant's trial keeps the default masked /proc")
            if security.get("privileged"):
                found.append(f"{at}.securityContext.privileged: a tenant's trial may not run privileged")
            added = set(_list(_dict(security.get("capabilities")).get("add"))) - BASELINE_CAPABILITIES
            if added:
                found.append(f"{at}.securityContext.capabilities.add: {', '.join(sorted(added))} "
                             f"is beyond what a tenant's trial may add")
            if any(isinstance(p, dict) and p.get("hostPort") for p in _list(container.get("ports"))):
                found.append(f"{at}.ports: a tenant's trial may not take a port of the node (hostPort)")
    return found


APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
#: Pod Security baseline: the sysctls a pod may set, the SELinux types it may ask for.
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes"})
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})


def _confinement(security: dict[str, Any], at: str) -> list[str]:
    """Pod Security baseline's rules on a (pod's or container's) ``securityContext``: no
    unconfined seccomp or AppArmor, no SELinux user, role or type of its own choosing, no
    Windows host process."""
    found = []
    if _dict(security.get("seccompProfile")).get("type") == "Unconfined":
        found.append(f"{at}.seccompProfile: a tenant's trial may not run without seccomp (Unconfined)")
    if _dict(security.get("appArmorProfile")).get("type") == "Unconfined":
        found.append(f"{at}.appArmorProfile: a tenant's trial may not run without AppArmor (Unconfined)")
    selinux = _dict(security.get("seLinuxOptions"))
    if selinux.get("user") or selinux.get("role") or selinux.get("type", "") not in SELINUX_TYPES:
        found.append(f"{at}.seLinuxOptions: a tenant's trial may not choose its SELinux user or role, or a type "
                     f"beyond {', '.join(sorted(t for t in SELINUX_TYPES if t))}")
    if _dict(security.get("windowsOptions")).get("hostProcess"):
        found.append(f"{at}.windowsOptions.hostProcess: a tenant's trial may not run as a host process")
    return found


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}  # a malformed field: the schema check names it


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


__all__ = ["BASELINE_CAPABILITIES", "fence", "identity_of_client", "identity_of_token", "parse_account", "problems"]
