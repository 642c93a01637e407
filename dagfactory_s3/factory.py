"""The one adapter from a checked manifest to Airflow objects. The only module that imports Airflow.

Deterministic by construction: the DAG depends only on the manifest bytes and this library's
version — no clock, no randomness, no environment, stable ordering — so the same manifest gives the
same serialized DAG hash in every process and on every machine.
"""

from __future__ import annotations

import importlib
from contextlib import nullcontext
from typing import Any

try:
    import pendulum
    from airflow.providers.cncf.kubernetes import version_compat as _provider
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk import DAG, Asset, AssetAll, AssetAny, Param, TaskGroup
    from kubernetes.client import ApiClient
    from kubernetes.client import models as k8s

    try:  # where the installed minor's DAG takes them from: the SDK's own from 3.2, the core's before
        from airflow.sdk import (
            CronDataIntervalTimetable,
            CronTriggerTimetable,
            DeltaDataIntervalTimetable,
            DeltaTriggerTimetable,
        )
    except ImportError:
        from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable
        from airflow.timetables.trigger import CronTriggerTimetable, DeltaTriggerTimetable
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "dagfactory_s3.factory needs Airflow: install 'dagfactory-s3[airflow]' in the Airflow image"
    ) from exc

from dagfactory_s3 import naming, platform, templates
from dagfactory_s3.errors import ManifestError, Problem, TemplateError
from dagfactory_s3.manifest import Manifest, Task
from dagfactory_s3.manifest.pod_fields import FIELDS
from dagfactory_s3.platform import DEFAULT as DEFAULT_POLICY
from dagfactory_s3.platform import NOTIFIER_KINDS, Policy
from dagfactory_s3.schedule import parse_duration, parse_instant
from dagfactory_s3.serve import policy as policies
from dagfactory_s3.stub import API_VERSION

__all__ = ["ManifestPodOperator", "build_dag", "pod_labels", "render_pods"]

MANAGED_BY = "dagfactory-s3"
PACKAGE_LABEL = "dagfactory-s3/package"


class ManifestPodOperator(KubernetesPodOperator):
    """A KubernetesPodOperator whose templates are the manifest's checked language.

    Before Airflow renders a task's templated fields (in the worker, for a mapped task's every
    instance too), every string it is about to render is checked again by
    :func:`dagfactory_s3.templates.problems`, the code ``validate`` and the parse ran, with the scope
    the platform policy grants the task's package (the one the DAG was parsed under: the image's
    override, else the copy served beside its stub): a DAG that reached a worker without
    passing the parse's rules still cannot call out of the language. The package is read from the
    label the factory sets (a manifest may not set ``dagfactory-s3/`` labels).
    """

    def _do_render_template_fields(
        self, parent: Any, template_fields: Any, context: Any, jinja_env: Any, seen_oids: set[int]
    ) -> None:
        if parent is self:
            scope = self._template_scope()
            for field in template_fields:
                for pointer, text in templates.strings(_plain(getattr(self, field, None)), f"/{field}"):
                    reasons = templates.problems(text, scope)
                    if reasons:
                        raise TemplateError(f"task {self.task_id!r}: {pointer}: {reasons[0]}")
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)

    def _template_scope(self) -> templates.Scope:
        labels = self.labels if isinstance(self.labels, dict) else {}
        package = str(labels.get(PACKAGE_LABEL, ""))
        dag = self.dag if self.has_dag() else None
        # The policy the parse used: the copy served beside the stub this worker parsed the DAG from.
        fileloc = dag.fileloc if dag is not None else ""
        policy = policies.for_stub(fileloc) if fileloc else platform.from_environment()
        return templates.Scope(
            package=package,
            params=frozenset(dag.params.keys()) if dag is not None else frozenset(),
            tasks=frozenset(dag.task_ids) if dag is not None else frozenset(),
            conf=policy.grants_for(package).dag_run_conf,
            granted=lambda kind, name: policy.granted(package, kind, name),
        )


def _plain(value: Any) -> Any:
    """A templated field's value as JSON-like data (Kubernetes models by their attribute names)."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _provenance(manifest: Manifest) -> str:
    """The DAG page's provenance block: only what the manifest decides, including the publisher's
    stamp (the release that last changed it). Not this library's version: it is serialized with the
    DAG, so an image upgrade that builds the same DAG would otherwise make a new DAG version of every
    DAG (Airflow's version inflation)."""
    data = manifest.data
    head = data.get("doc_md") or data.get("description") or ""
    stamp = data.get("provenance") or {}  # the release that last changed this manifest (the publisher's)
    lines = [
        "#### Provenance",
        "",
        f"- package: `{manifest.package}`",
        *(
            f"- {label}: `{stamp[key]}`"
            for key, label in (
                ("release", "release"),
                ("git_sha", "git sha"),
                ("package_version", "package version"),
            )
            if key in stamp
        ),
        f"- manifest sha256: `{manifest.sha256}`",
        *(f"- image: `{image}`" for image in manifest.images),
        f"- built by: dagfactory-s3 (loader API {API_VERSION})",
    ]
    return (head.rstrip() + "\n\n" if head else "") + "\n".join(lines) + "\n"


def pod_labels(manifest: Manifest, task: Task) -> dict[str, str]:
    """Labels on every pod: the user's, then ours (ours win; the prefix is reserved by validation)."""
    return {
        **task.fields.get("labels", {}),
        "app.kubernetes.io/managed-by": MANAGED_BY,
        PACKAGE_LABEL: manifest.package,
        "dagfactory-s3/dag-id": manifest.dag_id,
        "dagfactory-s3/task-id": task.task_id,
    }


def _items(items: list[dict[str, Any]] | None) -> list[k8s.V1KeyToPath] | None:
    if not items:
        return None
    return [k8s.V1KeyToPath(key=i["key"], path=i["path"], mode=i.get("mode")) for i in items]


# The client renamed the PVC spec's resources type (kubernetes 29); use whichever this one has.
_VolumeResources = getattr(k8s, "V1VolumeResourceRequirements", k8s.V1ResourceRequirements)


def _volume(volume: dict[str, Any]) -> k8s.V1Volume:
    ((kind, source),) = ((k, v) for k, v in volume.items() if k != "name")
    if kind == "persistent_volume_claim":
        built: dict[str, Any] = {
            kind: k8s.V1PersistentVolumeClaimVolumeSource(
                claim_name=source["claim_name"], read_only=source.get("read_only")
            )
        }
    elif kind == "empty_dir":
        built = {
            kind: k8s.V1EmptyDirVolumeSource(medium=source.get("medium"), size_limit=source.get("size_limit"))
        }
    elif kind in ("secret", "config_map"):
        cls, name = (
            (k8s.V1SecretVolumeSource, "secret_name")
            if kind == "secret"
            else (k8s.V1ConfigMapVolumeSource, "name")
        )
        built = {
            kind: cls(
                **{name: source[name]},
                items=_items(source.get("items")),
                default_mode=source.get("default_mode"),
                optional=source.get("optional"),
            )
        }
    elif kind == "projected":
        sources = []
        for projection in source["sources"]:
            ((sub, body),) = projection.items()
            if sub == "secret":
                item = k8s.V1VolumeProjection(
                    secret=k8s.V1SecretProjection(
                        name=body["name"], items=_items(body.get("items")), optional=body.get("optional")
                    )
                )
            elif sub == "config_map":
                item = k8s.V1VolumeProjection(
                    config_map=k8s.V1ConfigMapProjection(
                        name=body["name"], items=_items(body.get("items")), optional=body.get("optional")
                    )
                )
            else:
                item = k8s.V1VolumeProjection(
                    service_account_token=k8s.V1ServiceAccountTokenProjection(
                        path=body["path"],
                        audience=body.get("audience"),
                        expiration_seconds=body.get("expiration_seconds"),
                    )
                )
            sources.append(item)
        built = {kind: k8s.V1ProjectedVolumeSource(sources=sources, default_mode=source.get("default_mode"))}
    elif kind == "ephemeral":
        spec = k8s.V1PersistentVolumeClaimSpec(
            access_modes=list(source["access_modes"]),
            storage_class_name=source.get("storage_class_name"),
            resources=_VolumeResources(requests={"storage": source["storage"]}),
        )
        built = {
            kind: k8s.V1EphemeralVolumeSource(
                volume_claim_template=k8s.V1PersistentVolumeClaimTemplate(spec=spec)
            )
        }
    else:
        built = {kind: k8s.V1HostPathVolumeSource(path=source["path"], type=source.get("type"))}
    return k8s.V1Volume(name=volume["name"], **built)


def _mounts(mounts: list[dict[str, Any]]) -> list[k8s.V1VolumeMount]:
    return [
        k8s.V1VolumeMount(
            name=m["name"],
            mount_path=m["mount_path"],
            read_only=m.get("read_only"),
            sub_path=m.get("sub_path"),
        )
        for m in mounts
    ]


def _seccomp(value: dict[str, Any] | None) -> k8s.V1SeccompProfile | None:
    if value is None:
        return None
    return k8s.V1SeccompProfile(type=value["type"], localhost_profile=value.get("localhost_profile"))


# Fields pod and container security contexts share (same names in the manifest and the client).
_SECURITY_SHARED = ("run_as_non_root", "run_as_user", "run_as_group")


def _container_security(value: dict[str, Any]) -> k8s.V1SecurityContext:
    caps = value.get("capabilities")
    return k8s.V1SecurityContext(
        **{k: value.get(k) for k in _SECURITY_SHARED},
        read_only_root_filesystem=value.get("read_only_root_filesystem"),
        allow_privilege_escalation=value.get("allow_privilege_escalation"),
        privileged=value.get("privileged"),
        capabilities=k8s.V1Capabilities(add=caps.get("add"), drop=caps.get("drop")) if caps else None,
        seccomp_profile=_seccomp(value.get("seccomp_profile")),
    )


def _pod_security(value: dict[str, Any]) -> k8s.V1PodSecurityContext:
    return k8s.V1PodSecurityContext(
        **{k: value.get(k) for k in _SECURITY_SHARED},
        fs_group=value.get("fs_group"),
        fs_group_change_policy=value.get("fs_group_change_policy"),
        supplemental_groups=value.get("supplemental_groups"),
        seccomp_profile=_seccomp(value.get("seccomp_profile")),
    )


def _resources(value: dict[str, Any]) -> k8s.V1ResourceRequirements:
    # A real V1ResourceRequirements, never a nested dict (dag-factory #520).
    return k8s.V1ResourceRequirements(
        requests=value.get("requests") or None, limits=value.get("limits") or None
    )


def _init_container(value: dict[str, Any]) -> k8s.V1Container:
    return k8s.V1Container(
        name=value["name"],
        image=value["image"],
        command=value.get("command"),
        args=value.get("arguments"),
        env=_env(value["env"]) if value.get("env") else None,
        resources=_resources(value["resources"]) if "resources" in value else None,
        volume_mounts=_mounts(value["volume_mounts"]) if value.get("volume_mounts") else None,
        security_context=_container_security(value["security_context"])
        if "security_context" in value
        else None,
    )


def _env_from(value: dict[str, Any]) -> k8s.V1EnvFromSource:
    optional = value.get("optional")
    if "secret" in value:
        return k8s.V1EnvFromSource(
            prefix=value.get("prefix"),
            secret_ref=k8s.V1SecretEnvSource(name=value["secret"], optional=optional),
        )
    return k8s.V1EnvFromSource(
        prefix=value.get("prefix"),
        config_map_ref=k8s.V1ConfigMapEnvSource(name=value["config_map"], optional=optional),
    )


def _env(env: dict[str, Any]) -> list[k8s.V1EnvVar]:
    out = []
    for name, value in env.items():
        if isinstance(value, str):
            out.append(k8s.V1EnvVar(name=name, value=value))
        elif "secret" in value:
            ref = value["secret"]
            out.append(
                k8s.V1EnvVar(
                    name=name,
                    value_from=k8s.V1EnvVarSource(
                        secret_key_ref=k8s.V1SecretKeySelector(
                            name=ref["name"], key=ref["key"], optional=ref.get("optional")
                        )
                    ),
                )
            )
        else:
            ref = value["config_map"]
            out.append(
                k8s.V1EnvVar(
                    name=name,
                    value_from=k8s.V1EnvVarSource(
                        config_map_key_ref=k8s.V1ConfigMapKeySelector(
                            name=ref["name"], key=ref["key"], optional=ref.get("optional")
                        )
                    ),
                )
            )
    return out


def _tolerations(items: list[dict[str, Any]]) -> list[k8s.V1Toleration]:
    return [
        k8s.V1Toleration(
            key=t.get("key"),
            operator=t.get("operator"),
            value=t.get("value"),
            effect=t.get("effect"),
            toleration_seconds=t.get("toleration_seconds"),
        )
        for t in items
    ]


def _api_object(manifest: Manifest, task: Task, field: str, value: Any, kind: str, what: str) -> Any:
    """A Kubernetes object from its API (camelCase) form, refusing what the client would silently
    drop or change (unknown fields, wrong types)."""
    where = f"{task.where}/{field}" if field in _own_fields(manifest, task) else f"/task_defaults/{field}"
    client = ApiClient()
    try:
        built = client._ApiClient__deserialize(value, kind)  # what the operator itself uses
        same = client.sanitize_for_serialization(built) == value
    except (ValueError, TypeError, AttributeError) as exc:
        raise ManifestError(
            [Problem(manifest.file, where, f"not a valid Kubernetes {what}: {exc}")]
        ) from None
    if not same:
        raise ManifestError(
            [
                Problem(
                    manifest.file,
                    where,
                    f"not a valid Kubernetes {what}: unknown fields or wrong "
                    "types would be dropped; check it against the Kubernetes API (camelCase)",
                )
            ]
        )
    return built


def _affinity(manifest: Manifest, task: Task) -> k8s.V1Affinity:
    return _api_object(manifest, task, "affinity", task.fields["affinity"], "V1Affinity", "Affinity")


def _pod_override(manifest: Manifest, task: Task) -> k8s.V1Pod:
    """The operator's ``full_pod_spec``: the base its own pod is merged over (the task's container is
    ``containers[0]``, named ``base``), so every field the manifest models wins."""
    value = task.fields["pod_override"]
    spec = dict(value.get("spec", {}))
    spec.setdefault("containers", [{"name": "base"}])
    document = {"metadata": value.get("metadata", {}), "spec": spec}
    pod = _api_object(manifest, task, "pod_override", document, "V1Pod", "Pod")
    return pod


# The provider's own flag: on Airflow 3.3+ `durable` replaced `reattach_on_restart`.
_DURABLE = getattr(_provider, "AIRFLOW_V_3_3_PLUS", False)
# (task field, operator argument) of the fields passed unchanged when a manifest sets them; the
# table (dagfactory_s3.manifest.pod_fields) names every field, operator_kwargs converts the others.
_PLAIN = tuple((f.field, f.kwarg) for f in FIELDS if f.plain)


def _own_fields(manifest: Manifest, task: Task) -> dict[str, Any]:
    if task.where == "/job":
        return manifest.data["job"]
    return manifest.data["tasks"][int(task.where.rsplit("/", 1)[1])]


def _notifier_classes(
    manifest: Manifest, policy: Policy, pointer: str, names: list[str]
) -> list[tuple[Any, Any]]:
    """(class, policy entry) of each named notifier, from the fixed registry of notifier kinds."""
    out = []
    for i, name in enumerate(names):
        spec = (policy.notifiers or {}).get(name)
        if spec is None:
            defined = (
                f"the platform policy ({policy.file}) defines: {', '.join(sorted(policy.notifiers)) or 'none'}"
                if policy.notifiers is not None
                else "no platform policy: none is served beside the packages (`airflow-dag-publisher policy "
                "publish`) and DAGFACTORY_POLICY names no file"
            )
            raise ManifestError(
                [Problem(manifest.file, f"{pointer}/{i}", f"unknown notifier {name!r}; {defined}")]
            )
        kind = NOTIFIER_KINDS[spec.kind]
        try:
            module = importlib.import_module(kind.module)
        except ImportError:
            raise ManifestError(
                [
                    Problem(
                        manifest.file,
                        f"{pointer}/{i}",
                        f"notifier {name!r} ({spec.kind}) needs {kind.provider} installed in the Airflow image",
                    )
                ]
            ) from None
        out.append((getattr(module, kind.cls), spec))
    return out


def _notifiers(manifest: Manifest, policy: Policy, pointer: str, names: list[str]) -> list[Any]:
    """The platform's named notifiers, built."""
    return [cls(**spec.options) for cls, spec in _notifier_classes(manifest, policy, pointer, names)]


def _deadline(manifest: Manifest, policy: Policy) -> list[Any]:
    """Airflow's deadline alerts (3.1+): one per notifier, counted from when the run was queued."""
    try:
        from airflow.sdk import DeadlineAlert, DeadlineReference, SyncCallback
    except ImportError:
        from airflow import __version__ as version

        raise ManifestError(
            [
                Problem(
                    manifest.file,
                    "/deadline",
                    f"deadline alerts need Airflow 3.1 or later; this is Airflow {version}",
                )
            ]
        ) from None
    spec = manifest.data["deadline"]
    reference = {
        "queued_at": DeadlineReference.DAGRUN_QUEUED_AT,
        "logical_date": DeadlineReference.DAGRUN_LOGICAL_DATE,
    }[spec.get("from", "queued_at")]
    return [
        DeadlineAlert(
            reference=reference,
            interval=parse_duration(spec["after"]),
            callback=SyncCallback(f"{cls.__module__}.{cls.__qualname__}", kwargs=dict(notifier.options)),
        )
        for cls, notifier in _notifier_classes(manifest, policy, "/deadline/notify", spec["notify"])
    ]


def operator_kwargs(manifest: Manifest, task: Task, policy: Policy = DEFAULT_POLICY) -> dict[str, Any]:
    """The KubernetesPodOperator arguments of one resolved task (a field is passed only when set,
    so a manifest that does not use it builds exactly what it built before the field existed)."""
    f = task.fields
    kwargs: dict[str, Any] = {
        "task_id": task.task_id,
        "name": naming.pod_name(manifest.dag_id, task.task_id),
        "labels": pod_labels(manifest, task),
        "startup_timeout_seconds": int(parse_duration(f["startup_timeout"]).total_seconds()),
        "retry_delay": parse_duration(f["retry_delay"]),
        # Off unless the task opts in: with it the provider adds its xcom sidecar container.
        "do_xcom_push": f.get("do_xcom_push", False),
    }
    if "command" in f:
        kwargs["cmds"] = list(f["command"])
    if "arguments" in f:
        kwargs["arguments"] = list(f["arguments"])
    if f.get("env"):
        kwargs["env_vars"] = _env(f["env"])
    if "resources" in f:
        kwargs["container_resources"] = _resources(f["resources"])
    if f.get("node_selector"):
        kwargs["node_selector"] = dict(f["node_selector"])
    if f.get("tolerations"):
        kwargs["tolerations"] = _tolerations(f["tolerations"])
    if f.get("affinity"):
        kwargs["affinity"] = _affinity(manifest, task)
    if f.get("annotations"):
        kwargs["annotations"] = dict(f["annotations"])
    if f.get("image_pull_secrets"):
        kwargs["image_pull_secrets"] = [k8s.V1LocalObjectReference(name=n) for n in f["image_pull_secrets"]]
    if "execution_timeout" in f:
        kwargs["execution_timeout"] = parse_duration(f["execution_timeout"])
    for field, argument in _PLAIN:  # namespace, image, retries ...: always set (TASK_DEFAULTS, the rules)
        if field in f:
            kwargs[argument] = f[field]
    if f.get("retry_exponential_backoff"):
        kwargs["retry_exponential_backoff"] = True  # a bool on Airflow 3.0-3.2, the multiplier 1 on 3.3
    if "max_retry_delay" in f:
        kwargs["max_retry_delay"] = parse_duration(f["max_retry_delay"])
    if "reattach_on_restart" in f:
        kwargs["durable" if _DURABLE else "reattach_on_restart"] = f["reattach_on_restart"]
    if f.get("volumes"):
        kwargs["volumes"] = [_volume(v) for v in f["volumes"]]
    if f.get("volume_mounts"):
        kwargs["volume_mounts"] = _mounts(f["volume_mounts"])
    if f.get("env_from"):
        kwargs["env_from"] = [_env_from(v) for v in f["env_from"]]
    if "security_context" in f:
        kwargs["container_security_context"] = _container_security(f["security_context"])
    if "pod_security_context" in f:
        kwargs["security_context"] = _pod_security(f["pod_security_context"])
    if f.get("host_aliases"):
        kwargs["host_aliases"] = [
            k8s.V1HostAlias(ip=a["ip"], hostnames=list(a["hostnames"])) for a in f["host_aliases"]
        ]
    if f.get("init_containers"):
        kwargs["init_containers"] = [_init_container(c) for c in f["init_containers"]]
    if "termination_grace_period" in f:
        kwargs["termination_grace_period"] = int(
            parse_duration(f["termination_grace_period"]).total_seconds()
        )
    if "pod_override" in f:
        kwargs["full_pod_spec"] = _pod_override(manifest, task)
    where = f"{task.where}/alerts" if "alerts" in _own_fields(manifest, task) else "/task_defaults/alerts"
    for key, argument in (
        ("on_failure", "on_failure_callback"),
        ("on_success", "on_success_callback"),
        ("on_retry", "on_retry_callback"),
    ):
        if key in f.get("alerts", {}):
            kwargs[argument] = _notifiers(manifest, policy, f"{where}/{key}", f["alerts"][key])
    if f.get("outlets"):
        where = (
            f"{task.where}/outlets" if "outlets" in _own_fields(manifest, task) else "/task_defaults/outlets"
        )
        kwargs["outlets"] = [_asset(manifest, f"{where}/{i}", uri) for i, uri in enumerate(f["outlets"])]
    return kwargs


def _expansion(task: Task, kwargs: dict[str, Any], operators: dict[str, Any]) -> dict[str, Any]:
    """The ``expand()`` arguments of a mapped task (``kwargs`` loses what is mapped)."""
    expand = task.fields["expand"]
    mapped: dict[str, Any] = {}
    if "arguments" in expand:
        source = expand["arguments"]
        mapped["arguments"] = operators[source["from_task"]].output if isinstance(source, dict) else source
    if "env" in expand:
        static = dict(task.fields.get("env", {}))  # literal values only (validated)
        kwargs.pop("env_vars", None)
        mapped["env_vars"] = [{**static, **item} for item in expand["env"]]
    return mapped


def _build_order(manifest: Manifest) -> list[Task]:
    """Tasks in manifest order, except that a task mapped over another's result comes after it."""
    done: set[str] = set()
    order: list[Task] = []
    pending = list(manifest.tasks)
    while pending:
        for task in pending:
            source = task.fields.get("expand", {}).get("arguments")
            if not isinstance(source, dict) or source["from_task"] in done:
                break
        else:  # unreachable for a checked manifest (cycles are refused)
            raise ValueError("mapped tasks form a cycle")
        pending.remove(task)
        order.append(task)
        done.add(task.task_id)
    return order


def _asset(manifest: Manifest, pointer: str, uri: str) -> Asset:
    """The asset named by its normalized URI (see dagfactory_s3.assets), so every spelling of one URI,
    in any package, is one asset. The image's provider normalizers may refuse more than the manifest
    checks could (a postgres:// URI without a table, say): a manifest error at ``pointer``."""
    try:
        normalized = Asset(uri=uri).uri
        return Asset(name=normalized, uri=normalized)
    except ValueError as exc:
        raise ManifestError(
            [Problem(manifest.file, pointer, f"Airflow refuses the asset URI: {exc}")]
        ) from None


def _schedule(manifest: Manifest, zone: Any) -> Any:
    """None, ``@once``, the timetable of a cron, preset or interval, or an asset condition.

    A cron or interval gets its timetable here, not from Airflow's ``[scheduler]
    create_cron_data_intervals``, so a manifest means the same on every platform: a trigger timetable
    (what that setting's default builds: the same serialized DAG as the plain value), or with
    ``data_intervals`` Airflow 2's data interval one, in ``zone``, the DAG's time zone. Presets are
    Airflow's to expand. An asset condition is always AssetAll/AssetAny, also of one asset, so the
    serialized DAG names the condition the manifest chose."""
    schedule = manifest.data.get("schedule")
    if isinstance(schedule, str):
        schedule = {"cron": schedule}
    if schedule is None:
        return None
    if schedule.get("cron") == "@once":  # Airflow's OnceTimetable, whatever its settings
        return "@once"
    intervals = schedule.get("data_intervals", False)
    if "cron" in schedule:
        if intervals:
            return CronDataIntervalTimetable(schedule["cron"], timezone=zone)
        return CronTriggerTimetable(schedule["cron"], timezone=zone)
    if "every" in schedule:
        delta = parse_duration(schedule["every"])
        return DeltaDataIntervalTimetable(delta) if intervals else DeltaTriggerTimetable(delta)
    condition = AssetAny if schedule.get("require", "all") == "any" else AssetAll
    return condition(
        *(_asset(manifest, f"/schedule/assets/{i}", u) for i, u in enumerate(schedule["assets"]))
    )


def _param(spec: dict[str, Any]) -> Param:
    rules = {k: v for k, v in spec.items() if k not in ("default", "description")}
    if "default" in spec:
        return Param(spec["default"], description=spec.get("description"), **rules)
    return Param(description=spec.get("description"), **rules)


def build_dag(manifest: Manifest, policy: Policy = DEFAULT_POLICY) -> DAG:
    """The Airflow DAG of a checked manifest: one :class:`ManifestPodOperator` per task. ``policy`` gives
    the platform's default first-run state (the manifest's ``paused_on_create`` wins)."""
    data = manifest.data
    # pendulum's zone: what Airflow serializes by name and evaluates crons in (DST-correct).
    zone = pendulum.timezone(data["timezone"]) if "timezone" in data else None
    kwargs: dict[str, Any] = {
        "dag_id": manifest.dag_id,
        "schedule": _schedule(manifest, zone or pendulum.timezone("UTC")),
        "start_date": parse_instant(data["start_date"], zone),
        "catchup": data.get("catchup", False),
        "max_active_runs": data.get("max_active_runs", 1),
        "tags": sorted(data.get("tags", [])),
        "doc_md": _provenance(manifest),
        "default_args": {"owner": data.get("owner", "airflow")},
    }
    if "description" in data:
        kwargs["description"] = data["description"]
    if "end_date" in data:
        kwargs["end_date"] = parse_instant(data["end_date"], zone)
    paused = data.get("paused_on_create", policy.paused_on_create)
    if paused is not None:
        kwargs["is_paused_upon_creation"] = paused
    if data.get("params"):
        kwargs["params"] = {name: _param(spec) for name, spec in data["params"].items()}
    if data.get("owner_links"):
        kwargs["owner_links"] = dict(data["owner_links"])
    for key, argument in (("on_failure", "on_failure_callback"), ("on_success", "on_success_callback")):
        if key in data.get("alerts", {}):
            kwargs[argument] = _notifiers(manifest, policy, f"/alerts/{key}", data["alerts"][key])
    if "deadline" in data:
        kwargs["deadline"] = _deadline(manifest, policy)
    if "max_active_tasks" in data:
        kwargs["max_active_tasks"] = data["max_active_tasks"]
    if "dagrun_timeout" in data:
        kwargs["dagrun_timeout"] = parse_duration(data["dagrun_timeout"])
    with DAG(**kwargs) as dag:
        groups: dict[str, TaskGroup] = {}
        operators: dict[str, Any] = {}
        for task in _build_order(manifest):
            name = task.fields.get("group")
            if name is not None and name not in groups:
                groups[name] = TaskGroup(group_id=name, prefix_group_id=False)
            with groups[name] if name is not None else nullcontext():
                op_kwargs = operator_kwargs(manifest, task, policy)
                if "expand" in task.fields:
                    mapped = _expansion(task, op_kwargs, operators)
                    operators[task.task_id] = ManifestPodOperator.partial(**op_kwargs).expand(**mapped)
                else:
                    operators[task.task_id] = ManifestPodOperator(**op_kwargs)
        for task in manifest.tasks:
            for upstream in task.depends_on:
                operators[upstream] >> operators[task.task_id]
    return dag


def render_pods(
    manifest: Manifest, policy: Policy = DEFAULT_POLICY
) -> list[tuple[Task, str, dict[str, Any]]]:
    """The pod each task would create, built by the operator's own code with no cluster.

    The operator's random name suffix is turned off so the output is stable; at run time the
    operator appends ``-<8 random characters>`` to the name shown here. A task mapped over a list
    in the manifest shows one pod per item (``task[0]``, ``task[1]`` ...); one mapped over another
    task's result shows the pod without the mapped arguments (``task[*]``). Returns (task, name, pod).
    """
    build_dag(manifest, policy)  # every check the DAG build makes
    client = ApiClient()
    pods = []
    for task in manifest.tasks:
        kwargs = operator_kwargs(manifest, task, policy)
        kwargs["random_name_suffix"] = False
        variants: list[tuple[str, dict[str, Any]]] = [(task.task_id, {})]
        if "expand" in task.fields:
            expand = task.fields["expand"]
            static = dict(task.fields.get("env", {}))
            arguments = expand.get("arguments")
            args = [{"arguments": a} for a in arguments] if isinstance(arguments, list) else [{}]
            envs = [{"env_vars": {**static, **e}} for e in expand["env"]] if "env" in expand else [{}]
            items = [{**a, **e} for a in args for e in envs]
            star = isinstance(arguments, dict)
            variants = [(f"{task.task_id}[{'*' if star else i}]", item) for i, item in enumerate(items)]
        for name, item in variants:
            operator = ManifestPodOperator(**{**kwargs, **item})
            pod = operator.build_pod_request_obj(dry_run=True)
            pods.append((task, name, client.sanitize_for_serialization(pod)))
    return pods
