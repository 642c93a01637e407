"""The one table of task fields the KubernetesPodOperator receives, and the pod keys they model.

Each :class:`PodField` names a manifest task field, the operator argument it becomes, and the keys of
the pod spec or of the task's own container it models. Both sides read it: the rules refuse a
``pod_override`` that repeats a modelled key (:mod:`dagfactory_s3.manifest.rules`), and the factory
passes every ``plain`` field through unchanged (:func:`dagfactory_s3.factory.operator_kwargs`; the
other fields are converted by its code). A new pod field is one row here, plus its conversion in the
factory when it is not plain.

Not in the table: ``alerts`` (one callback argument per key it sets), ``reattach_on_restart`` (its
argument is ``durable`` on Airflow 3.3+) and ``allow_mutable_image`` (read by the rules only).
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["BASE_CONTAINER", "FIELDS", "HOST_NAMESPACES", "PodField", "override_containers"]

BASE_CONTAINER = "base"  # the operator's name for the task's container
# pod spec keys that share the node's namespaces (refused unless the platform allows privileged pods)
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")


class PodField(NamedTuple):
    """One task field: the operator argument it becomes and the pod keys it models."""

    field: str
    kwarg: str
    # Keys of the pod spec (``spec``) or of the task's container (``spec.containers[0]``) this field
    # models: a ``pod_override`` may not set them ("use the manifest field ... instead").
    spec: tuple[str, ...] = ()
    container: tuple[str, ...] = ()
    # Passed to the operator unchanged, as ``kwarg``, when the task sets it (else converted by the factory).
    plain: bool = False


FIELDS: tuple[PodField, ...] = (
    # the task's container
    PodField("image", "image", container=("image",), plain=True),
    PodField("command", "cmds", container=("command",)),
    PodField("arguments", "arguments", container=("args",)),
    PodField("env", "env_vars", container=("env",)),
    PodField("env_from", "env_from", container=("envFrom",)),
    PodField("resources", "container_resources", container=("resources",)),
    PodField("volume_mounts", "volume_mounts", container=("volumeMounts",)),
    PodField("security_context", "container_security_context", container=("securityContext",)),
    PodField("image_pull_policy", "image_pull_policy", container=("imagePullPolicy",), plain=True),
    # the pod spec
    PodField(
        "service_account",
        "service_account_name",
        spec=("serviceAccountName", "serviceAccount"),
        plain=True,
    ),
    PodField("node_selector", "node_selector", spec=("nodeSelector",)),
    PodField("tolerations", "tolerations", spec=("tolerations",)),
    PodField("affinity", "affinity", spec=("affinity",)),
    PodField("image_pull_secrets", "image_pull_secrets", spec=("imagePullSecrets",)),
    PodField("pod_security_context", "security_context", spec=("securityContext",)),
    PodField("init_containers", "init_containers", spec=("initContainers",)),
    PodField("volumes", "volumes", spec=("volumes",)),
    PodField("priority_class_name", "priority_class_name", spec=("priorityClassName",), plain=True),
    PodField(
        "automount_service_account_token",
        "automount_service_account_token",
        spec=("automountServiceAccountToken",),
        plain=True,
    ),
    PodField("host_aliases", "host_aliases", spec=("hostAliases",)),
    PodField("termination_grace_period", "termination_grace_period", spec=("terminationGracePeriodSeconds",)),
    # the pod, around what the manifest models
    PodField("namespace", "namespace", plain=True),
    PodField("labels", "labels"),
    PodField("annotations", "annotations"),
    PodField("pod_override", "full_pod_spec"),
    PodField("startup_timeout", "startup_timeout_seconds"),
    PodField("get_logs", "get_logs", plain=True),
    PodField("log_events_on_failure", "log_events_on_failure", plain=True),
    PodField("on_finish_action", "on_finish_action", plain=True),
    PodField("do_xcom_push", "do_xcom_push"),
    # the Airflow task
    PodField("retries", "retries", plain=True),
    PodField("retry_delay", "retry_delay"),
    PodField("retry_exponential_backoff", "retry_exponential_backoff"),
    PodField("max_retry_delay", "max_retry_delay"),
    PodField("execution_timeout", "execution_timeout"),
    PodField("pool", "pool", plain=True),
    PodField("trigger_rule", "trigger_rule", plain=True),
    PodField("depends_on_past", "depends_on_past", plain=True),
    PodField("wait_for_downstream", "wait_for_downstream", plain=True),
    PodField("priority_weight", "priority_weight", plain=True),
    PodField("weight_rule", "weight_rule", plain=True),
    PodField("queue", "queue", plain=True),
    PodField("pool_slots", "pool_slots", plain=True),
    PodField("max_active_tis_per_dag", "max_active_tis_per_dag", plain=True),
    PodField("max_active_tis_per_dagrun", "max_active_tis_per_dagrun", plain=True),
    PodField("deferrable", "deferrable", plain=True),
    PodField("outlets", "outlets"),
)


def override_containers(fields: dict[str, Any]) -> list[dict[str, Any]]:
    """pod_override's containers when well-formed (else reported by _override_issues), else []."""
    containers = fields.get("pod_override", {}).get("spec", {}).get("containers", [])
    if isinstance(containers, list) and all(isinstance(c, dict) for c in containers):
        return containers
    return []
