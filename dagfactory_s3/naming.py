"""Names: packages, DAG ids, file names, S3 keys and Kubernetes names derived from them.

The one home of the manifest <-> stub <-> key mapping. The S3 layout under ``s3://<bucket>/<env>/``::

    <package>/dags/<dag_id>.json          manifest
    <package>/dags/<dag_id>.py            its canonical stub
    <package>/metadata.json               the current release record: the commit point
    <package>/_releases/<release_id>.json history: every committed record
    <package>/_releases/objects/<sha256>  content store

Names relative to ``<env>/<package>/`` (``dags/x.json``) are called *rest* throughout.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from dagfactory_s3.errors import ConfigError

__all__ = [
    "DAGS_DIR",
    "DAG_ID_RE",
    "METADATA",
    "OBJECTS_DIR",
    "PACKAGE_RE",
    "RELEASES_DIR",
    "RELEASE_ID_RE",
    "SHA256_RE",
    "SYNC_IGNORE_FILE",
    "SYNC_IGNORE_HEADER",
    "check_dag_id",
    "check_environment",
    "check_package",
    "dag_file",
    "dag_id_of",
    "dag_id_owner",
    "foreign_owner",
    "history_name",
    "is_dag_file",
    "manifest_name",
    "manifest_of",
    "object_name",
    "package_prefix",
    "pod_name",
    "release_id_of",
    "release_time",
    "sha_of_object",
    "stub_of",
]

DAGS_DIR = "dags"
METADATA = "metadata.json"
RELEASES_DIR = "_releases"
OBJECTS_DIR = f"{RELEASES_DIR}/objects"
RELEASE_ID_RE = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# The sync sidecar writes <package>/.airflowignore (hiding its staging directories) starting with this
# line. The loader takes it as proof that a stub sits in the sidecar's <package>/dags/ layout, where
# the folder names the package that owns every DAG in it.
SYNC_IGNORE_FILE = ".airflowignore"
SYNC_IGNORE_HEADER = b"# written by airflow-dag-sync"
_ENV_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
_DAG_FILE_RE = re.compile(r"^([a-z][a-z0-9_]{0,62})\.(json|py)$")

PACKAGE_RE = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
DAG_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

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


def dag_id_owner(dag_id: str, packages: set[str] | frozenset[str]) -> str | None:
    """The package of ``packages`` that owns ``dag_id``: the longest whose ``<package>_`` it starts
    with. Package ``a`` and package ``a_b`` could both name ``a_b_x``; it is ``a_b``'s, in CI, in the
    sidecar and in the bundle alike (one owner per DAG id). Looks up the id's own prefixes, so its
    cost does not grow with the number of packages."""
    parts = dag_id.split("_")
    for end in range(len(parts) - 1, 0, -1):
        prefix = "_".join(parts[:end])
        if prefix in packages:
            return prefix
    return None


def foreign_owner(dag_id: str, package: str, packages: set[str] | frozenset[str]) -> str | None:
    """Why ``package`` may not serve ``dag_id`` because a longer package name owns it (None: it may)."""
    owner = dag_id_owner(dag_id, packages)
    if owner is None or len(owner) <= len(package):
        return None
    return (
        f"dag_id {dag_id!r} belongs to package {owner!r} (the longest package name it starts with), "
        f"not to {package!r}"
    )


def check_environment(env: str) -> str | None:
    """Return why ``env`` is not a valid environment prefix, or None."""
    if not _ENV_RE.fullmatch(env or ""):
        return f"environment {env!r} is invalid: use 1-50 lowercase letters, digits, '-' or '_'"
    return None


def package_prefix(env: str, package: str) -> str:
    return f"{env}/{package}/"


def manifest_name(dag_id: str) -> str:
    return f"{dag_id}.json"


def dag_file(dag_id: str, suffix: str) -> str:
    """``dags/<dag_id>.json`` or ``dags/<dag_id>.py`` (``suffix`` is ``.json`` or ``.py``)."""
    return f"{DAGS_DIR}/{dag_id}{suffix}"


def is_dag_file(rest: str) -> bool:
    """True for ``dags/<dag_id>.json`` or ``dags/<dag_id>.py`` (the only files served to Airflow)."""
    directory, sep, name = rest.partition("/")
    return directory == DAGS_DIR and bool(sep) and bool(_DAG_FILE_RE.fullmatch(name))


def dag_id_of(name: str) -> str:
    """``dags/x.json``, ``x.py`` or ``/path/x.json`` -> ``x``."""
    return name.rpartition("/")[2].rpartition(".")[0]


def stub_of(manifest: str) -> str:
    """The stub beside a manifest: ``dags/x.json`` -> ``dags/x.py`` (any directory prefix kept)."""
    return manifest.removesuffix(".json") + ".py"


def manifest_of(stub: str) -> str:
    """The manifest beside a stub: ``dags/x.py`` -> ``dags/x.json``."""
    return stub.removesuffix(".py") + ".json"


def history_name(release_id: str) -> str:
    """``_releases/<release_id>.json``; a malformed id is refused (it is never a path)."""
    if not RELEASE_ID_RE.fullmatch(release_id or ""):
        raise ConfigError(f"release id {release_id!r} is invalid: expected e.g. 20240101T120000.000Z-1a2b3c")
    return f"{RELEASES_DIR}/{release_id}.json"


def release_time(release_id: str) -> float:
    """The instant a release id (or its ``<YYYYmmddTHHMMSS.mmmZ>`` head) starts with, seconds since
    the epoch (UTC)."""
    head = release_id.partition("-")[0]
    return datetime.strptime(head, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def release_id_of(rest: str) -> str | None:
    """The release id of a history record name (``_releases/<id>.json``), or None."""
    head, _, name = rest.rpartition("/")
    stem = name.removesuffix(".json")
    if head == RELEASES_DIR and name.endswith(".json") and RELEASE_ID_RE.fullmatch(stem):
        return stem
    return None


def object_name(sha256: str) -> str:
    """``_releases/objects/<sha256>``: where content with this digest lives, once."""
    if not SHA256_RE.fullmatch(sha256 or ""):
        raise ConfigError(f"not a sha256: {sha256!r}")
    return f"{OBJECTS_DIR}/{sha256}"


def sha_of_object(rest: str) -> str | None:
    """The digest of a content-store name, or None when ``rest`` is not one."""
    head, _, sha = rest.rpartition("/")
    return sha if head == OBJECTS_DIR and SHA256_RE.fullmatch(sha) else None


def pod_name(dag_id: str, task_id: str) -> str:
    """The deterministic base pod name of a task (the operator adds a random suffix at run time)."""
    raw = f"{dag_id}-{task_id}".replace("_", "-").lower()
    return raw[:_POD_NAME_BUDGET].strip("-")
