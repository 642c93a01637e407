"""Names: packages, DAG ids, file names, S3 keys and Kubernetes names derived from them."""

from __future__ import annotations

import re

__all__ = [
    "DAG_ID_RE",
    "PACKAGE_RE",
    "check_dag_id",
    "check_package",
    "is_rfc1123_label",
    "manifest_name",
    "pod_name",
    "stub_name",
]

PACKAGE_RE = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
DAG_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

# KubernetesPodOperator appends "-" + 8 random characters to the pod name at execution time.
_POD_NAME_BUDGET = 63 - 9


def check_package(name: str) -> str | None:
    """Return why ``name`` is not a valid package name, or None."""
    if not isinstance(name, str) or not name:
        return "package name is empty"
    if not PACKAGE_RE.fullmatch(name):
        return (
            f"package name {name!r} is invalid: use 1-50 lowercase letters, digits and '_', "
            "starting with a letter (it becomes the S3 prefix <env>/<package>/)"
        )
    return None


def check_dag_id(dag_id: str, package: str) -> str | None:
    """Return why ``dag_id`` does not belong to ``package``, or None."""
    if not DAG_ID_RE.fullmatch(dag_id):
        return f"dag_id {dag_id!r} is invalid: use lowercase letters, digits and '_', at most 63 characters"
    prefix = f"{package}_"
    if not dag_id.startswith(prefix) or len(dag_id) == len(prefix):
        return f"dag_id {dag_id!r} must be '{prefix}<name>' for package {package!r}"
    return None


def manifest_name(dag_id: str) -> str:
    return f"{dag_id}.json"


def stub_name(dag_id: str) -> str:
    return f"{dag_id}.py"


def pod_name(dag_id: str, task_id: str) -> str:
    """The deterministic base pod name of a task (the operator adds a random suffix at run time)."""
    raw = f"{dag_id}-{task_id}".replace("_", "-").lower()
    return raw[:_POD_NAME_BUDGET].strip("-")


def is_rfc1123_label(name: str) -> bool:
    return bool(_RFC1123_LABEL.fullmatch(name))


def is_env_name(name: str) -> bool:
    return bool(_ENV_NAME.fullmatch(name))


def check_label_key(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return f"label key prefix {prefix!r} must be a DNS subdomain"
    if not _LABEL_NAME.fullmatch(name):
        return f"label key {key!r} is invalid: at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends"
    return None


def check_label_value(value: str) -> str | None:
    if not _LABEL_VALUE.fullmatch(value):
        return f"label value {value!r} is invalid: at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends"
    return None
