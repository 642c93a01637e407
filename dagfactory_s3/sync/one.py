"""One DAG for one task: what a worker pod's init container fetches (``airflow-dag-sync --once --dag-id``).

With the KubernetesExecutor every task is a fresh pod. A full sync before each one costs a GET per DAG
of the environment; a worker needs one DAG. This fetches exactly that, whatever the environment's size:

1. a delimited LIST of ``<env>/``: the packages (the longest package name the DAG id starts with owns
   it, the rule every reader applies: :func:`~dagfactory_s3.naming.dag_id_owner`);
2. a GET of that package's release record (its identity checked, as every reader does);
3. a GET of the DAG's manifest, from the content object the record names, checked against its sha256
   and for ownership (:func:`~dagfactory_s3.serve.rules.check_manifest`, what serving needs).

And, when the listing shows a platform policy (``_platform/``), a GET of its pointer (which carries
the current policy's bytes): three requests without a policy, four with one. The stub is written,
never downloaded. Files land as a full sync lays them out (``<package>/dags/<dag_id>.json`` and
``.py``, the package's ``.airflowignore``, ``_platform/``), each written atomically, the manifest before its stub. The serving rules are the sidecar's and the bundle's
(:mod:`dagfactory_s3.serve.rules`); a DAG the environment does not serve fails with one line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagfactory_s3 import fs, naming, s3
from dagfactory_s3.errors import ConfigError, SyncError
from dagfactory_s3.manifest import MAX_BYTES as MANIFEST_MAX_BYTES
from dagfactory_s3.serve import policy as policies
from dagfactory_s3.serve.rules import (
    MAX_RECORD_BYTES,
    canonical_stub,
    check_manifest,
    read_record,
    served_files,
)

__all__ = ["Fetched", "fetch_dag"]

_IGNORE = naming.SYNC_IGNORE_HEADER + b": a package folder holding one DAG for one task\n"


@dataclass
class Fetched:
    """What :func:`fetch_dag` served: the package, its release, the files written, S3 requests made."""

    package: str = ""
    release_id: str = ""
    written: list[str] = field(default_factory=list)
    policy_id: str = ""
    requests: dict[str, int] = field(default_factory=lambda: {"LIST": 0, "GET": 0})


def fetch_dag(client: Any, bucket: str, environment: str, dags_folder: Path, dag_id: str) -> Fetched:
    """Serve ``dag_id`` alone into ``dags_folder``; SyncError (one line) when the environment does not
    serve it, ConfigError for a malformed DAG id or environment."""
    why = naming.check_environment(environment)
    if why:
        raise ConfigError(why)
    if not dag_id or "/" in dag_id or dag_id.startswith("."):
        raise ConfigError(f"--dag-id {dag_id!r} is not a DAG id")
    out = Fetched()
    where = f"s3://{bucket}/{environment}/"
    out.requests["LIST"] += 1
    listed = s3.list_prefixes(client, bucket, f"{environment}/")
    packages = {p for p in listed if not naming.check_package(p)}
    package = naming.dag_id_owner(dag_id, packages)
    if package is None:
        raise SyncError(f"DAG {dag_id!r} is not served from {where}: no package's name starts its id")
    key = naming.package_prefix(environment, package) + naming.METADATA
    out.requests["GET"] += 1
    got = s3.get(client, bucket, key, max_bytes=MAX_RECORD_BYTES, missing_ok=True)
    if got is None:
        raise SyncError(f"DAG {dag_id!r} is not served from {where}: package {package!r} has no release")
    record = read_record(got.data, key=key, package=package, environment=environment)
    if record.tombstone:
        raise SyncError(f"DAG {dag_id!r} is not served from {where}: package {package!r} is retired")
    rest = f"{naming.DAGS_DIR}/{naming.manifest_name(dag_id)}"
    served, refused = served_files(record, environment)
    wanted = next((f for f in served if f.rest == rest), None)
    if wanted is None:
        why = next((r.reason for r in refused if r.key.endswith("/" + rest)), "")
        raise SyncError(
            f"DAG {dag_id!r} is not in release {record.release_id} of package {package!r} in {where}"
            + (f": {why}" if why else "")
        )
    out.requests["GET"] += 1
    body = s3.get(client, bucket, wanted.source, version_id=wanted.version_id, max_bytes=MANIFEST_MAX_BYTES)
    assert body is not None
    if hashlib.sha256(body.data).hexdigest() != wanted.sha256:
        raise SyncError(
            f"s3://{bucket}/{wanted.source} does not match the sha256 release {record.release_id} records"
        )
    verdict = check_manifest(body.data, key=wanted.key, package=package, stem=dag_id, full=False)
    if not verdict.serve:
        raise SyncError(f"{wanted.key}: refused: {verdict.reason}")
    if policies.PLATFORM_DIR in listed:  # no _platform/ prefix: no policy, and no GET to learn it
        out.policy_id = _serve_policy(client, bucket, environment, dags_folder, out)
    pkg_dir = dags_folder / package
    dags = pkg_dir / naming.DAGS_DIR
    dags.mkdir(parents=True, exist_ok=True)
    fs.atomic_write(pkg_dir / naming.SYNC_IGNORE_FILE, _IGNORE)
    fs.atomic_write(dags / rest.rpartition("/")[2], body.data)
    stub_name = naming.stub_of(rest).rpartition("/")[2]
    fs.atomic_write(dags / stub_name, canonical_stub(stub_name)[0])
    out.package, out.release_id = package, record.release_id
    out.written = [f"{package}/{rest}", f"{package}/{naming.stub_of(rest)}"]
    return out


def _serve_policy(client: Any, bucket: str, environment: str, dags_folder: Path, out: Fetched) -> str:
    """The environment's current platform policy, served beside the package ('' when none is published).
    One GET when the pointer carries the policy's bytes, two when it names an object."""
    out.requests["GET"] += 1
    record, _ = policies.read_record(client, bucket, environment)
    if record is None:
        return ""
    raw, _policy = policies.read_policy(
        client, bucket, environment, record.current, record=record, on_get=lambda: _count(out)
    )
    policies.write_served(dags_folder / policies.PLATFORM_DIR, raw, environment, record.current.policy_id)
    return record.current.policy_id


def _count(out: Fetched) -> None:
    out.requests["GET"] += 1
