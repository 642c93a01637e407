"""The rules a JSON Schema cannot express, run on a decoded document: naming, unique task ids, an
acyclic graph, crons Airflow can run, asset URIs it accepts, params Airflow can build, pinned images,
the platform policy (:mod:`dagfactory_s3.platform`), and what the Kubernetes API server accepts for
each pod field (:mod:`dagfactory_s3.k8s`), also after ``task_defaults`` are merged in; what the
platform policy allows (templates, grants, the sandbox) is :mod:`dagfactory_s3.manifest.isolation`.
Every problem
is collected, named at the pointer where it is written (the task, else ``task_defaults``).
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from dagfactory_s3 import assets, k8s, naming
from dagfactory_s3.errors import Problem
from dagfactory_s3.manifest.isolation import (
    grant_problems,
    notifier_problems,
    policy_problems,
    template_problems,
    template_scope,
)
from dagfactory_s3.manifest.model import MAX_MAP_LENGTH, MAX_TOTAL, Task
from dagfactory_s3.manifest.overlays import own_fields, resolve_tasks
from dagfactory_s3.manifest.patterns import backtracking
from dagfactory_s3.manifest.pod_fields import BASE_CONTAINER, FIELDS, HOST_NAMESPACES, override_containers
from dagfactory_s3.platform import Policy
from dagfactory_s3.schedule import (
    check_cron,
    check_data_intervals,
    check_timezone,
    parse_duration,
    parse_instant,
)
from dagfactory_s3.schema import schema_problems, to_pointer

__all__ = ["check_document"]


def check_document(
    document: dict[str, Any], file: str, package: str | None, policy: Policy
) -> tuple[list[Problem], tuple[Task, ...]]:
    """Every problem of ``document`` (schema and rules), and its resolved tasks (empty when it has
    none the rules could resolve)."""
    schema = schema_problems(document, file)
    tolerant = bool(schema)  # the schema refused it: a rule may meet a malformed value, and skips it
    tasks: tuple[Task, ...] = ()
    found: list[Problem] = []
    try:  # the rules run on a document the schema refused too: every problem in one pass
        tasks = resolve_tasks(document)
        _check_rules(document, tasks, file, package, policy, found, tolerant=tolerant)
    except _MALFORMED:
        if not tolerant:  # the schema passed it: a rule that crashes is a bug
            raise
    # Each problem once: a single value the schema refused (``4GB`` for a quantity, a missing key) is
    # not judged again by a rule. An object or a list keeps both: the rules' problems there are others.
    refused = {p.pointer for p in schema if _single_value(document, p.pointer)}
    return schema + [p for p in found if p.pointer not in refused], tasks


def _single_value(document: Any, pointer: str) -> bool:
    """Whether ``pointer`` names a value that is no object or list, or nothing at all."""
    node = document
    for part in pointer.split("/")[1:]:
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return True
    return not isinstance(node, (dict, list))


# What a rule meets in a document the schema refused (a string where a number goes ...).
_MALFORMED = (KeyError, IndexError, TypeError, AttributeError, ValueError)


def _check_rules(
    document: dict[str, Any],
    tasks: tuple[Task, ...],
    file: str,
    package: str | None,
    policy: Policy,
    problems: list[Problem],
    *,
    tolerant: bool,
) -> None:
    """Append every rule's problems to ``problems``. ``tolerant``: a task whose malformed values stop
    its checks loses only its remaining checks; every other task and the DAG-level rules still run."""
    own = document["package"]
    if package is not None and own != package:
        problems.append(Problem(file, "/package", f"manifest belongs to package {own!r}, not {package!r}"))
    reason = naming.check_dag_id(document["dag_id"], own)
    if reason:
        problems.append(Problem(file, "/dag_id", reason))
    # Both become pod label values (dagfactory-s3/package, dagfactory-s3/dag-id); a dag_id refused
    # above is not judged again.
    for key in ("package",) if reason else ("package", "dag_id"):
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
    cron, where = schedule, "/schedule"
    if isinstance(schedule, dict) and isinstance(schedule.get("cron"), str):
        cron, where = schedule["cron"], "/schedule/cron"
        reason = check_data_intervals(cron) if schedule.get("data_intervals") is True else None
        if reason:  # the one problem: the cron check would only add "unknown preset" for @continuous
            problems.append(Problem(file, "/schedule/data_intervals", reason))
            cron = None
    if isinstance(cron, str):
        reason = check_cron(cron)
        if reason:
            problems.append(Problem(file, where, reason))
    elif isinstance(schedule, dict) and isinstance(schedule.get("every"), str):
        _check_duration(schedule["every"], "/schedule/every", file, problems)
    elif isinstance(schedule, dict) and "assets" in schedule:
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
    for key, when in dates.items():
        if when.year < 1970:
            problems.append(
                Problem(
                    file, f"/{key}", f"{key} is before 1970-01-01: Airflow's timetables never schedule it"
                )
            )
    if "start_date" in dates and "end_date" in dates and dates["end_date"] <= dates["start_date"]:
        problems.append(Problem(file, "/end_date", "end_date must be after start_date"))
    if "dagrun_timeout" in document:
        _check_duration(document["dagrun_timeout"], "/dagrun_timeout", file, problems)
    for name, param in document.get("params", {}).items():
        # Airflow refuses params without defaults on time-based schedules only (an asset-triggered
        # timetable "cannot be scheduled").
        timed = isinstance(schedule, str) or (isinstance(schedule, dict) and "assets" not in schedule)
        _check_param(name, param, timed, file, problems)
    notify = [(f"/alerts/{k}", v) for k, v in document.get("alerts", {}).items()]
    if "deadline" in document:
        notify.append(("/deadline/notify", document["deadline"]["notify"]))
        _check_duration(document["deadline"]["after"], "/deadline/after", file, problems)
    problems.extend(notifier_problems(notify, file, policy, document["package"]))
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
        try:
            _check_fields(raw, task.where, file, problems)
            id_pointer = f"{task.where}/{'name' if 'job' in document else 'task_id'}"
            if task.task_id in seen:
                problems.append(
                    Problem(
                        file, id_pointer, f"task_id {task.task_id!r} is already used at {seen[task.task_id]}"
                    )
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
                        file,
                        f"{task.where}/group",
                        f"group {raw['group']!r} is also a task_id; use another name",
                    )
                )
            for key in ("labels", "annotations"):
                reserved = [k for k in task.fields.get(key, {}) if k.startswith("dagfactory-s3/")]
                for k in reserved:
                    problems.append(
                        Problem(
                            file,
                            f"{task.where}/{key}{to_pointer([k])}",
                            "the dagfactory-s3/ prefix is reserved",
                        )
                    )
        except _MALFORMED:
            if not tolerant:
                raise

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
    problems += template_problems(document, template_scope(document, seen_ids, policy), file)


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


# pod_override keys the manifest models (pod_fields.FIELDS): the manifest field wins, so repeating one
# here is refused.
_MODELLED_SPEC = {key: f.field for f in FIELDS for key in f.spec}
_MODELLED_CONTAINER = {key: f.field for f in FIELDS for key in f.container}
_OWNED_SPEC = {
    "containers": None,
    "restartPolicy": "the operator runs every pod with restartPolicy Never",
    "nodeName": "pods are placed by the scheduler (use node_selector or affinity)",
}


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
    for key in HOST_NAMESPACES:
        if key in spec and not isinstance(spec[key], bool):
            issues.append((f"{pointer}/spec/{key}", "must be true or false"))
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
    own = own_fields(document, task)

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
    extra = override_containers(fields)[1:]
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
    problems.extend(policy_problems(fields, source, file, policy))
    alerts = fields.get("alerts", {})
    problems.extend(
        notifier_problems(
            [(source("alerts", k), v) for k, v in alerts.items()], file, policy, document["package"]
        )
    )
    problems.extend(grant_problems(document["package"], fields, source, file, policy))
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
        except (re.error, RecursionError, OverflowError) as exc:
            problems.append(Problem(file, f"{where}/pattern", f"not a valid regular expression: {exc}"))
            return
        why = backtracking(rules["pattern"])
        if (
            why
        ):  # refused before anything evaluates it: validate, the sidecar, the bundle, Airflow's trigger form
            problems.append(
                Problem(
                    file,
                    f"{where}/pattern",
                    f"pattern can take unbounded time in Python's regular expressions, which Airflow checks "
                    f"every trigger's value with: {why}",
                )
            )
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
