"""Job manifests: read, check everything at once, and resolve into plain data. No Airflow here.

A manifest is accepted only when it passes the JSON Schema *and* the rules a schema cannot express
(naming, unique task ids, an acyclic graph, crons Airflow can run, asset URIs it accepts, pinned images, and what the
Kubernetes API server accepts for each pod field, from :mod:`dagfactory_s3.k8s`, also after
``task_defaults`` are merged in). Every problem is collected and reported together as a
:class:`~dagfactory_s3.errors.ManifestError`; validate, publish, the loader and the sidecar all call
:func:`parse`, so they cannot disagree.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from dagfactory_s3 import assets, k8s, naming
from dagfactory_s3.errors import ManifestError, Problem
from dagfactory_s3.platform import DEFAULT as DEFAULT_POLICY
from dagfactory_s3.platform import Policy
from dagfactory_s3.schedule import check_cron, check_timezone, parse_duration, parse_instant
from dagfactory_s3.schema import schema_problems, to_pointer

__all__ = ["MAX_BYTES", "MAX_DEPTH", "PROVENANCE", "Manifest", "load", "parse", "stamp", "unstamp"]

MAX_BYTES = 256 * 1024
PROVENANCE = "provenance"
MAX_DEPTH = 32
# Bound on every duration and on a task's worst case (all tries, timeouts and delays): Airflow adds
# them to the current time, and ten years is beyond any batch job.
MAX_TOTAL = timedelta(days=3650)
DEFAULT_NAMESPACE = "etl-jobs"
# Airflow's [core] max_map_length default: a mapped task with more items fails at run time.
MAX_MAP_LENGTH = 1024

# Task fields whose values are objects merged key by key with task_defaults (the task wins).
_MERGED = ("env", "labels", "annotations", "node_selector")
# Defaults applied when neither the task nor task_defaults sets a field.
TASK_DEFAULTS: dict[str, Any] = {
    "namespace": DEFAULT_NAMESPACE,
    "startup_timeout": "2m",
    "retries": 0,
    "retry_delay": "5m",
    "on_finish_action": "delete_pod",
    "get_logs": True,
    "allow_mutable_image": False,
}


class Task(NamedTuple):
    """One resolved task: defaults applied, inherited fields merged. ``where`` is its JSON pointer."""

    task_id: str
    where: str
    fields: dict[str, Any]
    depends_on: tuple[str, ...] = ()


class Manifest(NamedTuple):
    """A valid manifest: its bytes, their sha256 and the resolved, plain-data view of them."""

    file: str
    raw: bytes
    data: dict[str, Any]
    tasks: tuple[Task, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def package(self) -> str:
        return self.data["package"]

    @property
    def dag_id(self) -> str:
        return self.data["dag_id"]

    @property
    def images(self) -> list[str]:
        return sorted({t.fields["image"] for t in self.tasks})


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400 is valid JSON text but no number a DAG can use
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _depth(value: Any, limit: int) -> bool:
    """True when ``value`` nests deeper than ``limit`` (iterative: hostile input cannot blow the stack)."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return False


def load(
    path: str | Path,
    *,
    package: str | None = None,
    display: str | None = None,
    policy: Policy = DEFAULT_POLICY,
    source: bool = False,
) -> Manifest:
    """Read and check the manifest at ``path``. Raises ManifestError naming ``display`` (default: path)."""
    file = display or str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ManifestError([Problem(file, "", "manifest file does not exist")]) from None
    except IsADirectoryError:
        raise ManifestError([Problem(file, "", "is a directory, not a manifest file")]) from None
    except OSError as exc:
        raise ManifestError([Problem(file, "", f"cannot read manifest: {exc.strerror or exc}")]) from None
    return parse(raw, file=file, package=package, policy=policy, source=source)


def parse(
    raw: bytes,
    *,
    file: str,
    package: str | None = None,
    policy: Policy = DEFAULT_POLICY,
    source: bool = False,
) -> Manifest:
    """Check manifest bytes. ``package``, when given, is the package the manifest must belong to;
    ``policy`` is what the platform allows (:mod:`dagfactory_s3.platform`). ``source``: the
    manifest as its package writes it (validate, plan, publish, promote), which the publisher stamps
    and so may not carry a stamp (``provenance``) of its own."""
    if len(raw) > MAX_BYTES:
        raise ManifestError([Problem(file, "", f"manifest is larger than {MAX_BYTES} bytes (256 KiB)")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError([Problem(file, "", f"not UTF-8: invalid byte at offset {exc.start}")]) from None
    if text.startswith("\ufeff"):
        raise ManifestError([Problem(file, "", "starts with a byte-order mark; save as UTF-8 without BOM")])
    try:
        document = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except _DuplicateKey as exc:
        raise ManifestError([Problem(file, "", f"duplicate key {exc.args[0]!r} in an object")]) from None
    except json.JSONDecodeError as exc:
        raise ManifestError(
            [Problem(file, "", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")]
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ManifestError([Problem(file, "", f"invalid JSON: {exc}")]) from None
    if _depth(document, MAX_DEPTH):
        raise ManifestError([Problem(file, "", f"nested deeper than {MAX_DEPTH} levels")])
    # Before the schema: its messages quote keys and values, which must be printable first.
    problems = [Problem(file, pointer, reason) for pointer, reason in k8s.hygiene_issues(document)]
    if problems:
        raise ManifestError(problems)
    problems, tasks = _check_document(document, file, package, policy)
    if source and isinstance(document, dict) and PROVENANCE in document:
        problems.append(
            Problem(
                file,
                f"/{PROVENANCE}",
                "written by the publisher (the release that last changed this manifest); remove it from the source",
            )
        )
    if not problems:  # each environment's manifest must be valid too (its problems named by the overlay)
        for name in document.get("environments", {}):
            problems += _environment_problems(document, name, file, package, policy)
    if problems:
        raise ManifestError(problems)
    return Manifest(file=file, raw=raw, data=document, tasks=tasks)


# -- the provenance stamp


def stamp(raw: bytes, provenance: dict[str, str]) -> bytes:
    """``raw`` with ``provenance`` as its first member, on a line of its own: the manifest's bytes
    otherwise untouched (its formatting kept), so :func:`unstamp` gives them back exactly."""
    brace = raw.index(b"{") + 1
    return raw[:brace] + _stamp_line(provenance) + raw[brace:]


def unstamp(stamped: bytes, provenance: dict[str, str]) -> bytes:
    """The bytes :func:`stamp` was given. Raises ValueError when ``stamped`` has not this stamp."""
    brace = stamped.index(b"{") + 1
    line = _stamp_line(provenance)
    if stamped[brace : brace + len(line)] != line:
        raise ValueError("not stamped with this provenance")
    return stamped[:brace] + stamped[brace + len(line) :]


def _stamp_line(provenance: dict[str, str]) -> bytes:
    ordered = {k: provenance[k] for k in ("release", "git_sha", "package_version") if provenance.get(k)}
    return f'\n  "{PROVENANCE}": {json.dumps(ordered, ensure_ascii=False)},'.encode()


def _check_document(
    document: dict[str, Any], file: str, package: str | None, policy: Policy
) -> tuple[list[Problem], tuple[Task, ...]]:
    problems = schema_problems(document, file)
    tasks: tuple[Task, ...] = ()
    try:  # the rules run on a document the schema refused too: every problem in one pass
        tasks = _resolve_tasks(document)
        problems += _check_rules(document, tasks, file, package, policy)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        if not problems:  # the schema passed it: a rule that crashes is a bug
            raise
    return problems, tasks


# -- per-environment values


def _merged(
    base: dict[str, Any], overlay: dict[str, Any], origin: str, sources: dict[str, str], at: str
) -> dict[str, Any]:
    """Task fields with an overlay applied: env and resources key by key, the rest replaced. Records
    in ``sources`` which resolved pointer came from which overlay pointer."""
    out = dict(base)
    for key, value in overlay.items():
        if key == "env":
            out["env"] = {**base.get("env", {}), **value}
        elif key == "resources":
            old = base.get("resources", {})
            out["resources"] = {
                k: {**old.get(k, {}), **value.get(k, {})}
                for k in ("requests", "limits")
                if k in old or k in value
            }
        else:
            out[key] = value
        sources[f"{at}/{key}"] = f"{origin}/{key}"
    return out


def resolve(
    document: dict[str, Any], environment: str, file: str = ""
) -> tuple[dict[str, Any], dict[str, str]]:
    """The manifest for ``environment``: its overlay applied, ``environments`` removed. Also which
    pointers of the result an overlay set (result pointer -> overlay pointer). A manifest without
    ``environments`` is returned as it is. Raises ManifestError when the overlay names what the
    manifest does not have, or when the manifest has no overlay for ``environment``."""
    overlays = document.get("environments")
    resolved = {k: v for k, v in document.items() if k != "environments"}
    if overlays is None:
        return resolved, {}
    if environment not in overlays:
        declared = ", ".join(sorted(overlays)) or "none"
        raise ManifestError(
            [
                Problem(
                    file,
                    "/environments",
                    f"no values for environment {environment!r} (declared: {declared}); add an entry, even an empty one",
                )
            ]
        )
    overlay, origin, sources = overlays[environment], f"/environments/{environment}", {}
    problems = []
    for key in ("schedule", "paused_on_create"):
        if key in overlay:
            resolved[key] = overlay[key]
            sources[f"/{key}"] = f"{origin}/{key}"
    if "params" in overlay:
        params = {k: dict(v) for k, v in resolved.get("params", {}).items()}
        for name, value in overlay["params"].items():
            if name not in params:
                problems.append(
                    Problem(
                        file, f"{origin}/params{to_pointer([name])}", f"no param {name!r} in the manifest"
                    )
                )
                continue
            params[name]["default"] = value["default"]
            sources[f"/params{to_pointer([name])}/default"] = f"{origin}/params{to_pointer([name])}/default"
        resolved["params"] = params
    if "task_defaults" in overlay:
        resolved["task_defaults"] = _merged(
            resolved.get("task_defaults", {}),
            overlay["task_defaults"],
            f"{origin}/task_defaults",
            sources,
            "/task_defaults",
        )
    if "job" in overlay:
        if "job" not in resolved:
            problems.append(Problem(file, f"{origin}/job", "the manifest has tasks, not a job"))
        else:
            resolved["job"] = _merged(resolved["job"], overlay["job"], f"{origin}/job", sources, "/job")
    if "tasks" in overlay:
        index = {t.get("task_id"): i for i, t in enumerate(resolved.get("tasks", []))}
        tasks = list(resolved.get("tasks", []))
        for task_id, values in overlay["tasks"].items():
            if task_id not in index:
                problems.append(
                    Problem(
                        file, f"{origin}/tasks{to_pointer([task_id])}", f"no task {task_id!r} in the manifest"
                    )
                )
                continue
            i = index[task_id]
            tasks[i] = _merged(
                tasks[i], values, f"{origin}/tasks{to_pointer([task_id])}", sources, f"/tasks/{i}"
            )
        resolved["tasks"] = tasks
    if problems:
        raise ManifestError(problems)
    return resolved, sources


def _environment_problems(
    document: dict[str, Any], name: str, file: str, package: str | None, policy: Policy
) -> list[Problem]:
    try:
        resolved, sources = resolve(document, name, file)
    except ManifestError as exc:
        return exc.problems()
    problems, _ = _check_document(resolved, file, package, policy)
    out = []
    for problem in problems:
        origin = max(
            (p for p in sources if problem.pointer == p or problem.pointer.startswith(p + "/")),
            key=len,
            default=None,
        )
        if origin is not None:
            out.append(problem._replace(pointer=sources[origin] + problem.pointer[len(origin) :]))
        else:
            out.append(problem._replace(message=f"with environment {name!r}: {problem.message}"))
    return out


def publishable(manifest: Manifest, environment: str) -> Manifest:
    """What ``publish --environment`` uploads: the manifest resolved for ``environment``, as a
    manifest of its own (byte-identical when it has no ``environments``)."""
    if "environments" not in manifest.data:
        return manifest
    resolved, _ = resolve(manifest.data, environment, manifest.file)
    raw = (json.dumps(resolved, indent=2, ensure_ascii=False) + "\n").encode()
    return parse(raw, file=manifest.file, package=manifest.package)


def _resolve_tasks(document: dict[str, Any]) -> tuple[Task, ...]:
    defaults = document.get("task_defaults", {})
    if "job" in document:
        job = dict(document["job"])
        entries = [("/job", job.pop("name"), job, [])]
    else:
        entries = []
        for i, task in enumerate(document["tasks"]):
            body = dict(task)
            task_id, depends = body.pop("task_id"), body.pop("depends_on", [])
            entries.append((f"/tasks/{i}", task_id, body, depends))
    resolved = []
    for where, task_id, body, depends in entries:
        merged = {**TASK_DEFAULTS, **defaults, **body}
        for key in _MERGED:
            if key in defaults and key in body:
                merged[key] = {**defaults[key], **body[key]}
        if "resources" in defaults and "resources" in body:
            merged["resources"] = {
                kind: {**defaults["resources"].get(kind, {}), **body["resources"].get(kind, {})}
                for kind in ("requests", "limits")
                if kind in defaults["resources"] or kind in body["resources"]
            }
        resolved.append(Task(task_id=task_id, where=where, fields=merged, depends_on=tuple(depends)))
    return tuple(resolved)


def _own(document: dict[str, Any], task: Task) -> dict[str, Any]:
    """The task's fields as written (without task_defaults)."""
    if task.where == "/job":
        return document["job"]
    return document["tasks"][int(task.where.rsplit("/", 1)[1])]


def _check_fields(fields: dict[str, Any], where: str, file: str, problems: list[Problem]) -> None:
    """Rules on task fields as written (in a task, the job, or task_defaults): see dagfactory_s3.k8s."""

    def add(issues: list[k8s.Issue]) -> None:
        problems.extend(Problem(file, pointer, reason) for pointer, reason in issues)

    if "image" in fields:
        reason = k8s.check_image(fields["image"])
        if reason:
            add([(f"{where}/image", reason)])
    add(_env_issues(fields.get("env", {}), f"{where}/env"))
    for kind in ("labels", "annotations", "node_selector"):
        for key, value in fields.get(kind, {}).items():
            pointer = f"{where}/{kind}{to_pointer([key])}"
            if kind == "annotations":  # the API server lowercases annotation keys before checking them
                reason = k8s.check_qualified_name(key.lower(), "annotation key")
            else:
                reason = k8s.check_qualified_name(key) or k8s.check_label_value(value)
            if reason:
                add([(pointer, reason)])
    if "service_account" in fields:
        reason = k8s.check_subdomain(fields["service_account"], "service account name")
        if reason:
            add([(f"{where}/service_account", reason)])
    for i, name in enumerate(fields.get("image_pull_secrets", [])):
        reason = k8s.check_subdomain(name, "image pull secret name")
        if reason:
            add([(f"{where}/image_pull_secrets/{i}", reason)])
    add(k8s.toleration_issues(fields.get("tolerations", []), f"{where}/tolerations", "toleration_seconds"))
    if "affinity" in fields:
        add(k8s.affinity_issues(fields["affinity"], f"{where}/affinity"))
    for key in (
        "startup_timeout",
        "execution_timeout",
        "retry_delay",
        "max_retry_delay",
        "termination_grace_period",
    ):
        if key in fields:
            _check_duration(fields[key], f"{where}/{key}", file, problems)
    add(k8s.volume_issues(fields.get("volumes", []), f"{where}/volumes"))
    add(k8s.mount_issues(fields.get("volume_mounts", []), f"{where}/volume_mounts"))
    for i, source in enumerate(fields.get("env_from", [])):
        if "prefix" in source:
            reason = k8s.check_env_name(source["prefix"])
            if reason:
                add([(f"{where}/env_from/{i}/prefix", reason)])
    for key in ("security_context", "pod_security_context"):
        if key in fields:
            add(k8s.security_issues(fields[key], f"{where}/{key}"))
    if "priority_class_name" in fields:
        reason = k8s.check_subdomain(fields["priority_class_name"], "priority class name")
        if reason:
            add([(f"{where}/priority_class_name", reason)])
    for i, alias in enumerate(fields.get("host_aliases", [])):
        try:
            ipaddress.ip_address(alias["ip"])
        except ValueError:
            add([(f"{where}/host_aliases/{i}/ip", f"{alias['ip']!r} is not an IPv4 or IPv6 address")])
        for j, host in enumerate(alias["hostnames"]):
            reason = k8s.check_subdomain(host, "hostname")
            if reason:
                add([(f"{where}/host_aliases/{i}/hostnames/{j}", reason)])
    add(_init_container_issues(fields.get("init_containers", []), f"{where}/init_containers"))
    _check_assets(fields.get("outlets"), f"{where}/outlets", file, problems)
    if "pod_override" in fields:
        add(_override_issues(fields["pod_override"], f"{where}/pod_override"))


def _check_assets(uris: Any, pointer: str, file: str, problems: list[Problem]) -> None:
    """Each asset URI as Airflow would take it; two spellings of one asset in one list are refused."""
    if not isinstance(uris, list):
        return  # the schema reports it
    seen: dict[str, int] = {}
    for i, uri in enumerate(uris):
        if not isinstance(uri, str):
            continue
        reason = assets.check_uri(uri)
        if reason:
            problems.append(Problem(file, f"{pointer}/{i}", reason))
            continue
        same = assets.normalize(uri)
        if same in seen and uris[seen[same]] != uri:  # an exact repeat is the schema's uniqueItems
            problems.append(
                Problem(
                    file,
                    f"{pointer}/{i}",
                    f"the same asset as {pointer}/{seen[same]} (Airflow stores both as {same!r}); list it once",
                )
            )
        seen.setdefault(same, i)


def _check_self_trigger(
    schedule: dict[str, Any], tasks: tuple[Task, ...], file: str, problems: list[Problem]
) -> None:
    """A DAG whose own outlets satisfy its asset condition triggers itself after every run, without end
    (Airflow queues the producing DAG like any other consumer)."""
    own: dict[str, str] = {}
    for task in tasks:
        outlets = task.fields.get("outlets", [])
        for uri in outlets if isinstance(outlets, list) else []:
            if isinstance(uri, str) and assets.check_uri(uri) is None:
                own.setdefault(assets.normalize(uri), task.task_id)
    listed = [
        (i, assets.normalize(u))
        for i, u in enumerate(schedule["assets"])
        if isinstance(u, str) and assets.check_uri(u) is None
    ]
    mine = [(i, u) for i, u in listed if u in own]
    if not mine:
        return
    if schedule.get("require", "all") == "any":
        i, uri = mine[0]
        where, why = f"/schedule/assets/{i}", f"task {own[uri]!r} of this DAG updates {uri!r}"
    elif len(mine) == len(schedule["assets"]):
        where, why = "/schedule/assets", "this DAG's own tasks update every listed asset"
    else:
        return
    problems.append(Problem(file, where, f"{why}: each run would trigger the next, without end"))


def _env_issues(env: dict[str, Any], pointer: str) -> list[k8s.Issue]:
    issues: list[k8s.Issue] = []
    for name, value in env.items():
        where = f"{pointer}{to_pointer([name])}"
        reason = k8s.check_env_name(name)
        if reason:
            issues.append((where, reason))
        if isinstance(value, dict):
            for kind, what in (("secret", "Secret"), ("config_map", "ConfigMap")):
                if kind in value:
                    issues += k8s.key_ref_issues(value[kind], f"{where}/{kind}", what)
    return issues


def _init_container_issues(containers: list[dict[str, Any]], pointer: str) -> list[k8s.Issue]:
    issues: list[k8s.Issue] = []
    seen: dict[str, int] = {}
    for i, container in enumerate(containers):
        where = f"{pointer}/{i}"
        name = container["name"]
        if name == BASE_CONTAINER:
            issues.append(
                (f"{where}/name", f"{BASE_CONTAINER!r} is the task's own container; pick another name")
            )
        elif name in seen:
            issues.append(
                (f"{where}/name", f"container name {name!r} is already used at {pointer}/{seen[name]}")
            )
        seen.setdefault(name, i)
        reason = k8s.check_image(container["image"])
        if reason:
            issues.append((f"{where}/image", reason))
        issues += _env_issues(container.get("env", {}), f"{where}/env")
        resources = container.get("resources", {})
        issues += k8s.resource_issues(
            resources.get("requests", {}),
            resources.get("limits", {}),
            lambda kind, key, where=where: f"{where}/resources/{kind}{to_pointer([key])}",
        )
        issues += k8s.mount_issues(container.get("volume_mounts", []), f"{where}/volume_mounts")
        if "security_context" in container:
            issues += k8s.security_issues(container["security_context"], f"{where}/security_context")
    return issues


BASE_CONTAINER = "base"  # the operator's name for the task's container
# pod_override keys the manifest models: the manifest field wins, so repeating one here is refused.
_MODELLED_SPEC = {
    "serviceAccountName": "service_account",
    "serviceAccount": "service_account",
    "nodeSelector": "node_selector",
    "tolerations": "tolerations",
    "affinity": "affinity",
    "imagePullSecrets": "image_pull_secrets",
    "securityContext": "pod_security_context",
    "initContainers": "init_containers",
    "volumes": "volumes",
    "priorityClassName": "priority_class_name",
    "automountServiceAccountToken": "automount_service_account_token",
    "hostAliases": "host_aliases",
    "terminationGracePeriodSeconds": "termination_grace_period",
}
_MODELLED_CONTAINER = {
    "image": "image",
    "command": "command",
    "args": "arguments",
    "env": "env",
    "envFrom": "env_from",
    "resources": "resources",
    "volumeMounts": "volume_mounts",
    "securityContext": "security_context",
    "imagePullPolicy": "image_pull_policy",
}
_OWNED_SPEC = {
    "containers": None,
    "restartPolicy": "the operator runs every pod with restartPolicy Never",
    "nodeName": "pods are placed by the scheduler (use node_selector or affinity)",
}
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")


def _override_containers(fields: dict[str, Any]) -> list[dict[str, Any]]:
    """pod_override's containers when well-formed (else reported by _override_issues), else []."""
    containers = fields.get("pod_override", {}).get("spec", {}).get("containers", [])
    if isinstance(containers, list) and all(isinstance(c, dict) for c in containers):
        return containers
    return []


def _override_issues(override: dict[str, Any], pointer: str) -> list[k8s.Issue]:
    """What a partial pod may not do: rename or relabel what we own, repeat a modelled field, or
    reshape the task's container. The rest is checked against the Kubernetes schema (render, validate)."""
    issues: list[k8s.Issue] = []
    meta = override.get("metadata", {})
    for key in sorted(meta):
        if key not in ("labels", "annotations"):
            issues.append(
                (
                    f"{pointer}/metadata/{key}",
                    "set by the factory; a pod_override may set labels and annotations",
                )
            )
    for kind in ("labels", "annotations"):
        values = meta.get(kind, {})
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            issues.append((f"{pointer}/metadata/{kind}", "expected an object of strings"))
            continue
        for key, value in values.items():
            where = f"{pointer}/metadata/{kind}{to_pointer([key])}"
            if key.startswith("dagfactory-s3/") or key == "app.kubernetes.io/managed-by":
                issues.append((where, f"{key!r} is set by the factory"))
                continue
            reason = k8s.check_qualified_name(
                key.lower() if kind == "annotations" else key, kind[:-1] + " key"
            )
            if reason is None and kind == "labels":
                reason = k8s.check_label_value(value)
            if reason:
                issues.append((where, reason))
    spec = override.get("spec", {})
    for key in sorted(spec):
        if key in _MODELLED_SPEC:
            issues.append(
                (f"{pointer}/spec/{key}", f"use the manifest field {_MODELLED_SPEC[key]!r} instead")
            )
        elif _OWNED_SPEC.get(key):
            issues.append((f"{pointer}/spec/{key}", _OWNED_SPEC[key]))
    containers = spec.get("containers", [])
    if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
        return [*issues, (f"{pointer}/spec/containers", "expected an array of objects")]
    names: set[str] = set()
    for i, container in enumerate(containers):
        where = f"{pointer}/spec/containers/{i}"
        name = container.get("name")
        if i == 0:
            if name != BASE_CONTAINER:
                issues.append(
                    (
                        f"{where}/name",
                        f"the first container is the task's own and must be named {BASE_CONTAINER!r}",
                    )
                )
            for key in sorted(container):
                if key in _MODELLED_CONTAINER:
                    issues.append(
                        (f"{where}/{key}", f"use the manifest field {_MODELLED_CONTAINER[key]!r} instead")
                    )
            continue
        reason = (
            k8s.check_dns_label(name, "container name")
            if isinstance(name, str)
            else "container name is required"
        )
        if reason is None and (name == BASE_CONTAINER or name in names):
            reason = f"container name {name!r} is already used"
        if reason:
            issues.append((f"{where}/name", reason))
        names.add(name)
        image = container.get("image")
        reason = k8s.check_image(image) if isinstance(image, str) else "image is required"
        if reason:
            issues.append((f"{where}/image", reason))
    return issues


def _has(node: Any, path: list[str]) -> bool:
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _check_task(
    document: dict[str, Any], task: Task, file: str, problems: list[Problem], policy: Policy
) -> None:
    """Rules on a task after task_defaults are merged in, each named at the field that was written."""
    own = _own(document, task)

    def source(field: str, *keys: str) -> str:
        """The pointer of ``field/keys...`` where it is written: the task, else task_defaults."""
        path = [field, *keys]
        base = "/task_defaults" if not _has(own, path) and _has(defaults, path) else task.where
        return base + to_pointer(path)

    defaults = document.get("task_defaults", {})

    fields = task.fields
    images = [(source("image"), fields["image"])] if "image" in fields else []
    images += [
        (f"{source('init_containers')}/{i}/image", c["image"])
        for i, c in enumerate(fields.get("init_containers", []))
    ]
    extra = _override_containers(fields)[1:]
    images += [
        (f"{source('pod_override')}/spec/containers/{i}/image", c["image"])
        for i, c in enumerate(extra, 1)
        if isinstance(c.get("image"), str)
    ]
    for pointer, image in images:
        if k8s.check_image(image) is not None:
            continue  # reported where it is written
        reason = None if fields["allow_mutable_image"] else k8s.image_pin_problem(image)
        if reason is None and not policy.registry_allowed(image):
            reason = (
                f"image registry not allowed by the platform policy ({policy.file}); "
                f"allowed: {', '.join(policy.image_registries or ())}"
            )
        if reason:
            problems.append(Problem(file, pointer, reason))
    declared = {v["name"] for v in fields.get("volumes", [])}
    mounts = [(source("volume_mounts"), fields.get("volume_mounts", []))]
    mounts += [
        (f"{source('init_containers')}/{i}/volume_mounts", c.get("volume_mounts", []))
        for i, c in enumerate(fields.get("init_containers", []))
    ]
    for base, items in mounts:
        for i, mount in enumerate(items):
            if mount["name"] not in declared:
                known = ", ".join(sorted(declared)) or "none declared"
                problems.append(
                    Problem(
                        file, f"{base}/{i}/name", f"mounts volume {mount['name']!r}, not in volumes ({known})"
                    )
                )
    pod_user = fields.get("pod_security_context", {})
    if pod_user.get("run_as_non_root"):
        contexts = [(source("security_context"), fields.get("security_context", {}))]
        for pointer, context in contexts:
            if context.get("run_as_user") == 0:
                problems.append(
                    Problem(
                        file,
                        f"{pointer}/run_as_user",
                        "pod_security_context.run_as_non_root is true: the kubelet refuses to start user 0",
                    )
                )
    problems.extend(_policy_problems(fields, source, file, policy))
    alerts = fields.get("alerts", {})
    problems.extend(_notifier_problems([(source("alerts", k), v) for k, v in alerts.items()], file, policy))
    resources = fields.get("resources", {})
    issues = k8s.resource_issues(
        resources.get("requests", {}),
        resources.get("limits", {}),
        lambda kind, name: source("resources", kind, name),
    )
    problems.extend(Problem(file, pointer, reason) for pointer, reason in issues)
    reason = k8s.check_label_value(task.task_id, "task_id (the value of the dagfactory-s3/task-id label)")
    if reason:
        problems.append(
            Problem(file, f"{task.where}/{'name' if task.where == '/job' else 'task_id'}", reason)
        )
    # The longest a task can hold a worker slot and a pod: every try waits for its pod and runs,
    # with a delay between tries. Airflow adds these to "now"; past MAX_DURATION_DAYS it is no schedule.
    try:
        durations = {
            k: parse_duration(fields[k])
            for k in ("startup_timeout", "retry_delay", "execution_timeout")
            if k in fields
        }
    except ValueError:
        return  # reported where the duration is written
    tries = fields["retries"] + 1
    total = tries * (durations["startup_timeout"] + durations.get("execution_timeout", timedelta(0)))
    total += fields["retries"] * durations["retry_delay"]
    if total > MAX_TOTAL:
        problems.append(
            Problem(
                file,
                task.where,
                f"retries, startup_timeout, execution_timeout and retry_delay (with task_defaults) add up to "
                f"{total.days} days; at most {MAX_TOTAL.days} allowed",
            )
        )


def _notifier_problems(uses: list[tuple[str, list[str]]], file: str, policy: Policy) -> list[Problem]:
    """Every notifier a manifest names must be one the platform defines (its policy file)."""
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
    return problems


def _policy_problems(fields: dict[str, Any], source: Any, file: str, policy: Policy) -> list[Problem]:
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
    for i, container in enumerate(_override_containers(fields)):
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
    return problems


# JSON Schema keywords of a param (what Airflow's Param validates a value against).
_PARAM_RULES = ("type", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern", "format")


def _check_param(
    name: str, param: dict[str, Any], scheduled: bool, file: str, problems: list[Problem]
) -> None:
    """What Airflow refuses when it builds the DAG or a run: a default that breaks the param's own
    rules, a scheduled DAG with a param that has no default, contradictory bounds."""
    import re

    from jsonschema import Draft202012Validator, FormatChecker

    where = f"/params{to_pointer([name])}"
    rules = {k: param[k] for k in _PARAM_RULES if k in param}
    if "pattern" in rules:
        try:
            re.compile(rules["pattern"])
        except re.error as exc:
            problems.append(Problem(file, f"{where}/pattern", f"not a valid regular expression: {exc}"))
            return
    for low, high in (("minimum", "maximum"), ("minLength", "maxLength")):
        if low in rules and high in rules and rules[low] > rules[high]:
            problems.append(
                Problem(file, f"{where}/{high}", f"{high} {rules[high]} is below {low} {rules[low]}")
            )
            return
    if next(Draft202012Validator(Draft202012Validator.META_SCHEMA).iter_errors(rules), None) is not None:
        return  # not a usable JSON Schema: the manifest schema reports the field
    validator = Draft202012Validator(rules, format_checker=FormatChecker())
    if "default" in param:
        error = next(iter(validator.iter_errors(param["default"])), None)
        if error is not None:
            problems.append(
                Problem(
                    file, f"{where}/default", f"the default breaks the param's own rules: {error.message}"
                )
            )
    elif scheduled:
        problems.append(
            Problem(
                file,
                where,
                "a param without a default: Airflow refuses a scheduled DAG with one (set a default, or schedule: null)",
            )
        )
    for i, value in enumerate(param.get("enum", [])):
        error = next(
            iter(Draft202012Validator({k: v for k, v in rules.items() if k != "enum"}).iter_errors(value)),
            None,
        )
        if error is not None:
            problems.append(
                Problem(file, f"{where}/enum/{i}", f"breaks the param's own rules: {error.message}")
            )


def _check_expand(
    task: Task, expand: dict[str, Any], tasks: tuple[Task, ...], file: str, problems: list[Problem]
) -> None:
    """Dynamic task mapping: what Airflow would refuse when the run starts, refused now."""
    where = f"{task.where}/expand"
    fields = task.fields
    arguments = expand.get("arguments")
    if arguments is not None and "arguments" in fields:
        problems.append(
            Problem(
                file,
                where + "/arguments",
                "the task (or task_defaults) also sets arguments; set them in one place",
            )
        )
    if isinstance(arguments, dict):
        upstream = next((t for t in tasks if t.task_id == arguments["from_task"]), None)
        pointer = f"{where}/arguments/from_task"
        if upstream is None:
            problems.append(Problem(file, pointer, f"unknown task {arguments['from_task']!r}"))
        elif upstream.task_id == task.task_id:
            problems.append(Problem(file, pointer, "a task cannot map over its own result"))
        elif not upstream.fields.get("do_xcom_push"):
            problems.append(
                Problem(
                    file, pointer, f"task {upstream.task_id!r} does not set do_xcom_push: it pushes no list"
                )
            )
    if "env" in expand:
        for name, value in fields.get("env", {}).items():
            if not isinstance(value, str):
                problems.append(
                    Problem(
                        file,
                        f"{where}/env",
                        f"mapping over env needs literal env values; {name!r} is a reference (use env_from)",
                    )
                )
        for i, item in enumerate(expand["env"]):
            for name in item:
                reason = k8s.check_env_name(name)
                if reason:
                    problems.append(Problem(file, f"{where}/env/{i}{to_pointer([name])}", reason))
    count = 1
    for key in ("arguments", "env"):
        if isinstance(expand.get(key), list):
            count *= len(expand[key])
    if count > MAX_MAP_LENGTH:
        problems.append(
            Problem(file, where, f"expands to {count} task instances; Airflow maps at most {MAX_MAP_LENGTH}")
        )


def _check_duration(text: str, pointer: str, file: str, problems: list[Problem]) -> None:
    try:
        value = parse_duration(text)
    except ValueError as exc:  # well-formed (the schema checked) but too long for a timedelta
        problems.append(Problem(file, pointer, str(exc)))
        return
    if value.total_seconds() <= 0:
        problems.append(Problem(file, pointer, "duration must be greater than zero"))
    elif value > MAX_TOTAL:
        problems.append(Problem(file, pointer, f"duration {text!r} is longer than {MAX_TOTAL.days} days"))


def _check_rules(
    document: dict[str, Any], tasks: tuple[Task, ...], file: str, package: str | None, policy: Policy
) -> list[Problem]:
    problems: list[Problem] = []
    own = document["package"]
    if package is not None and own != package:
        problems.append(Problem(file, "/package", f"manifest belongs to package {own!r}, not {package!r}"))
    reason = naming.check_dag_id(document["dag_id"], own)
    if reason:
        problems.append(Problem(file, "/dag_id", reason))
    # Both become pod label values (dagfactory-s3/package, dagfactory-s3/dag-id).
    for key in ("package", "dag_id"):
        reason = k8s.check_label_value(document[key], f"{key} (a pod label value)")
        if reason:
            problems.append(Problem(file, f"/{key}", reason))
    for pointer, text in [("/owner", document.get("owner", ""))] + [
        (f"/tags/{i}", tag) for i, tag in enumerate(document.get("tags", []))
    ]:
        reason = k8s.check_visible(text, repr(text))
        if reason:
            problems.append(Problem(file, pointer, reason))

    schedule = document.get("schedule")
    if isinstance(schedule, str):
        reason = check_cron(schedule)
        if reason:
            problems.append(Problem(file, "/schedule", reason))
    elif isinstance(schedule, dict) and isinstance(schedule.get("every"), str):
        _check_duration(schedule["every"], "/schedule/every", file, problems)
    elif isinstance(schedule, dict):
        _check_assets(schedule.get("assets"), "/schedule/assets", file, problems)
    zone = None
    if "timezone" in document:
        found = check_timezone(document["timezone"])
        if isinstance(found, str):
            problems.append(Problem(file, "/timezone", found))
        else:
            zone = found
    dates = {}
    for key in ("start_date", "end_date"):
        if key in document:
            try:
                dates[key] = parse_instant(document[key], zone)
            except ValueError as exc:
                problems.append(Problem(file, f"/{key}", f"{document[key]!r} is not a valid date: {exc}"))
    if "start_date" in dates and "end_date" in dates and dates["end_date"] <= dates["start_date"]:
        problems.append(Problem(file, "/end_date", "end_date must be after start_date"))
    if "dagrun_timeout" in document:
        _check_duration(document["dagrun_timeout"], "/dagrun_timeout", file, problems)
    for name, param in document.get("params", {}).items():
        # Airflow refuses params without defaults on time-based schedules only (an asset-triggered
        # timetable "cannot be scheduled").
        timed = isinstance(schedule, str) or (isinstance(schedule, dict) and "every" in schedule)
        _check_param(name, param, timed, file, problems)
    notify = [(f"/alerts/{k}", v) for k, v in document.get("alerts", {}).items()]
    if "deadline" in document:
        notify.append(("/deadline/notify", document["deadline"]["notify"]))
        _check_duration(document["deadline"]["after"], "/deadline/after", file, problems)
    problems.extend(_notifier_problems(notify, file, policy))
    for owner, link in document.get("owner_links", {}).items():
        parts = urlsplit(link)
        if not (parts.scheme == "mailto" and parts.path) and not (
            parts.scheme in ("http", "https") and parts.netloc
        ):
            problems.append(
                Problem(
                    file,
                    f"/owner_links{to_pointer([owner])}",
                    f"{link!r} is not an http(s):// or mailto: link",
                )
            )

    if "task_defaults" in document:
        _check_fields(document["task_defaults"], "/task_defaults", file, problems)
    raw_tasks = [document["job"]] if "job" in document else document["tasks"]
    seen_ids = {task.task_id for task in tasks}
    seen: dict[str, str] = {}
    for task, raw in zip(tasks, raw_tasks, strict=True):
        _check_fields(raw, task.where, file, problems)
        id_pointer = f"{task.where}/{'name' if 'job' in document else 'task_id'}"
        if task.task_id in seen:
            problems.append(
                Problem(file, id_pointer, f"task_id {task.task_id!r} is already used at {seen[task.task_id]}")
            )
        seen.setdefault(task.task_id, task.where)
        if "image" not in task.fields:
            problems.append(
                Problem(file, task.where, "no image: set 'image' on the task or in 'task_defaults'")
            )
        pod = naming.pod_name(document["dag_id"], task.task_id)
        if k8s.check_dns_label(pod, "pod name"):
            problems.append(
                Problem(file, id_pointer, f"derived pod name {pod!r} is not a valid RFC 1123 label")
            )
        _check_task(document, task, file, problems, policy)
        if "expand" in raw:
            _check_expand(task, raw["expand"], tasks, file, problems)
        if "group" in raw and raw["group"] in seen_ids:
            problems.append(
                Problem(
                    file, f"{task.where}/group", f"group {raw['group']!r} is also a task_id; use another name"
                )
            )
        for key in ("labels", "annotations"):
            reserved = [k for k in task.fields.get(key, {}) if k.startswith("dagfactory-s3/")]
            for k in reserved:
                problems.append(
                    Problem(
                        file, f"{task.where}/{key}{to_pointer([k])}", "the dagfactory-s3/ prefix is reserved"
                    )
                )

    if isinstance(schedule, dict) and isinstance(schedule.get("assets"), list):
        _check_self_trigger(schedule, tasks, file, problems)
    for task in tasks:
        for j, dep in enumerate(task.depends_on):
            if dep == task.task_id:
                problems.append(
                    Problem(file, f"{task.where}/depends_on/{j}", "a task cannot depend on itself")
                )
            elif dep not in seen:
                problems.append(
                    Problem(file, f"{task.where}/depends_on/{j}", f"depends on unknown task {dep!r}")
                )
    cycle = _find_cycle(tasks)
    if cycle:
        problems.append(Problem(file, "/tasks", f"dependency cycle: {' -> '.join(cycle)}"))
    return problems


def _upstream(task: Task) -> list[str]:
    """depends_on plus the task a mapped task takes its list from."""
    source = task.fields.get("expand", {}).get("arguments")
    extra = [source["from_task"]] if isinstance(source, dict) else []
    return [*task.depends_on, *extra]


def _find_cycle(tasks: tuple[Task, ...]) -> list[str] | None:
    """A cycle in depends_on (ignoring self-edges and unknown ids, reported elsewhere), or None."""
    graph = {t.task_id: [d for d in _upstream(t) if d != t.task_id] for t in tasks}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in graph:
        if state.get(start):
            continue
        path, stack = [start], [iter(graph[start])]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif nxt not in graph or state.get(nxt) == 2:
                continue
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            else:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(graph[nxt]))
    return None
