"""An Airflow 3 versioned DAG bundle over committed releases: every DAG run executes the release it started with.

Configure it in ``[dag_processor] dag_bundle_config_list`` (docs/deploy.md)::

    [{"name": "etl", "classpath": "dagfactory_s3.bundle.S3ReleaseDagBundle",
      "kwargs": {"bucket": "etl-airflow-dags-prod", "environment": "prod"}}]

**A version** is the exact set of package releases served, ``package -> release_id`` (the *mapping*),
named ``<T>-<h>``: ``h`` is a digest of bucket, environment and the sorted ``package=release_id``
lines, ``T`` a release-id-style instant no earlier than any release of the mapping and than the moment
the mapping was read. The mapping is kept three ways:

* in Airflow's own records: :class:`BundleVersion` ``data`` (``dag_version.version_data``, Airflow 3.3+);
* in the bundle's local ``mappings/<version>.json``;
* implicitly in S3: each package's current record carries the releases it replaced, and large ones
  are kept whole as immutable history objects (``_releases/<id>.json``), so a
  worker that has only the version string (Airflow 3.3 passes workers the version, not its data)
  takes, per package, the newest kept release whose id is not after ``T`` and checks the digest; when
  a publish committed across ``T`` it tries each package's other kept releases, one package at a time.

Nothing the bundle trusts is written by the bundle or shared between packages: each package's
releases come from its own prefix, which only its CI writes (the IAM policy of ``iam-policy``), so a
package publishing changes only its own line of the next mapping. Airflow needs read access only.

**Materializing** a version fetches only what the local content cache lacks (``objects/<sha256>``,
shared by all versions, filled only with bytes whose sha256 was checked), hard-links manifests from it
and writes canonical stubs itself. A worker's version (``initialize()`` at a version) fetches no
manifest up front: those its cache lacks are listed as pending and fetched one by one when the task
runner parses their stub (:mod:`dagfactory_s3.pending`), so a task start on a fresh disk costs the
version's records and the one manifest it runs, not the whole environment. The serving rules are the sidecar's (:mod:`dagfactory_s3.sync.policy`):
keys, canonical stubs only, manifest ownership, DAG-id claims, the mass-delete guard, and fail-static
(a package whose release cannot be served keeps its previous release in the next version).

This module and :mod:`dagfactory_s3.factory` are the only ones that import Airflow.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
from airflow.dag_processing.bundles.base import BaseDagBundle

from dagfactory_s3 import fs, naming, pending, s3
from dagfactory_s3 import release as releases
from dagfactory_s3.errors import ConfigError, SyncError
from dagfactory_s3.manifest import MAX_BYTES as MANIFEST_MAX_BYTES
from dagfactory_s3.sync.policy import canonical_stub, check_manifest, claim, classify_key, too_many_deletions

try:  # Airflow 3.3+: the version's data is stored with each DAG version (dag_version.version_data)
    from airflow.dag_processing.bundles.base import BundleVersion
except ImportError:  # pragma: no cover - older minors: the version string alone, rebuilt from S3
    BundleVersion = None  # type: ignore[assignment,misc]

__all__ = ["MAPPING_FORMAT", "Mapping", "S3ReleaseDagBundle", "version_name"]

log = logging.getLogger(__name__)

MAPPING_FORMAT = "dagfactory-s3/bundle-version@1"
_MAX_RECORD_BYTES = 8 * 1024 * 1024
_PACKAGE_IGNORE = naming.SYNC_IGNORE_HEADER + b": a package folder of the S3ReleaseDagBundle\n"


@dataclass(frozen=True)
class Mapping:
    """What a version serves: ``releases`` (package -> release id) and DAG ids ``refused`` to a package
    because another package was serving them first (package -> sorted ids)."""

    bucket: str
    environment: str
    releases: dict[str, str]
    refused: dict[str, list[str]] = field(default_factory=dict)

    def digest(self) -> str:
        lines = [self.bucket, self.environment] + [f"{p}={r}" for p, r in sorted(self.releases.items())]
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:20]

    def to_data(self) -> dict[str, Any]:
        return {
            "format": MAPPING_FORMAT,
            "bucket": self.bucket,
            "environment": self.environment,
            "releases": dict(sorted(self.releases.items())),
            "refused": {p: sorted(ids) for p, ids in sorted(self.refused.items()) if ids},
        }

    @classmethod
    def from_data(cls, data: Any, *, file: str) -> Mapping:
        if not isinstance(data, dict) or data.get("format") != MAPPING_FORMAT:
            raise ConfigError(f"{file}: not a bundle version of format {MAPPING_FORMAT!r}")
        rel, ref = data.get("releases"), data.get("refused", {})
        if not isinstance(rel, dict) or not isinstance(ref, dict):
            raise ConfigError(f"{file}: releases and refused must be objects")
        for package, release_id in rel.items():
            naming.history_name(release_id)  # ConfigError on a malformed id
            if naming.check_package(package):
                raise ConfigError(f"{file}: {naming.check_package(package)}")
        return cls(str(data.get("bucket")), str(data.get("environment")), dict(rel), dict(ref))


def version_name(mapping: Mapping, at: float) -> str:
    """``<T>-<digest>``: path-safe, sortable by time; ``T`` is not before ``at`` nor any release's id."""
    stamp = (
        datetime.fromtimestamp(at, timezone.utc).strftime("%Y%m%dT%H%M%S.") + f"{int(at * 1000) % 1000:03d}Z"
    )
    newest = max((r.partition("-")[0] for r in mapping.releases.values()), default="")
    return f"{max(stamp, newest)}-{mapping.digest()}"


def _parse_version(version: str) -> tuple[str, str]:
    stamp, sep, digest = version.partition("-")
    if not sep or len(digest) != 20 or not naming.RELEASE_ID_RE.fullmatch(f"{stamp}-000000"):
        raise ConfigError(f"bundle version {version!r} is not a version of this bundle (<T>-<digest>)")
    return stamp, digest


class S3ReleaseDagBundle(BaseDagBundle):
    """The committed releases of ``s3://<bucket>/<environment>/``, one immutable version per set of releases.

    :param bucket: the DAG bucket (read access only; the standard AWS chain, ``AWS_ENDPOINT_URL`` works)
    :param environment: the environment prefix (``dev``, ``prod`` ...)
    :param max_delete_fraction: the sidecar's mass-delete guard, per refresh
    :param workers: parallel GETs when materializing
    """

    supports_versioning = True
    keep_trees = 3  # dag-processor trees kept: the current one and those a parse in flight may still read
    cache_grace = 3600.0  # seconds a cached object no tree links any more is kept for the next version

    def __init__(
        self,
        *,
        bucket: str,
        environment: str,
        max_delete_fraction: float = 0.5,
        workers: int = 16,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        why = naming.check_environment(environment)
        if why or not bucket:
            raise ConfigError(f"bundle {self.name!r}: {why or 'bucket is empty'}")
        self.bucket, self.env = bucket, environment
        self.max_delete_fraction = max_delete_fraction
        self.workers = workers
        self.cache_dir = self.base_dir / "objects"
        self.records_dir = self.base_dir / "records"
        self.mappings_dir = self.base_dir / "mappings"
        self.tracking_dir = self.base_dir / "tracking"
        self.current_link = self.base_dir / "current"
        self._client: Any = None
        self._pointers: dict[str, tuple[str, str]] = {}  # package -> (metadata.json ETag, release id)
        self._memo: dict[tuple[str, str, bool], dict[str, str] | None] = {}  # immutable: by release id
        self._chains: dict[str, dict[str, releases.Release]] = {}  # package -> its last read record chain
        self.requests = {"LIST": 0, "GET": 0}  # what this instance asked S3 (benchmarks, logs)
        self._counting = threading.Lock()
        if self.version:
            _parse_version(self.version)
        if BundleVersion is None:
            log.warning(
                "bundle %s: this Airflow has no bundle version data (Airflow 3.3+ stores it); "
                "workers rebuild each version from S3 history alone",
                self.name,
            )

    # -- the BaseDagBundle interface ------------------------------------------------------------

    @property
    def path(self) -> Path:
        if self.version:
            return self.versions_dir / self.version
        return self.current_link

    def get_current_version(self) -> Any:
        version = self.version or self._current_version()
        if version is None:
            return None
        mapping = self._local_mapping(version)
        if BundleVersion is None:
            return version
        return BundleVersion(version=version, data=mapping.to_data() if mapping else None)

    def initialize(self) -> None:
        with self.lock():
            if self.version:
                self._materialize_version(self.version)
            elif self._current_version() is None:
                self._refresh()
        super().initialize()

    def refresh(self) -> None:
        if self.version:
            raise ConfigError(f"bundle {self.name!r} is pinned at version {self.version}; it cannot refresh")
        with self.lock():
            self._refresh()

    # -- S3 -------------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3.client(max_pool_connections=self.workers)
        return self._client

    def _count(self, kind: str) -> None:
        with self._counting:
            self.requests[kind] += 1

    def _get(self, key: str, *, version_id: str | None = None, max_bytes: int | None = None) -> bytes:
        self._count("GET")
        fetched = s3.get(self.client, self.bucket, key, version_id=version_id, max_bytes=max_bytes)
        assert fetched is not None
        return fetched.data

    def _list(self, prefix: str) -> dict[str, s3.Listed]:
        return s3.list_objects(self.client, self.bucket, prefix, on_page=lambda: self._count("LIST"))

    def _packages(self) -> list[str]:
        self._count("LIST")
        return s3.list_prefixes(self.client, self.bucket, f"{self.env}/")

    def _chain(self, package: str) -> dict[str, releases.Release]:
        """The package's kept releases its current record names (itself and its ``history``), rebuilt
        whole; a ``stored`` one is read from its history object."""
        prefix = naming.package_prefix(self.env, package)
        self._count("GET")
        fetched = s3.get(
            self.client, self.bucket, prefix + naming.METADATA, max_bytes=_MAX_RECORD_BYTES, missing_ok=True
        )
        if fetched is None:
            return {}
        current = releases.Release.from_json(fetched.data, file=prefix + naming.METADATA)

        def load(release_id: str) -> releases.Release:
            key = prefix + naming.history_name(release_id)
            return releases.Release.from_json(self._get(key, max_bytes=_MAX_RECORD_BYTES), file=key)

        chain = {r.release_id: r for r in current.releases(load)}
        self._chains[package] = chain
        return chain

    def _history_ids(self, package: str) -> list[str]:
        """The release ids kept for ``package``, oldest first: its record's chain and its history objects."""
        chain = self._chains.get(package) or self._chain(package)
        prefix = naming.package_prefix(self.env, package) + naming.RELEASES_DIR + "/"
        ids: list[str] = []
        self._count("LIST")
        with s3.storage_errors(self.bucket, prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    rid = naming.release_id_of(obj["Key"][len(naming.package_prefix(self.env, package)) :])
                    if rid:
                        ids.append(rid)
        return sorted({*ids, *chain})

    # -- records and content, cached by immutable address ------------------------------------------

    def _record(self, package: str, release_id: str, *, raw: bytes | None = None) -> releases.Release:
        """The record of one release: from the local cache, the given bytes, the current record's
        history, or its history object."""
        path = self.records_dir / package / f"{release_id}.json"
        key = naming.package_prefix(self.env, package) + naming.history_name(release_id)
        if raw is None and path.is_file():
            raw = path.read_bytes()
        elif raw is None:  # the chain a version's rebuild just read has it (immutable, by release id)
            found = self._chains.get(package, {}).get(release_id) or self._chain(package).get(release_id)
            raw = found.whole().to_json() if found else self._get(key, max_bytes=_MAX_RECORD_BYTES)
        record = releases.Release.from_json(raw, file=key)
        if (record.package, record.environment, record.release_id) != (package, self.env, release_id):
            raise SyncError(
                f"{key}: release record names {record.package!r}/{record.release_id} in "
                f"{record.environment!r}; expected {package!r}/{release_id} in {self.env!r}"
            )
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            fs.atomic_write(path, raw, sync_dir=False)
        return record

    def _cached(self, sha: str) -> Path:
        return self.cache_dir / sha[:2] / sha

    def _fetch(self, wanted: dict[str, tuple[str, str | None]]) -> dict[str, Exception]:
        """Put every ``sha -> (key, version_id)`` not yet cached into the cache, verified; failures by sha."""
        missing = {sha: src for sha, src in wanted.items() if not self._cached(sha).is_file()}
        failures: dict[str, Exception] = {}

        def one(sha: str) -> None:
            key, version_id = missing[sha]
            data = self._get(key, version_id=version_id, max_bytes=MANIFEST_MAX_BYTES)
            if hashlib.sha256(data).hexdigest() != sha:
                raise SyncError(f"s3://{self.bucket}/{key}: content does not match the recorded sha256 {sha}")
            path = self._cached(sha)
            path.parent.mkdir(parents=True, exist_ok=True)
            fs.atomic_write(path, data, mode=0o444, sync_dir=False)

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = {sha: pool.submit(one, sha) for sha in sorted(missing)}
        for sha, future in futures.items():
            if future.exception() is not None:
                failures[sha] = future.exception()  # type: ignore[assignment]
        return failures

    # -- what a release serves --------------------------------------------------------------------

    def _served(self, record: releases.Release) -> tuple[dict[str, tuple[str, str | None]], list[str]]:
        """The manifests a release serves (``dags/<id>.json -> sha``) and the reasons for what it may not.

        The sidecar's rules: only ``dags/<dag_id>.json`` keys that belong to the package, within the
        size limit; a recorded ``.py`` must be its manifest's canonical stub (the bundle writes stubs
        itself). Content comes from the immutable object store, or for a 0.1 record from its ``dags/``
        key (verified by sha256 all the same).
        """
        prefix = naming.package_prefix(self.env, record.package)
        manifests = {rest for rest in record.files if rest.endswith(".json")}
        served: dict[str, tuple[str, str | None]] = {}
        refused: list[str] = []
        for rest, entry in sorted(record.files.items()):
            cls = classify_key(self.env, prefix + rest)
            if cls.kind != "dag":
                refused.append(f"{prefix}{rest}: {cls.reason or 'not a DAG file'}")
            elif rest.endswith(".py"):
                if entry.sha256 != canonical_stub(cls.name)[1] or naming.manifest_of(rest) not in manifests:
                    refused.append(f"{prefix}{rest}: not the canonical stub of a served manifest")
            elif entry.size > MANIFEST_MAX_BYTES:
                refused.append(f"{prefix}{rest}: manifest is larger than {MANIFEST_MAX_BYTES} bytes")
            else:
                served[rest] = (entry.sha256, entry.version_id)
        return served, refused

    def _sources(self, record: releases.Release, served: dict[str, tuple[str, str | None]]) -> dict:
        prefix = naming.package_prefix(self.env, record.package)
        if record.content == releases.CONTENT_OBJECTS:
            return {sha: (prefix + naming.object_name(sha), None) for sha, _ in served.values()}
        return {sha: (prefix + rest, vid) for rest, (sha, vid) in served.items()}

    def _package_files(self, record: releases.Release, *, check: bool) -> dict[str, str]:
        """``dags/<id>.json -> sha`` of a release whose content is cached, after the ownership check.

        A worker (``check`` False) skips the manifest check: it runs only the file Airflow names, which
        the dag-processor accepted, and the loader re-checks the manifest's package and DAG id at parse.
        """
        served, refused = self._served(record)
        for reason in refused:
            log.warning("bundle %s: refused %s", self.name, reason)
        out: dict[str, str] = {}
        prefix = naming.package_prefix(self.env, record.package)
        for rest, (sha, _) in served.items():
            if not check:
                out[rest] = sha
                continue
            raw = self._cached(sha).read_bytes()
            verdict = check_manifest(
                raw, key=prefix + rest, package=record.package, stem=naming.dag_id_of(rest)
            )
            if verdict.serve:
                out[rest] = sha
            else:
                log.warning("bundle %s: refused %s%s: %s", self.name, prefix, rest, verdict.reason)
        return out

    def _load_package(
        self, package: str, release_id: str, raw: bytes | None = None, *, check: bool = True
    ) -> dict[str, str] | None:
        """Fetch a release's content; its served files, or None (tombstone). Raises when unservable."""
        memo = (package, release_id, check)
        if memo in self._memo:
            return self._memo[memo]
        record = self._record(package, release_id, raw=raw)
        if record.tombstone:
            self._memo[memo] = None
            return None
        served, _ = self._served(record)
        failures = self._fetch(self._sources(record, served))
        if failures:
            sha, exc = sorted(failures.items())[0]
            raise SyncError(
                f"release {release_id} of {package!r} is unservable: {len(failures)} object(s) failed, e.g. {sha}: {exc}"
            )
        self._memo[memo] = self._package_files(record, check=check)
        return self._memo[memo]

    # -- materializing a tree ----------------------------------------------------------------------

    def _build(
        self,
        mapping: Mapping,
        files: dict[str, dict[str, str]],
        dest: Path,
        previous: Path | None,
        *,
        lazy: dict[str, dict[str, tuple[str, str | None]]] | None = None,
    ) -> None:
        """Write the tree of a version at ``dest`` (atomically: built beside it, then renamed).

        Manifests are hard links into the content cache; a stub is hard-linked from ``previous`` when
        its manifest is the same there (same mtime: Airflow does not reparse it), else written anew, after
        its manifest, so Airflow reparses it now. With ``lazy`` (a worker: package -> sha -> source), a
        manifest the cache lacks is listed as pending (:mod:`dagfactory_s3.pending`) instead, fetched
        when its stub is parsed.
        """
        temp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        shutil.rmtree(temp, ignore_errors=True)
        temp.mkdir(parents=True)
        for package in sorted(files):
            dags = temp / package / naming.DAGS_DIR
            dags.mkdir(parents=True)
            (temp / package / naming.SYNC_IGNORE_FILE).write_bytes(_PACKAGE_IGNORE)
            refused = set(mapping.refused.get(package, ()))
            waiting: dict[str, tuple[str, str, str | None]] = {}
            for rest, sha in sorted(files[package].items()):
                dag_id = naming.dag_id_of(rest)
                if dag_id in refused:
                    continue
                name = rest.rpartition("/")[2]
                if lazy is not None and not self._cached(sha).is_file():
                    waiting[name] = (sha, *lazy[package][sha])
                else:
                    os.link(self._cached(sha), dags / name)
                stub_name = naming.stub_of(name)
                old = previous / package / naming.DAGS_DIR if previous else None
                if old and _same_file(old / name, self._cached(sha)) and (old / stub_name).is_file():
                    os.link(old / stub_name, dags / stub_name)
                else:
                    (dags / stub_name).write_bytes(canonical_stub(stub_name)[0])
            if waiting:
                pending.write(dags.parent, bucket=self.bucket, cache=self.cache_dir, files=waiting)
        fs.fsync_dir(temp)
        os.rename(temp, dest)

    def _materialize_version(self, version: str) -> None:
        """A worker's ``initialize()``: the tree of ``version`` in ``versions/<version>``, once per machine."""
        dest = self.versions_dir / version
        if dest.is_dir():
            return
        start = time.monotonic()
        mapping = self._local_mapping(version) or self._resolve(version)
        names = sorted(mapping.releases)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:  # records first, then all content at once
            records = list(pool.map(lambda p: self._record(p, mapping.releases[p]), names))
        files = {r.package: self._package_files(r, check=False) for r in records if not r.tombstone}
        sources = {r.package: self._sources(r, self._served(r)[0]) for r in records if not r.tombstone}
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._save_mapping(version, mapping)
        self._build(mapping, files, dest, None, lazy=sources)
        log.info(
            "bundle %s: materialized version %s (%d packages, %s requests) in %.2fs",
            self.name,
            version,
            len(files),
            self.requests,
            time.monotonic() - start,
        )

    # -- the dag-processor's refresh -----------------------------------------------------------------

    def _current_version(self) -> str | None:
        with contextlib.suppress(OSError):
            return os.readlink(self.current_link).rpartition("/")[2] or None
        return None

    def _refresh(self) -> None:
        """Read every package's release pointer, build the next version, and switch ``current`` to it."""
        at = time.time()  # before the listing: every release it shows has an id no later than this
        listing = self._list(f"{self.env}/")
        current = self._current_version()
        previous = self._local_mapping(current) if current else None
        before = previous.releases if previous else {}
        pointers = {}
        for key, obj in listing.items():
            cls = classify_key(self.env, key)
            if cls.kind == "metadata":
                pointers[cls.package] = obj
        releases_now: dict[str, str] = {}
        files: dict[str, dict[str, str]] = {}
        for package in sorted(set(pointers) | set(before)):
            try:
                if package not in pointers:
                    continue  # gone from S3: dropped, unless the guard below keeps it
                release_id, raw = self._pointer(package, pointers[package])
                served = self._load_package(package, release_id, raw)
                releases_now[package] = release_id
                if served is not None:
                    files[package] = served
            except Exception as exc:  # one package's content must not cost the others their version
                self._keep(package, before, releases_now, files, f"{type(exc).__name__}: {exc}")
        self._guard(before, releases_now, files, previous)
        refused = self._claims(previous, files)
        mapping = Mapping(self.bucket, self.env, releases_now, refused)
        if (
            previous is not None
            and previous.releases == mapping.releases
            and previous.refused == mapping.refused
        ):
            return
        version = version_name(mapping, at)
        self._save_mapping(version, mapping)
        tree = self.tracking_dir / version
        if not tree.is_dir():
            old_tree = self.tracking_dir / current if current else None
            self._build(mapping, files, tree, old_tree if old_tree and old_tree.is_dir() else None)
        link = self.base_dir / f".current.tmp-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        os.symlink(os.path.join("tracking", version), link)
        os.rename(link, self.current_link)
        fs.fsync_dir(self.base_dir)
        log.info(
            "bundle %s: version %s serves %d package releases", self.name, version, len(mapping.releases)
        )
        self._clean(version)

    def _pointer(self, package: str, meta: s3.Listed) -> tuple[str, bytes | None]:
        """The release id ``metadata.json`` points at; a GET only when its ETag changed."""
        known = self._pointers.get(package)
        if known and known[0] == meta.etag:
            return known[1], None
        raw = self._get(meta.key, max_bytes=_MAX_RECORD_BYTES)
        record = releases.Release.from_json(raw, file=meta.key)
        self._pointers[package] = (meta.etag, record.release_id)
        return record.release_id, raw

    def _keep(self, package: str, before: dict[str, str], now: dict[str, str], files: dict, why: str) -> None:
        """Fail-static: a package whose release cannot be served keeps its previous one (whole)."""
        log.error("bundle %s: package %r keeps its previous release: %s", self.name, package, why)
        if package in before:
            with contextlib.suppress(Exception):
                served = self._load_package(package, before[package])
                now[package] = before[package]
                if served is not None:
                    files[package] = served

    def _guard(
        self, before: dict[str, str], now: dict[str, str], files: dict, previous: Mapping | None
    ) -> None:
        """The sidecar's mass-delete guard: when too many DAGs would go at once, packages that lose DAGs
        keep their previous release (retired packages, a tombstone, never count)."""
        if previous is None:
            return
        old_files: dict[str, dict[str, str]] = {}
        for package, release_id in before.items():
            try:
                old_files[package] = self._load_package(package, release_id) or {}
            except Exception:  # no longer servable: it cannot be kept either
                old_files[package] = {}
        served = sum(len(v) for v in old_files.values())
        losing = {
            p
            for p in before
            if not (p in now and self._record(p, now[p]).tombstone)
            and set(old_files[p]) - set(files.get(p, {}))
        }
        deleted = sum(len(set(old_files[p]) - set(files.get(p, {}))) for p in losing)
        added = sum(len(set(f) - set(old_files.get(p, {}))) for p, f in files.items())
        if too_many_deletions(served, deleted, added, self.max_delete_fraction):
            log.error(
                "bundle %s: refusing to delete %d of %d served DAGs in one refresh; packages %s keep their "
                "previous release (retire with a tombstone release, or raise max_delete_fraction)",
                self.name,
                deleted,
                served,
                sorted(losing),
            )
            for package in losing:
                now[package] = before[package]
                files[package] = old_files[package]

    def _claims(self, previous: Mapping | None, files: dict[str, dict[str, str]]) -> dict[str, list[str]]:
        """DAG ids a package may not serve because another package served them first (the sidecar's rule)."""
        claims: dict[str, str] = {}
        if previous is not None:
            prev_refused = {p: set(ids) for p, ids in previous.refused.items()}
            for package in sorted(previous.releases):
                for rest in files.get(package, {}):
                    dag_id = naming.dag_id_of(rest)
                    if dag_id not in prev_refused.get(package, set()) and package in files:
                        claims.setdefault(dag_id, package)
        refused: dict[str, list[str]] = {}
        for package in sorted(files):
            for rest in sorted(files[package]):
                holder = claim(claims, naming.dag_id_of(rest), package)
                if holder:
                    log.warning(
                        "bundle %s: dag_id %r is already served by package %r; refused for package %r",
                        self.name,
                        naming.dag_id_of(rest),
                        holder,
                        package,
                    )
                    refused.setdefault(package, []).append(naming.dag_id_of(rest))
        return refused

    # -- versions: local record, and rebuilt from S3 -------------------------------------------------

    def _save_mapping(self, version: str, mapping: Mapping) -> None:
        path = self.mappings_dir / f"{version}.json"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            fs.atomic_write(path, orjson.dumps(mapping.to_data(), option=orjson.OPT_INDENT_2))

    def _local_mapping(self, version: str) -> Mapping | None:
        path = self.mappings_dir / f"{version}.json"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        return Mapping.from_data(orjson.loads(raw), file=str(path))

    def _resolve(self, version: str) -> Mapping:
        """Rebuild the mapping of ``version`` from S3 history alone (a worker that never saw it)."""
        stamp, digest = _parse_version(version)
        packages = self._packages()
        names = [p for p in packages if not naming.check_package(p)]

        def recent(package: str) -> list[str]:
            """The record's chain (its newest releases, in order) when it reaches back to ``T``: the
            newest release not after ``T`` is then in it; else every kept id (a LIST)."""
            ids = sorted(self._chain(package))
            return ids if ids and ids[0].partition("-")[0] <= stamp else self._history_ids(package)

        def matches(candidate: dict[str, str]) -> bool:
            return Mapping(self.bucket, self.env, candidate).digest() == digest

        def newest_before(history: dict[str, list[str]]) -> dict[str, str]:
            guess = {}
            for package, ids in history.items():
                older = [i for i in ids if i.partition("-")[0] <= stamp]
                if older:
                    guess[package] = older[-1]
            return guess

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            history = dict(zip(names, pool.map(recent, names), strict=True))
        guess = newest_before(history)
        if matches(guess):
            return Mapping(self.bucket, self.env, guess)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:  # every kept release, then search
            history = dict(zip(names, pool.map(self._history_ids, names), strict=True))
        guess = newest_before(history)
        if matches(guess):
            return Mapping(self.bucket, self.env, guess)
        for package, ids in sorted(history.items()):  # a publish committed across T: one package differs
            for other in [None, *ids]:
                candidate = {p: r for p, r in guess.items() if p != package}
                if other is not None:
                    candidate[package] = other
                if matches(candidate):
                    return Mapping(self.bucket, self.env, candidate)
        raise SyncError(
            f"bundle version {version} cannot be rebuilt from s3://{self.bucket}/{self.env}/: no kept release "
            "history matches it (pruned by the publisher's --keep, or two packages committed across it)"
        )

    # -- cleanup -------------------------------------------------------------------------------------

    def _clean(self, current: str) -> None:
        """Old dag-processor trees (keep the newest few) and cached objects no tree links any more.

        Worker trees under ``versions/`` are Airflow's to remove (stale bundle cleanup, versioned bundles).
        """
        trees = sorted(p for p in self.tracking_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        for tree in trees[: -self.keep_trees]:
            if tree.name != current:
                shutil.rmtree(tree, ignore_errors=True)
        cutoff = time.time() - self.cache_grace
        for path in self.cache_dir.glob("*/*"):
            with contextlib.suppress(OSError):
                st = path.stat()
                if st.st_nlink == 1 and st.st_mtime < cutoff:
                    path.unlink()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
