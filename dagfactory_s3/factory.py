"""The one adapter from a checked manifest to Airflow objects. The only module that imports Airflow.

Deterministic by construction: the DAG depends only on the manifest bytes and this library's
version — no clock, no randomness, no environment, stable ordering — so the same manifest gives the
same serialized DAG hash in every process and on every machine.
"""

from __future__ import annotations

from typing import Any

try:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk import DAG
    from kubernetes.client import ApiClient
    from kubernetes.client import models as k8s
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "dagfactory_s3.factory needs Airflow: install 'dagfactory-s3[airflow]' in the Airflow image"
    ) from exc

from dagfactory_s3 import __version__, naming
from dagfactory_s3.errors import ManifestError, Problem
from dagfactory_s3.loader import API_VERSION
from dagfactory_s3.manifest import Manifest, Task
from dagfactory_s3.schedule import parse_duration, parse_instant

__all__ = ["build_dag", "build_operator", "pod_labels", "render_pods"]

MANAGED_BY = "dagfactory-s3"


def _provenance(manifest: Manifest) -> str:
    data = manifest.data
    head = data.get("doc_md") or data.get("description") or ""
    lines = [
        "#### Provenance",
        "",
        f"- package: `{manifest.package}`",
        f"- manifest sha256: `{manifest.sha256}`",
        *(f"- image: `{image}`" for image in manifest.images),
        f"- built by: dagfactory-s3 {__version__} (loader API {API_VERSION})",
    ]
    return (head.rstrip() + "\n\n" if head else "") + "\n".join(lines) + "\n"


def pod_labels(manifest: Manifest, task: Task) -> dict[str, str]:
    """Labels on every pod: the user's, then ours (ours win; the prefix is reserved by validation)."""
    return {
        **task.fields.get("labels", {}),
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "dagfactory-s3/package": manifest.package,
        "dagfactory-s3/dag-id": manifest.dag_id,
        "dagfactory-s3/task-id": task.task_id,
    }


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


def _affinity(manifest: Manifest, task: Task) -> k8s.V1Affinity:
    """The Kubernetes Affinity object, refusing what the client would silently drop or change."""
    value = task.fields["affinity"]
    where = (
        f"{task.where}/affinity" if "affinity" in _own_fields(manifest, task) else "/task_defaults/affinity"
    )
    client = ApiClient()
    try:
        affinity = client._ApiClient__deserialize(value, "V1Affinity")  # what the operator itself uses
        same = client.sanitize_for_serialization(affinity) == value
    except (ValueError, TypeError, AttributeError) as exc:
        raise ManifestError(
            [Problem(manifest.file, where, f"not a valid Kubernetes Affinity: {exc}")]
        ) from None
    if not same:
        raise ManifestError(
            [
                Problem(
                    manifest.file,
                    where,
                    "not a valid Kubernetes Affinity: unknown fields or wrong "
                    "types would be dropped; check it against the Kubernetes API (camelCase)",
                )
            ]
        )
    return affinity


def _own_fields(manifest: Manifest, task: Task) -> dict[str, Any]:
    if task.where == "/job":
        return manifest.data["job"]
    return manifest.data["tasks"][int(task.where.rsplit("/", 1)[1])]


def build_operator(manifest: Manifest, task: Task) -> KubernetesPodOperator:
    """One KubernetesPodOperator for one resolved task (call inside the DAG context)."""
    f = task.fields
    kwargs: dict[str, Any] = {
        "task_id": task.task_id,
        "name": naming.pod_name(manifest.dag_id, task.task_id),
        "namespace": f["namespace"],
        "image": f["image"],
        "labels": pod_labels(manifest, task),
        "startup_timeout_seconds": int(parse_duration(f["startup_timeout"]).total_seconds()),
        "retries": f["retries"],
        "retry_delay": parse_duration(f["retry_delay"]),
        "on_finish_action": f["on_finish_action"],
        "get_logs": f["get_logs"],
        # Job results travel through the job's own storage, not XCom: no xcom sidecar container.
        "do_xcom_push": False,
    }
    if "command" in f:
        kwargs["cmds"] = list(f["command"])
    if "arguments" in f:
        kwargs["arguments"] = list(f["arguments"])
    if f.get("env"):
        kwargs["env_vars"] = _env(f["env"])
    if "resources" in f:
        # A real V1ResourceRequirements, never a nested dict (dag-factory #520).
        kwargs["container_resources"] = k8s.V1ResourceRequirements(
            requests=f["resources"].get("requests") or None, limits=f["resources"].get("limits") or None
        )
    if "service_account" in f:
        kwargs["service_account_name"] = f["service_account"]
    if f.get("node_selector"):
        kwargs["node_selector"] = dict(f["node_selector"])
    if f.get("tolerations"):
        kwargs["tolerations"] = _tolerations(f["tolerations"])
    if f.get("affinity"):
        kwargs["affinity"] = _affinity(manifest, task)
    if f.get("annotations"):
        kwargs["annotations"] = dict(f["annotations"])
    if "image_pull_policy" in f:
        kwargs["image_pull_policy"] = f["image_pull_policy"]
    if f.get("image_pull_secrets"):
        kwargs["image_pull_secrets"] = [k8s.V1LocalObjectReference(name=n) for n in f["image_pull_secrets"]]
    if "execution_timeout" in f:
        kwargs["execution_timeout"] = parse_duration(f["execution_timeout"])
    if "pool" in f:
        kwargs["pool"] = f["pool"]
    return KubernetesPodOperator(**kwargs)


def build_dag(manifest: Manifest) -> DAG:
    """The Airflow DAG of a checked manifest: one KubernetesPodOperator per task."""
    data = manifest.data
    kwargs: dict[str, Any] = {
        "dag_id": manifest.dag_id,
        "schedule": data.get("schedule"),
        "start_date": parse_instant(data["start_date"]),
        "catchup": data.get("catchup", False),
        "max_active_runs": data.get("max_active_runs", 1),
        "tags": sorted(data.get("tags", [])),
        "doc_md": _provenance(manifest),
        "default_args": {"owner": data.get("owner", "airflow")},
    }
    if "description" in data:
        kwargs["description"] = data["description"]
    if "end_date" in data:
        kwargs["end_date"] = parse_instant(data["end_date"])
    if "max_active_tasks" in data:
        kwargs["max_active_tasks"] = data["max_active_tasks"]
    if "dagrun_timeout" in data:
        kwargs["dagrun_timeout"] = parse_duration(data["dagrun_timeout"])
    with DAG(**kwargs) as dag:
        operators = {task.task_id: build_operator(manifest, task) for task in manifest.tasks}
        for task in manifest.tasks:
            for upstream in task.depends_on:
                operators[upstream] >> operators[task.task_id]
    return dag


def render_pods(manifest: Manifest) -> list[tuple[str, dict[str, Any]]]:
    """The pod each task would create, built by the operator's own code with no cluster.

    The operator's random name suffix is turned off so the output is stable; at run time the
    operator appends ``-<8 random characters>`` to the name shown here.
    """
    dag = build_dag(manifest)
    client = ApiClient()
    pods = []
    for task in manifest.tasks:
        operator = dag.get_task(task.task_id)
        operator.random_name_suffix = False
        pod = operator.build_pod_request_obj(dry_run=True)
        pods.append((task.task_id, client.sanitize_for_serialization(pod)))
    return pods
