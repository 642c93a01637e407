"""What a manifest may reach, and how far its pods may go: the platform policy's rules on a manifest.

* templates: every templated string in the template language (:mod:`dagfactory_s3.templates`), with
  the scope the policy grants the package;
* grants: the Kubernetes objects, pools, queues, notifiers, taints and assets a task names must be the
  package's own or granted to it (:meth:`dagfactory_s3.platform.Policy.granted`);
* the sandbox: namespaces, service accounts, registries, volume types, privileges, capabilities, host
  namespaces, and what else the Kubernetes baseline Pod Security Standard forbids.

Called by :mod:`dagfactory_s3.manifest.rules`; the same code in CI and at parse. No I/O.
"""

from __future__ import annotations

from typing import Any

from dagfactory_s3 import k8s, templates
from dagfactory_s3.errors import Problem
from dagfactory_s3.manifest.pod_fields import HOST_NAMESPACES, override_containers
from dagfactory_s3.platform import GRANT_KINDS, Policy
from dagfactory_s3.schema import to_pointer

__all__ = ["grant_problems", "notifier_problems", "policy_problems", "template_problems", "template_scope"]

# The parts of a manifest whose strings reach an operator's templated fields (and their overlays).
_TEMPLATED = ("job", "tasks", "task_defaults", "environments")


def template_scope(
    document: dict[str, Any], task_ids: set[str] | frozenset[str], policy: Policy
) -> templates.Scope:
    """What the templates of ``document`` may reach: its params and tasks, and what the policy grants
    its package. The factory's operator rebuilds the same scope from the DAG when it renders."""
    package = document["package"]
    return templates.Scope(
        package=package,
        params=frozenset(document.get("params", {})),
        tasks=frozenset(task_ids),
        conf=policy.grants_for(package).dag_run_conf,
        granted=lambda kind, name: policy.granted(package, kind, name),
    )


def template_problems(document: dict[str, Any], scope: templates.Scope, file: str) -> list[Problem]:
    found = []
    for key in _TEMPLATED:
        for pointer, text in templates.strings(document.get(key), f"/{key}"):
            found += [Problem(file, pointer, reason) for reason in templates.problems(text, scope)]
    return found


def notifier_problems(
    uses: list[tuple[str, list[str]]], file: str, policy: Policy, package: str
) -> list[Problem]:
    """Every notifier a manifest names must be one the platform defines (its policy file), granted to
    the package (a notifier pages a team: another team's is not the package's to call)."""
    if policy.notifiers is None:
        return []  # no policy file here (e.g. CI without it): the factory checks with the image's
    problems = []
    defined = ", ".join(sorted(policy.notifiers)) or "none"
    for pointer, names in uses:
        for i, name in enumerate(names):
            if name not in policy.notifiers:
                problems.append(
                    Problem(
                        file,
                        f"{pointer}/{i}",
                        f"unknown notifier {name!r}; the platform policy ({policy.file}) defines: {defined}",
                    )
                )
            elif not policy.granted(package, "notifiers", name):
                problems.append(
                    Problem(file, f"{pointer}/{i}", _not_granted(policy, package, "notifiers", name))
                )
    return problems


_WHAT = {
    "service_accounts": "service account",
    "secrets": "Secret",
    "config_maps": "ConfigMap",
    "persistent_volume_claims": "PersistentVolumeClaim",
    "image_pull_secrets": "image pull Secret",
    "priority_classes": "priority class",
    "pools": "pool",
    "queues": "queue",
    "notifiers": "notifier",
    "tolerations": "toleration of taint",
    "asset_uris": "outlet asset",
    "variables": "Variable",
    "connections": "Connection",
}


def _not_granted(policy: Policy, package: str, kind: str, name: str) -> str:
    rule = GRANT_KINDS[kind].own
    own = (
        f"names starting with '{package}_'"
        if rule == "airflow"
        else f"'{package.replace('_', '-')}' and names starting with '{package.replace('_', '-')}-'"
        if rule == "kubernetes"
        else "none"
    )
    return (
        f"{_WHAT[kind]} {name!r} is not granted to package {package!r} by the platform policy ({policy.file}); "
        f"the package's own: {own}; more are granted under /grants/{package}/{kind} or /grants/*/{kind}"
    )


def _named(fields: dict[str, Any], source: Any) -> list[tuple[str, str, str]]:
    """Every (pointer, grant kind, name) a task's fields name: what it would reach in Kubernetes and Airflow."""
    out: list[tuple[str, str, str]] = []
    for field, kind in (
        ("service_account", "service_accounts"),
        ("priority_class_name", "priority_classes"),
        ("pool", "pools"),
        ("queue", "queues"),
    ):
        if isinstance(fields.get(field), str):
            out.append((source(field), kind, fields[field]))

    def env_refs(env: Any, pointer: str) -> None:
        for var, value in (env or {}).items() if isinstance(env, dict) else ():
            for ref, kind in (("secret", "secrets"), ("config_map", "config_maps")):
                if isinstance(value, dict) and isinstance(value.get(ref), dict):
                    out.append(
                        (f"{pointer}{to_pointer([var, ref, 'name'])}", kind, value[ref].get("name", ""))
                    )

    env_refs(fields.get("env"), source("env"))
    for i, container in enumerate(fields.get("init_containers", [])):
        env_refs(container.get("env"), f"{source('init_containers')}/{i}/env")
    for i, item in enumerate(fields.get("env_from", [])):
        for ref, kind in (("secret", "secrets"), ("config_map", "config_maps")):
            if isinstance(item.get(ref), str):
                out.append((f"{source('env_from')}/{i}/{ref}", kind, item[ref]))
    for i, volume in enumerate(fields.get("volumes", [])):
        where = f"{source('volumes')}/{i}"
        for path, kind in (
            (("secret", "secret_name"), "secrets"),
            (("config_map", "name"), "config_maps"),
            (("persistent_volume_claim", "claim_name"), "persistent_volume_claims"),
        ):
            node = volume.get(path[0])
            if isinstance(node, dict) and isinstance(node.get(path[1]), str):
                out.append((f"{where}/{path[0]}/{path[1]}", kind, node[path[1]]))
        for j, projected in enumerate((volume.get("projected") or {}).get("sources", [])):
            for ref, kind in (("secret", "secrets"), ("config_map", "config_maps")):
                if isinstance(projected.get(ref), dict):
                    out.append(
                        (f"{where}/projected/sources/{j}/{ref}/name", kind, projected[ref].get("name", ""))
                    )
    for i, name in enumerate(fields.get("image_pull_secrets", [])):
        out.append((f"{source('image_pull_secrets')}/{i}", "image_pull_secrets", name))
    for i, toleration in enumerate(fields.get("tolerations", [])):
        key = toleration.get("key") or ""
        # no key with Exists tolerates every taint: only a grant of "*" allows it
        out.append((f"{source('tolerations')}/{i}/key", "tolerations", key or "*"))
    for i, uri in enumerate(fields.get("outlets", [])):
        out.append((f"{source('outlets')}/{i}", "asset_uris", uri))
    for i, container in enumerate(override_containers(fields)):
        where = f"{source('pod_override')}/spec/containers/{i}"
        env = container.get("env")
        for j, var in enumerate(env if isinstance(env, list) else []):
            value_from = var.get("valueFrom") if isinstance(var, dict) else None
            for ref, kind in (("secretKeyRef", "secrets"), ("configMapKeyRef", "config_maps")):
                node = value_from.get(ref) if isinstance(value_from, dict) else None
                if isinstance(node, dict):
                    out.append((f"{where}/env/{j}/valueFrom/{ref}/name", kind, str(node.get("name", ""))))
        env_from = container.get("envFrom")
        for j, item in enumerate(env_from if isinstance(env_from, list) else []):
            for ref, kind in (("secretRef", "secrets"), ("configMapRef", "config_maps")):
                node = item.get(ref) if isinstance(item, dict) else None
                if isinstance(node, dict):
                    out.append((f"{where}/envFrom/{j}/{ref}/name", kind, str(node.get("name", ""))))
    return out


def grant_problems(
    package: str, fields: dict[str, Any], source: Any, file: str, policy: Policy
) -> list[Problem]:
    """Names of other teams' identities, data, pools, queues, taints and assets: refused unless the
    package owns or is granted them (checked with a policy file; without one CI cannot know the
    grants). The system priority classes are refused always, unless privileged pods are allowed."""
    problems = []
    for pointer, kind, name in _named(fields, source):
        if kind == "priority_classes" and name.startswith("system-") and not policy.allow_privileged:
            problems.append(
                Problem(
                    file,
                    pointer,
                    f"priority class {name!r} is Kubernetes' own, for the cluster's critical pods",
                )
            )
        elif policy.from_file and not policy.granted(package, kind, name):
            problems.append(Problem(file, pointer, _not_granted(policy, package, kind, name)))
    return problems


def policy_problems(fields: dict[str, Any], source: Any, file: str, policy: Policy) -> list[Problem]:
    """What the platform does not allow, at the pointer where it is written (task or task_defaults)."""
    problems: list[Problem] = []

    def refuse(pointer: str, what: str, allowed: Any) -> None:
        shown = ", ".join(sorted(allowed)) if allowed else "none"
        problems.append(
            Problem(
                file,
                pointer,
                f"{what} is not allowed by the platform policy ({policy.file}); allowed: {shown}",
            )
        )

    if policy.namespaces is not None and fields["namespace"] not in policy.namespaces:
        refuse(source("namespace"), f"namespace {fields['namespace']!r}", policy.namespaces)
    account = fields.get("service_account")
    if policy.service_accounts is not None and account is not None and account not in policy.service_accounts:
        refuse(source("service_account"), f"service account {account!r}", policy.service_accounts)
    for i, volume in enumerate(fields.get("volumes", [])):
        for kind in volume:
            if kind != "name" and kind not in policy.volume_types:
                refuse(f"{source('volumes')}/{i}/{kind}", f"volume type {kind!r}", policy.volume_types)
    contexts = [(source("security_context"), fields.get("security_context", {}))]
    contexts += [
        (f"{source('init_containers')}/{i}/security_context", c.get("security_context", {}))
        for i, c in enumerate(fields.get("init_containers", []))
    ]
    spec = fields.get("pod_override", {}).get("spec", {})
    for i, container in enumerate(override_containers(fields)):
        context = container.get("securityContext")
        if isinstance(context, dict):
            caps = context.get("capabilities") if isinstance(context.get("capabilities"), dict) else {}
            contexts.append(
                (
                    f"{source('pod_override')}/spec/containers/{i}/securityContext",
                    {"privileged": context.get("privileged"), "capabilities": {"add": caps.get("add") or []}},
                )
            )
    for pointer, context in contexts:
        if context.get("privileged") and not policy.allow_privileged:
            problems.append(
                Problem(
                    file,
                    f"{pointer}/privileged",
                    f"privileged containers are not allowed by the platform policy ({policy.file})",
                )
            )
        added = context.get("capabilities", {}).get("add", [])
        for j, cap in enumerate(added if isinstance(added, list) else []):
            if cap not in policy.allowed_capabilities and not policy.allow_privileged:
                refuse(f"{pointer}/capabilities/add/{j}", f"capability {cap!r}", policy.allowed_capabilities)
    for key in HOST_NAMESPACES:
        if spec.get(key) is True and not policy.allow_privileged:
            problems.append(
                Problem(
                    file,
                    f"{source('pod_override')}/spec/{key}",
                    f"host namespaces are not allowed by the platform policy ({policy.file})",
                )
            )
    if not policy.allow_privileged:
        for pointer, reason in _escape_issues(fields, source):
            problems.append(
                Problem(file, pointer, f"{reason}; not allowed by the platform policy ({policy.file})")
            )
    return problems


# Pod Security Standards (baseline): the SELinux types a container may run as.
_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
# pod_override spec keys that choose how and where the platform runs a pod: the platform's, not a package's.
_PLATFORM_SPEC = {
    "runtimeClassName": "runtimeClassName chooses the container runtime",
    "schedulerName": "schedulerName chooses who places the pod",
    "ephemeralContainers": "ephemeral containers are for debugging a running pod",
}


def _escape_issues(fields: dict[str, Any], source: Any) -> list[k8s.Issue]:
    """What would let a pod out of its sandbox beyond privileged and host namespaces (checked
    elsewhere): unconfined seccomp/AppArmor, SELinux types outside the baseline, host ports, /proc
    unmasked, bidirectional mount propagation, root with privilege escalation, and the spec keys the
    platform owns. The Kubernetes *baseline* Pod Security Standard, refused in CI and at parse alike."""
    issues: list[k8s.Issue] = []
    contexts = [(source("security_context"), fields.get("security_context") or {})]
    contexts += [(source("pod_security_context"), fields.get("pod_security_context") or {})]
    contexts += [
        (f"{source('init_containers')}/{i}/security_context", c.get("security_context") or {})
        for i, c in enumerate(fields.get("init_containers", []))
    ]
    for pointer, context in contexts:
        if isinstance(context, dict) and (context.get("seccomp_profile") or {}).get("type") == "Unconfined":
            issues.append((f"{pointer}/seccomp_profile/type", "an Unconfined seccomp profile"))
    override = fields.get("pod_override") or {}
    spec = override.get("spec") if isinstance(override, dict) else None
    if not isinstance(spec, dict):
        return issues
    base = f"{source('pod_override')}/spec"
    for key, why in _PLATFORM_SPEC.items():
        if key in spec:
            issues.append((f"{base}/{key}", why))
    for i, container in enumerate(override_containers(fields)):
        where = f"{base}/containers/{i}"
        ports = container.get("ports")
        for j, port in enumerate(ports if isinstance(ports, list) else []):
            if isinstance(port, dict) and "hostPort" in port:
                issues.append((f"{where}/ports/{j}/hostPort", "a host port"))
        mounts = container.get("volumeMounts")
        for j, mount in enumerate(mounts if isinstance(mounts, list) else []):
            if isinstance(mount, dict) and mount.get("mountPropagation") == "Bidirectional":
                issues.append(
                    (f"{where}/volumeMounts/{j}/mountPropagation", "Bidirectional mount propagation")
                )
        context = container.get("securityContext")
        if not isinstance(context, dict):
            continue
        ctx = f"{where}/securityContext"
        for key in ("seccompProfile", "appArmorProfile"):
            profile = context.get(key)
            if isinstance(profile, dict) and profile.get("type") == "Unconfined":
                issues.append((f"{ctx}/{key}/type", f"an Unconfined {key[:-7]} profile"))
        selinux = context.get("seLinuxOptions")
        if isinstance(selinux, dict):
            if selinux.get("type", "") not in _SELINUX_TYPES:
                issues.append((f"{ctx}/seLinuxOptions/type", f"SELinux type {selinux.get('type')!r}"))
            for key in ("user", "role"):
                if key in selinux:
                    issues.append((f"{ctx}/seLinuxOptions/{key}", f"an SELinux {key}"))
        if context.get("procMount", "Default") != "Default":
            issues.append((f"{ctx}/procMount", f"procMount {context.get('procMount')!r}"))
        if context.get("runAsUser") == 0 and context.get("allowPrivilegeEscalation") is True:
            issues.append((f"{ctx}/allowPrivilegeEscalation", "root with privilege escalation"))
    return issues
