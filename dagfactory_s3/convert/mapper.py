"""A loaded DAG's description (plain JSON from :mod:`.load`) -> a job manifest, or refusals. No Airflow.

Everything a KubernetesPodOperator job carries is converted or refused, never dropped: the pod is read
from the pod the operator itself builds (so ``pod_template_file``, ``full_pod_spec``, ``secrets`` and
old-style arguments are covered by what they produce), the task's settings from the attributes that
differ from a default operator's. A field the manifest cannot express is a refusal naming it; the
manifest must pass the project's own validation (:func:`dagfactory_s3.manifest.parse`, what
``validate`` runs). EmptyOperator joins are contracted (their edges bridged) when that keeps the
trigger semantics.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, time
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import orjson

from dagfactory_s3 import manifest as manifests
from dagfactory_s3.errors import ManifestError
from dagfactory_s3.manifest.pod_fields import FIELDS
from dagfactory_s3.platform import DEFAULT as DEFAULT_POLICY
from dagfactory_s3.platform import Policy
from dagfactory_s3.schema import schema

__all__ = ["Result", "contracted_upstream", "convert", "duration", "normalize_pod"]

KPO = "airflow.providers.cncf.kubernetes.operators.pod.KubernetesPodOperator"
EMPTY = "airflow.providers.standard.operators.empty.EmptyOperator"
XCOM_SIDECAR = "airflow-xcom-sidecar"
XCOM_VOLUME = "xcom"

# Operator attributes whose effect is the pod the operator builds: read from that pod.
POD_ATTRS = frozenset(
    {
        "image",
        "cmds",
        "arguments",
        "ports",
        "volume_mounts",
        "volumes",
        "env_vars",
        "env_from",
        "secrets",
        "labels",
        "annotations",
        "container_resources",
        "affinity",
        "node_selector",
        "image_pull_secrets",
        "service_account_name",
        "automount_service_account_token",
        "hostnetwork",
        "host_aliases",
        "tolerations",
        "security_context",
        "container_security_context",
        "dnspolicy",
        "dns_config",
        "hostname",
        "subdomain",
        "schedulername",
        "full_pod_spec",
        "init_containers",
        "pod_template_file",
        "pod_template_dict",
        "priority_class_name",
        "termination_grace_period",
        "configmaps",
        "namespace",
        "image_pull_policy",
        "termination_message_policy",
        "active_deadline_seconds",
        "runtime_class_name",
    }
)
# Operator argument -> manifest field, when the value is passed as it is: the factory's own table
# (dagfactory_s3.manifest.pod_fields) read backwards, but for what the pod already says.
_PLAIN = {f.kwarg: f.field for f in FIELDS if f.plain and f.kwarg not in POD_ATTRS} | {
    "do_xcom_push": "do_xcom_push"
}
_DURATIONS = {
    "retry_delay": "retry_delay",
    "max_retry_delay": "max_retry_delay",
    "execution_timeout": "execution_timeout",
}
# Which cluster and credentials the operator talks to: the platform's choice in a manifest (the Airflow
# deployment's Kubernetes connection), never a job's. Converted with a note, not refused.
PLATFORM_ATTRS = ("kubernetes_conn_id", "in_cluster", "config_file", "cluster_context")
# Set by the operator itself from other arguments, or by Airflow per task: nothing to convert.
_DERIVED = frozenset(
    {"_is_delete_operator_pod", "reattach_on_restart", "durable", "wait_for_past_depends_before_skipping"}
)
_CALLBACKS = (
    "on_failure_callback",
    "on_success_callback",
    "on_retry_callback",
    "on_execute_callback",
    "on_skipped_callback",
)
# Pod labels the operator adds to every pod (the factory's operator adds them too).
OPERATOR_LABELS = ("airflow_version", "kubernetes_pod_operator", "airflow_kpo_in_cluster")
_DAG_FIELDS = {
    "description",
    "doc_md",
    "tags",
    "owner_links",
    "catchup",
    "max_active_runs",
    "max_active_tasks",
    "dagrun_timeout",
    "is_paused_upon_creation",
}
# A downstream task whose trigger rule gives the same answer over an EmptyOperator join (all_success)
# as over the join's own upstream tasks.
_BRIDGEABLE = ("all_success", "all_done", "none_failed")


class Result(NamedTuple):
    manifest: dict[str, Any] | None
    refusals: list[str]
    notes: list[str]
    renames: dict[str, str]  # original task id -> manifest task id (the ones kept)


# -- small converters --------------------------------------------------------------------------


class Refused(Exception):
    """One reason this DAG cannot be expressed."""


def duration(seconds: Any, what: str) -> str:
    """``5400`` -> ``1h30m``."""
    if isinstance(seconds, dict):
        seconds = seconds.get("seconds")
    if not isinstance(seconds, int | float) or seconds <= 0 or seconds != int(seconds):
        raise Refused(f"{what} {seconds!r}: the manifest takes whole seconds greater than zero")
    rest = int(seconds)
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out


def _snake(value: Any) -> Any:
    """API (camelCase) keys -> the manifest's snake_case, recursively."""
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): _snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == []


def _pruned(value: Any) -> Any:
    """Without empty values: Kubernetes treats a field set to ``{}``, ``[]`` or null as unset."""
    if isinstance(value, dict):
        out = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if not _empty(v)}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _quantities(resources: dict[str, Any]) -> dict[str, Any]:
    return {
        kind: {k: str(v) for k, v in (values or {}).items()} for kind, values in resources.items() if values
    }


def normalize_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod as the fidelity check compares it (and the mapper reads it): empty values dropped,
    quantities as strings, the pod name dropped (generated per run), and the volumes the provider
    names ``secretvol<uuid4>`` per build (a ``Secret('volume', ...)``) named ``secretvol-<secret>``."""
    pod = _pruned(orjson.loads(orjson.dumps(pod)))
    pod.get("metadata", {}).pop("name", None)
    spec = pod.get("spec", {})
    renames: dict[str, str] = {}
    for volume in spec.get("volumes", []):
        name = volume.get("name", "")
        if re.fullmatch(r"secretvol[0-9a-f-]{36}", name) and "secret" in volume:
            base = re.sub(r"[^a-z0-9-]", "-", f"secretvol-{volume['secret'].get('secretName', '')}".lower())
            new = base[:60].strip("-")
            n = 1
            while new in renames.values():
                n += 1
                new = f"{base[:57].strip('-')}-{n}"
            renames[name] = new
            volume["name"] = new
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        for mount in container.get("volumeMounts", []):
            mount["name"] = renames.get(mount.get("name"), mount.get("name"))
        if "resources" in container:
            container["resources"] = _quantities(container["resources"])
    return pod


# -- the graph ---------------------------------------------------------------------------------


def contracted_upstream(tasks: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each non-empty task's upstream tasks, with EmptyOperator joins contracted (an empty task's
    own upstream tasks take its place, transitively)."""
    by_id = {t["task_id"]: t for t in tasks}

    def through(task_id: str, seen: frozenset[str]) -> set[str]:
        task = by_id[task_id]
        if task.get("operator") != EMPTY:
            return {task_id}
        if task_id in seen:
            return set()
        out: set[str] = set()
        for up in task["upstream"]:
            out |= through(up, seen | {task_id})
        return out

    return {
        t["task_id"]: sorted(set().union(*(through(u, frozenset()) for u in t["upstream"])))
        for t in tasks
        if t.get("operator") != EMPTY
    }


def _empty_problems(tasks: list[dict[str, Any]]) -> list[str]:
    """Why an EmptyOperator cannot be contracted without changing when its downstream tasks run."""
    out = []
    downstream: dict[str, list[dict[str, Any]]] = {}
    for t in tasks:
        for up in t["upstream"]:
            downstream.setdefault(up, []).append(t)
    for t in tasks:
        if t.get("operator") != EMPTY:
            continue
        # Airflow never runs an EmptyOperator (the scheduler marks it done): only its trigger rule,
        # its callbacks and the asset events of its outlets have an effect.
        settings = {k: v for k, v in t.get("set", {}).items() if k in (*_CALLBACKS, "outlets") and v}
        rule = t["airflow"].get("trigger_rule")
        if settings:
            out.append(f"EmptyOperator task {t['task_id']!r}: sets {', '.join(sorted(settings))}")
        elif t["upstream"] and rule != "all_success":
            out.append(
                f"EmptyOperator task {t['task_id']!r}: trigger_rule {rule} joins its upstream tasks "
                "in a way a dependency cannot express"
            )
        elif t["upstream"]:
            for d in downstream.get(t["task_id"], []):
                if d["airflow"].get("trigger_rule") not in _BRIDGEABLE:
                    out.append(
                        f"EmptyOperator task {t['task_id']!r}: downstream task {d['task_id']!r} has "
                        f"trigger_rule {d['airflow'].get('trigger_rule')}, which would see the join's "
                        "upstream tasks instead of the join"
                    )
    return out


def _task_ids(tasks: list[dict[str, Any]]) -> tuple[dict[str, str], list[str]]:
    """Original id -> manifest task id: a group prefix dropped (the factory's groups do not prefix),
    then lowercase letters, digits, ``_`` and ``-``."""
    renames: dict[str, str] = {}
    problems = []
    for t in tasks:
        if t.get("operator") == EMPTY:
            continue
        task_id = t["task_id"]
        groups = t.get("groups", [])
        if groups and groups[-1]["prefix"] and task_id.startswith(groups[-1]["id"] + "."):
            task_id = task_id[len(groups[-1]["id"]) + 1 :]
        new = re.sub(r"[^a-z0-9_-]", "_", task_id.lower()).strip("_-")[:63].rstrip("_-")
        if not new or not new[0].isalpha():
            new = f"t_{new}"[:63].rstrip("_-")
        if new in renames.values():
            problems.append(f"task {t['task_id']!r}: its manifest task id {new!r} is taken by another task")
        renames[t["task_id"]] = new
    return renames, problems


def _dag_id(package: str, dag_id: str) -> str:
    new = re.sub(r"_+", "_", re.sub(r"[^a-z0-9_]", "_", dag_id.lower())).strip("_")
    if not new.startswith(f"{package}_"):
        new = f"{package}_{new}"
    return new[:63].rstrip("_")


# -- DAG level ---------------------------------------------------------------------------------

_NULL = "airflow.timetables.simple.NullTimetable"
_ONCE = "airflow.timetables.simple.OnceTimetable"
_CRON_TRIGGER = "airflow.timetables.trigger.CronTriggerTimetable"
_DELTA_TRIGGER = "airflow.timetables.trigger.DeltaTriggerTimetable"
_CRON_INTERVAL = "airflow.timetables.interval.CronDataIntervalTimetable"
_DELTA_INTERVAL = "airflow.timetables.interval.DeltaDataIntervalTimetable"
_ASSETS = "airflow.timetables.simple.AssetTriggeredTimetable"


def _delta(value: Any) -> Any:
    return value.get("delta", value) if isinstance(value, dict) else value


def schedule(timetable: dict[str, Any], zone: str) -> Any:
    """The manifest ``schedule`` of a timetable, keeping its semantics (trigger or data intervals)."""
    kind, value = timetable.get("type"), timetable.get("value") or {}
    if "error" in timetable:
        raise Refused(f"custom timetable {kind} ({timetable['error']})")
    if kind in (_CRON_TRIGGER, _CRON_INTERVAL) and value.get("timezone", "UTC") != zone:
        raise Refused(f"the schedule's time zone {value.get('timezone')} is not the DAG's ({zone})")
    if kind == _NULL:
        return None
    if kind == _ONCE:
        return "@once"
    if kind == _CRON_TRIGGER:
        if value.get("interval") or value.get("run_immediately"):
            raise Refused("CronTriggerTimetable with interval or run_immediately: custom timetable")
        return value["expression"]
    if kind == _CRON_INTERVAL:
        return {"cron": value["expression"], "data_intervals": True}
    if kind == _DELTA_INTERVAL:
        return {"every": duration(_delta(value), "schedule interval"), "data_intervals": True}
    if kind == _DELTA_TRIGGER:
        if value.get("interval"):
            raise Refused("DeltaTriggerTimetable with interval: custom timetable")
        return {"every": duration(_delta(value), "schedule interval")}
    if kind == _ASSETS:
        condition = value.get("asset_condition") or {}
        assets = condition.get("objects") or []
        plain = all(
            a.get("__type") == "asset"
            and a.get("name") == a.get("uri")
            and a.get("group") == "asset"
            and not a.get("extra")
            for a in assets
        )
        if condition.get("__type") not in ("asset_all", "asset_any") or not assets or not plain:
            raise Refused(
                "asset schedule other than all or any of assets named by their URI: write it by hand"
            )
        return {"assets": [a["uri"] for a in assets], "require": condition["__type"].removeprefix("asset_")}
    raise Refused(f"custom timetable {kind}")


def _instant(value: str | None, zone: str) -> str | None:
    """An Airflow datetime (ISO, in UTC) as the manifest writes it: in the DAG's time zone, a date alone
    at its midnight, else the instant with its offset."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.microsecond:
        raise Refused(
            f"start/end date {value} has fractions of a second: a date computed at parse time (now())? "
            "write an absolute date in the file"
        )
    local = moment.astimezone(ZoneInfo(zone))
    if local.time() == time(0):
        return local.date().isoformat()
    return moment.isoformat().replace("+00:00", "Z")


def _params(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, spec in params.items():
        item: dict[str, Any] = dict(spec.get("schema") or {})
        item.pop("description", None)
        if spec.get("description"):
            item["description"] = spec["description"]
        value = spec.get("value")
        if value != {"unset": True}:
            item["default"] = value
        out[name] = item
    return out


# -- the pod -----------------------------------------------------------------------------------


def _env(items: list[dict[str, Any]], where: str) -> dict[str, Any]:
    env: dict[str, Any] = {}
    for item in items:
        name = item["name"]
        if name in env:
            raise Refused(f"{where}: environment variable {name!r} is set twice")
        source = item.get("valueFrom")
        if source is None:
            value = item.get("value")
            if not isinstance(value, str):
                raise Refused(f"{where}: environment variable {name!r} is {value!r}, not a string")
            env[name] = value
        elif set(source) == {"secretKeyRef"}:
            env[name] = {"secret": source["secretKeyRef"]}
        elif set(source) == {"configMapKeyRef"}:
            env[name] = {"config_map": source["configMapKeyRef"]}
        else:
            raise Refused(f"{where}: environment variable {name!r} from {', '.join(source)}: not expressible")
    return env


def _env_from(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        entry: dict[str, Any] = {}
        for ref, key in (("secretRef", "secret"), ("configMapRef", "config_map")):
            if ref in item:
                entry[key] = item[ref]["name"]
                if "optional" in item[ref]:
                    entry["optional"] = item[ref]["optional"]
        if "prefix" in item:
            entry["prefix"] = item["prefix"]
        out.append(entry)
    return out


def _volume(volume: dict[str, Any]) -> dict[str, Any]:
    if "ephemeral" in volume:
        spec = volume["ephemeral"].get("volumeClaimTemplate", {}).get("spec", {})
        out = {
            "access_modes": spec.get("accessModes"),
            "storage_class_name": spec.get("storageClassName"),
            "storage": spec.get("resources", {}).get("requests", {}).get("storage"),
        }
        return {"name": volume["name"], "ephemeral": {k: v for k, v in out.items() if v is not None}}
    return _snake(volume)


_CONTAINER = {  # API key of the task's container -> manifest field
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
_SPEC = {  # API key of the pod spec -> manifest field
    "affinity": "affinity",
    "nodeSelector": "node_selector",
    "tolerations": "tolerations",
    "serviceAccountName": "service_account",
    "securityContext": "pod_security_context",
    "initContainers": "init_containers",
    "imagePullSecrets": "image_pull_secrets",
    "volumes": "volumes",
    "priorityClassName": "priority_class_name",
    "automountServiceAccountToken": "automount_service_account_token",
    "hostAliases": "host_aliases",
    "terminationGracePeriodSeconds": "termination_grace_period",
}


def _container_field(key: str, value: Any, where: str) -> Any:
    if key == "env":
        return _env(value, where)
    if key == "envFrom":
        return _env_from(value)
    if key == "resources":
        return value
    if key in ("volumeMounts", "securityContext"):
        return _snake(value)
    return value


def _init_container(container: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    where = f"init container {container.get('name')!r}"
    for key, value in container.items():
        if key == "terminationMessagePolicy" and value == "File":
            continue
        if key == "name":
            out["name"] = value
        elif key in _CONTAINER and key not in ("envFrom", "imagePullPolicy"):
            out[_CONTAINER[key]] = _container_field(key, value, where)
        else:
            raise Refused(
                f"{where}: field {key!r} is not expressible (init containers take {', '.join(_CONTAINER)})"
            )
    return out


def _pod_fields(pod: dict[str, Any], do_xcom_push: bool) -> dict[str, Any]:
    """Manifest task fields from the pod the operator builds, the rest as ``pod_override``."""
    fields: dict[str, Any] = {}
    override: dict[str, Any] = {}
    metadata = pod.get("metadata", {})
    for key, value in metadata.items():
        if key == "labels":
            labels = {k: v for k, v in value.items() if k not in OPERATOR_LABELS}
            if labels:
                fields["labels"] = labels
        elif key == "annotations":
            fields["annotations"] = value
        elif key == "namespace":
            fields["namespace"] = value
        else:
            raise Refused(f"pod metadata {key!r} is not expressible")
    spec = dict(pod.get("spec", {}))
    containers = spec.pop("containers", [])
    base, others = dict(containers[0]), containers[1:]
    if do_xcom_push:  # the factory's operator adds the sidecar, its volume and its mount too
        others = [c for c in others if c.get("name") != XCOM_SIDECAR]
        volumes = [v for v in spec.pop("volumes", []) if v.get("name") != XCOM_VOLUME]
        mounts = [m for m in base.pop("volumeMounts", []) if m.get("name") != XCOM_VOLUME]
        if volumes:
            spec["volumes"] = volumes
        if mounts:
            base["volumeMounts"] = mounts
    rest = {}
    for key, value in base.items():
        if key == "name" or (key == "terminationMessagePolicy" and value == "File"):
            continue
        if key in _CONTAINER:
            fields[_CONTAINER[key]] = _container_field(key, value, "container")
        else:
            rest[key] = value
    if spec.get("restartPolicy") == "Never":
        spec.pop("restartPolicy")
    if spec.get("hostNetwork") is False:
        spec.pop("hostNetwork")
    for key, value in spec.items():
        if key not in _SPEC:
            override[key] = value
        elif key == "initContainers":
            fields["init_containers"] = [_init_container(c) for c in value]
        elif key == "imagePullSecrets":
            fields["image_pull_secrets"] = [s["name"] for s in value]
        elif key == "volumes":
            fields["volumes"] = [_volume(v) for v in value]
        elif key == "terminationGracePeriodSeconds":
            fields["termination_grace_period"] = duration(value, "termination grace period")
        elif key in ("tolerations", "securityContext", "hostAliases"):
            fields[_SPEC[key]] = _snake(value)
        else:
            fields[_SPEC[key]] = value
    if rest or others:
        override["containers"] = [{"name": base.get("name", "base"), **rest}, *others]
    if override:
        fields["pod_override"] = {"spec": override}
    return fields


# -- tasks -------------------------------------------------------------------------------------


def _expand(task: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in task["expand"].items():
        if key == "arguments" and isinstance(value, dict) and "from_task" in value:
            if value.get("key") not in (None, "return_value") or value["from_task"] not in renames:
                raise Refused(
                    f"expand over {key} from {value['from_task']!r} ({value.get('key')}): not expressible"
                )
            out["arguments"] = {"from_task": renames[value["from_task"]]}
        elif key == "arguments" and isinstance(value, list):
            out["arguments"] = value
        elif key == "env_vars" and isinstance(value, list) and all(isinstance(v, dict) for v in value):
            out["env"] = value
        else:
            raise Refused(f"expand over {key}: the manifest maps over arguments and env only")
    return out


def _task(
    task: dict[str, Any], renames: dict[str, str], upstream: list[str], dag: dict[str, Any], notes: list[str]
) -> dict[str, Any]:
    if task.get("error"):
        raise Refused(task["error"])
    settings = task.get("set", {})
    for key in _CALLBACKS:
        if settings.get(key):
            raise Refused(f"{key} is Python: name a platform notifier instead (alerts)")
    if task["airflow"].get("email"):  # set only when Airflow mails it (email_on_failure/retry)
        raise Refused("email on failure/retry is not expressible: name a platform notifier instead (alerts)")
    fields: dict[str, Any] = {"task_id": renames[task["task_id"]]}
    for key in PLATFORM_ATTRS:
        if key in settings:
            notes.append(
                f"task {task['task_id']!r}: {key}={settings[key]!r} not kept: the platform's Kubernetes connection decides"
            )
    handled = set(POD_ATTRS) | set(_PLAIN) | set(_DURATIONS) | _DERIVED | set(PLATFORM_ATTRS) | {"email"}
    handled |= {
        "retry_exponential_backoff",
        "startup_timeout_seconds",
        "outlets",
        "email_on_failure",
        "email_on_retry",
    }
    kpo = task.get("kpo_fields", {})
    if kpo.get("schedule_timeout_seconds") == kpo.get("startup_timeout_seconds"):
        handled.add("schedule_timeout_seconds")  # the operator's own default: the startup timeout
    unknown = sorted(k for k in settings if k not in handled and k not in _CALLBACKS)
    if unknown:
        shown = ", ".join(f"{k}={settings[k]!r}"[:120] for k in unknown)
        raise Refused(f"KubernetesPodOperator field(s) with no manifest equivalent: {shown}")
    if task["params"] and set(task["params"]) != set(dag["params"]):
        raise Refused("task-level params: the manifest has DAG params only")
    if task.get("start_date") not in (None, dag["start_date"]) or task.get("end_date") not in (
        None,
        dag["end_date"],
    ):
        raise Refused("a task start_date/end_date other than the DAG's")
    if task["airflow"].get("inlets"):
        raise Refused("inlets: the manifest has outlets only")
    groups = task.get("groups", [])
    if len(groups) > 1:
        raise Refused(f"nested task group {groups[-1]['id']!r}: the manifest has one level of groups")
    if groups:
        if groups[0]["tooltip"]:
            raise Refused(f"task group {groups[0]['id']!r} has a tooltip: not expressible")
        fields["group"] = groups[0]["id"]
    if upstream:
        fields["depends_on"] = [renames[u] for u in upstream]
    values = {**task["airflow"], **task.get("kpo_fields", {})}
    for key, field in _PLAIN.items():
        if key in settings:
            fields[field] = values.get(key)
    for key, field in _DURATIONS.items():
        if key in settings and values.get(key) is not None:
            fields[field] = duration(values[key], key)
    if "startup_timeout_seconds" in settings:
        fields["startup_timeout"] = duration(values["startup_timeout_seconds"], "startup_timeout_seconds")
    if settings.get("retry_exponential_backoff"):
        fields["retry_exponential_backoff"] = True
    reattach = kpo.get("durable") if kpo.get("durable") is not None else kpo.get("reattach_on_restart")
    if reattach is False:
        fields["reattach_on_restart"] = False
    if kpo.get("random_name_suffix") is False:
        raise Refused("random_name_suffix=False: the factory names every pod <dag_id>-<task_id>-<suffix>")
    outlets = task["airflow"].get("outlets") or []
    if outlets:
        if not all(isinstance(o, dict) and "asset" in o for o in outlets):
            raise Refused("outlets other than assets")
        fields["outlets"] = [o["asset"] for o in outlets]
    fields.update(_pod_fields(normalize_pod(task["pod"]), bool(values.get("do_xcom_push"))))
    image = fields.get("image", "")
    if image and "@" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
        fields["allow_mutable_image"] = True  # what the original ran
        notes.append(
            f"task {task['task_id']!r}: image {image!r} is not pinned: allow_mutable_image set; pin it"
        )
    if "expand" in task:
        fields["expand"] = _expand(task, renames)
        if "arguments" in fields["expand"]:
            fields.pop("arguments", None)
    return fields


# -- the DAG -----------------------------------------------------------------------------------


def _refuse(dag_id: str, task_id: str | None, reason: str) -> str:
    return f"DAG {dag_id!r} task {task_id!r}: {reason}" if task_id else f"DAG {dag_id!r}: {reason}"


def _short(operator: str) -> str:
    return operator.rsplit(".", 1)[-1]


def convert(
    dag: dict[str, Any],
    package: str,
    *,
    policy: Policy = DEFAULT_POLICY,
    untranslatable: Sequence[str] = (),
) -> Result:
    """The manifest of one described DAG, or every reason it cannot be one."""
    dag_id = dag["dag_id"]
    refusals = [_refuse(dag_id, None, reason) for reason in untranslatable]
    if dag.get("error"):
        return Result(None, [*refusals, _refuse(dag_id, None, dag["error"])], [], {})
    notes: list[str] = []
    new_id = _dag_id(package, dag_id)
    if new_id != dag_id:
        notes.append(f"DAG {dag_id!r} -> {new_id!r} (<package>_<name>)")
    tasks = dag["tasks"]
    for t in tasks:
        if not t.get("kpo") and t.get("operator") != EMPTY:
            refusals.append(
                _refuse(dag_id, None, f"{_short(t['operator'])} task {t['task_id']!r}: not a pod job")
            )
        elif t.get("operator") == EMPTY and "expand" in t:
            refusals.append(_refuse(dag_id, t["task_id"], "a mapped EmptyOperator is not expressible"))
    refusals += [_refuse(dag_id, None, p) for p in _empty_problems(tasks)]
    renames, problems = _task_ids(tasks)
    refusals += [_refuse(dag_id, None, p) for p in problems]
    for old, new in renames.items():
        if old != new:
            notes.append(f"task {old!r} -> {new!r}")
    document: dict[str, Any] = {
        "$schema": schema()["$id"],
        "schema_version": 1,
        "package": package,
        "dag_id": new_id,
    }
    zone = dag.get("timezone") or "UTC"
    try:
        try:
            ZoneInfo(zone)
        except (ValueError, KeyError):
            raise Refused(f"time zone {zone!r} is not an IANA time zone name") from None
        settings = dag.get("set", {})
        for key in ("on_failure_callback", "on_success_callback", "sla_miss_callback"):
            if settings.get(key):
                raise Refused(f"{key} is Python: name a platform notifier instead (alerts)")
        unknown = sorted(k for k in settings if k not in _DAG_FIELDS)
        if unknown:
            raise Refused(f"DAG field(s) with no manifest equivalent: {', '.join(unknown)}")
        if dag.get("description"):
            document["description"] = dag["description"]
        if dag.get("doc_md"):
            document["doc_md"] = dag["doc_md"]
        document["schedule"] = schedule(dag["timetable"], zone)
        if dag.get("start_date") is None:
            raise Refused("no start_date: a manifest needs an absolute one")
        document["start_date"] = _instant(dag["start_date"], zone)
        if dag.get("end_date"):
            document["end_date"] = _instant(dag["end_date"], zone)
        if zone != "UTC":
            document["timezone"] = zone
        if dag.get("catchup"):
            document["catchup"] = True
        document["max_active_runs"] = dag["max_active_runs"]
        if "max_active_tasks" in settings:
            document["max_active_tasks"] = dag["max_active_tasks"]
        if dag.get("dagrun_timeout"):
            document["dagrun_timeout"] = duration(dag["dagrun_timeout"], "dagrun_timeout")
        if dag.get("tags"):
            document["tags"] = sorted(dag["tags"])
        owners = sorted({t["owner"] for t in tasks if t.get("kpo") and t.get("owner")})
        if len(owners) > 1:
            raise Refused(f"tasks have different owners ({', '.join(owners)}): the manifest has one")
        if owners and owners[0] != "airflow":
            document["owner"] = owners[0]
        if dag.get("is_paused_upon_creation") is not None:
            document["paused_on_create"] = dag["is_paused_upon_creation"]
        if dag.get("params"):
            document["params"] = _params(dag["params"])
        if dag.get("owner_links"):
            document["owner_links"] = dag["owner_links"]
    except Refused as exc:
        refusals.append(_refuse(dag_id, None, str(exc)))
    upstream = contracted_upstream(tasks)
    out_tasks = []
    for t in tasks:
        if not t.get("kpo"):
            continue
        try:
            out_tasks.append(_task(t, renames, upstream[t["task_id"]], dag, notes))
        except Refused as exc:
            refusals.append(_refuse(dag_id, t["task_id"], str(exc)))
    if not out_tasks and not refusals:
        refusals.append(_refuse(dag_id, None, "no KubernetesPodOperator task"))
    refusals += _template_mentions(dag_id, out_tasks, renames)
    if refusals:
        return Result(None, refusals, notes, renames)
    document["tasks"] = out_tasks
    try:
        manifests.parse(
            manifests.dumps(document), file=f"{new_id}.json", package=package, policy=policy, source=True
        )
    except ManifestError as exc:
        by_index = {f"/tasks/{i}": t["task_id"] for i, t in enumerate(out_tasks)}
        back = {v: k for k, v in renames.items()}
        for problem in exc.problems():
            head = "/".join(problem.pointer.split("/")[:3])
            task_id = back.get(by_index.get(head, ""))
            refusals.append(_refuse(dag_id, task_id, f"manifest {problem.pointer or '/'}: {problem.message}"))
        return Result(None, refusals, notes, renames)
    return Result(document, [], notes, renames)


def _template_mentions(dag_id: str, tasks: list[dict[str, Any]], renames: dict[str, str]) -> list[str]:
    """A renamed task id that a string still names (an ``xcom_pull(task_ids=...)``) would break."""
    text = orjson.dumps(tasks).decode()
    return [
        _refuse(dag_id, old, f"task id becomes {new!r}, but a template names {old!r}")
        for old, new in renames.items()
        if old != new and (f"'{old}'" in text or f'\\"{old}\\"' in text)
    ]
