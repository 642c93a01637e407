"""Versions of an environment's committed releases: what the versioned DAG bundle serves, without Airflow.

**A version** is the exact set of package releases served, ``package -> release_id`` (the *mapping*),
named ``<T>-<h>``: ``h`` is a digest of bucket, environment and the sorted
``package=release_id@content`` lines, where ``content`` digests what the release serves (each served
file's path and sha256, :func:`content_digest`), so a version names bytes, not only release ids: a
record rewritten under the same id does not match it. ``T`` is a release-id-style instant no earlier
than any release of the mapping and than the moment the mapping was read. The mapping is kept four
ways:

* in Airflow's own records (the bundle's ``BundleVersion`` data, Airflow 3.3+), which Airflow does not
  hand to workers;
* locally, in ``mappings/<version>.json``;
* in S3, in the version's index (:class:`Index`, ``s3://<bucket>/_bundle/<env>/versions/<h>.json``),
  written by the refreshing process with each new version: the mapping and each package's served
  manifests, so a worker lays the version out from one GET, no package's record read. A worker trusts
  it only when it verifies (the mapping's digest is ``h``, each package's files give its content
  digest); otherwise, or without one, the mapping is rebuilt:
* implicitly in S3: each package's current record carries the releases it replaced, and large ones
  are kept whole as immutable history objects (``_releases/<id>.json``), so a worker that has only
  the version string takes, per package, the newest kept release whose id is not after ``T`` and
  checks the digest (:meth:`ReleaseVersions.resolve`); when a publish committed across ``T`` it tries
  each package's other kept releases, one package at a time. When nothing matches (a package pruned,
  rewrote or deleted what the version named), each package runs its release current at ``T``, and a
  package that cannot be placed at ``T`` -- its record unreadable, or rewritten after ``T`` under an
  id not after ``T`` -- is left out: only its own tasks fail.

Nothing trusted here is written by the reader or shared between packages: each package's releases
come from its own prefix, which only its CI writes, so a package publishing changes only its own line
of the next mapping.

**Materializing** a version fetches only what the local content cache lacks
(:class:`~dagfactory_s3.serve.cache.ContentCache`), hard-links manifests from it and writes canonical
stubs itself. A worker's version fetches no manifest up front: those its cache lacks are listed as
pending and fetched one by one when the task runner parses their stub (:mod:`dagfactory_s3.pending`).
The serving rules are :mod:`dagfactory_s3.serve.rules`, the sidecar's: keys, canonical stubs only,
manifest ownership, DAG-id claims, the mass-delete guard, and fail-static (a package whose release
cannot be served keeps its previous release in the next version).

**The platform policy** (:mod:`dagfactory_s3.serve.policy`) is part of a version: the mapping names
the environment's policy (id and sha256) beside the releases, the tree serves it in
``_platform/policy.json``, and a worker rebuilds the policy current at ``T`` from the pointer's
history. A policy that cannot be read or parsed keeps the previous one in the next version; a worker
that cannot get the policy its version names fails the task start (fail closed: it never runs a
version without the policy it was parsed under).

**Push delivery** (a ``queue_url``): S3 event notifications of the environment reach an SQS queue
of the refreshing process's own (:mod:`dagfactory_s3.serve.events`). A daemon thread of that process
(:class:`EventPoller`, started by its first :meth:`ReleaseVersions.refresh` with ``push``)
long-polls it, and such a refresh then lists only the packages (and the policy pointer) the events
named, keeping every other package's line of the current mapping; with no event it asks S3 nothing
and keeps the version. A full listing still runs every ``full_refresh_interval``, first in each
process, and whenever the queue cannot be read. Messages are deleted only after the refresh that
used them served what they named; otherwise they come back after the queue's visibility timeout.

The layout under ``base_dir``: ``objects/`` (the content cache), ``records/`` (release records by id),
``mappings/``, ``tracking/<version>`` (the refreshing process's trees) and ``current`` (a symlink to
the newest tree); a worker's trees go to ``versions_dir/<version>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from dagfactory_s3 import fs, naming, pending, platform, s3
from dagfactory_s3 import release as releases
from dagfactory_s3.errors import ConfigError, StorageError, SyncError
from dagfactory_s3.manifest import MAX_BYTES as MANIFEST_MAX_BYTES
from dagfactory_s3.serve import events
from dagfactory_s3.serve import policy as policies
from dagfactory_s3.serve.cache import ContentCache
from dagfactory_s3.serve.rules import (
    MAX_RECORD_BYTES,
    ServedFile,
    canonical_stub,
    check_manifest,
    claim,
    classify_key,
    read_record,
    served_files,
    too_many_deletions,
)

__all__ = [
    "MAPPING_FORMAT",
    "EventPoller",
    "Mapping",
    "ReleaseVersions",
    "claims",
    "content_digest",
    "deletions_to_keep",
    "parse_version",
    "search",
    "version_name",
]

log = logging.getLogger("dagfactory_s3.bundle")  # the bundle's log lines, under the name operators configure

MAPPING_FORMAT = "dagfactory-s3/bundle-version@1"
_PACKAGE_IGNORE = naming.SYNC_IGNORE_HEADER + b": a package folder of the S3ReleaseDagBundle\n"

Files = dict[str, dict[str, str]]  # package -> dags/<id>.json -> sha256
# The platform policy's line in a mapping: its policy id among the releases, its sha256 among the
# contents (so a version names the policy's bytes too, and a run keeps the policy it started with).
PLATFORM = policies.PLATFORM_DIR  # also what an event names for the policy pointer (events.POLICY)


@dataclass(frozen=True)
class Mapping:
    """What a version serves: ``releases`` (package -> release id), their ``contents`` (package ->
    :func:`content_digest`) and DAG ids ``refused`` to a package because another package was serving
    them first (package -> sorted ids). A mapping without ``contents`` was named by dagfactory-s3
    before versions named bytes: its digest covers the release ids alone."""

    bucket: str
    environment: str
    releases: dict[str, str]
    refused: dict[str, list[str]] = field(default_factory=dict)
    contents: dict[str, str] = field(default_factory=dict)

    def digest(self) -> str:
        def line(package: str, release_id: str) -> str:
            return (
                f"{package}={release_id}@{self.contents[package]}"
                if self.contents
                else f"{package}={release_id}"
            )

        lines = [self.bucket, self.environment] + [line(p, r) for p, r in sorted(self.releases.items())]
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:20]

    def to_data(self) -> dict[str, Any]:
        data = {
            "format": MAPPING_FORMAT,
            "bucket": self.bucket,
            "environment": self.environment,
            "releases": dict(sorted(self.releases.items())),
            "refused": {p: sorted(ids) for p, ids in sorted(self.refused.items()) if ids},
        }
        if self.contents:
            data["contents"] = dict(sorted(self.contents.items()))
        return data

    @classmethod
    def from_data(cls, data: Any, *, file: str) -> Mapping:
        if not isinstance(data, dict) or data.get("format") != MAPPING_FORMAT:
            raise ConfigError(f"{file}: not a bundle version of format {MAPPING_FORMAT!r}")
        rel, ref, con = data.get("releases"), data.get("refused", {}), data.get("contents", {})
        if not isinstance(rel, dict) or not isinstance(ref, dict) or not isinstance(con, dict):
            raise ConfigError(f"{file}: releases, refused and contents must be objects")
        for package, release_id in rel.items():
            naming.history_name(release_id)  # ConfigError on a malformed id
            if package != PLATFORM and naming.check_package(package):
                raise ConfigError(f"{file}: {naming.check_package(package)}")
        if con and set(con) != set(rel):
            raise ConfigError(f"{file}: contents must name the same packages as releases")
        return cls(str(data.get("bucket")), str(data.get("environment")), dict(rel), dict(ref), dict(con))


def content_digest(record: releases.Release, environment: str) -> str:
    """What a release serves, by bytes: a digest of each served file's path and sha256 (the serving
    rules decide which), or ``tombstone``. Two records of one release id that serve different bytes
    have different content digests."""
    if record.tombstone:
        return "tombstone"
    served, _ = served_files(record, environment)
    return _files_digest((f.rest, f.sha256) for f in served)


def _files_digest(files: Iterable[tuple[str, str]]) -> str:
    """The content digest of served files given as ``(dags/<name>, sha256)``."""
    lines = sorted(f"{rest}={sha}" for rest, sha in files)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def version_name(mapping: Mapping, at: float) -> str:
    """``<T>-<digest>``: path-safe, sortable by time; ``T`` is not before ``at`` nor any release's id."""
    stamp = (
        datetime.fromtimestamp(at, timezone.utc).strftime("%Y%m%dT%H%M%S.") + f"{int(at * 1000) % 1000:03d}Z"
    )
    newest = max((r.partition("-")[0] for r in mapping.releases.values()), default="")
    return f"{max(stamp, newest)}-{mapping.digest()}"


def parse_version(version: str) -> tuple[str, str]:
    """``(T, digest)`` of a version name; ConfigError when it is not one."""
    stamp, sep, digest = version.partition("-")
    if not sep or len(digest) != 20 or not naming.RELEASE_ID_RE.fullmatch(f"{stamp}-000000"):
        raise ConfigError(f"bundle version {version!r} is not a version of this bundle (<T>-<digest>)")
    return stamp, digest


INDEX_FORMAT = "dagfactory-s3/bundle-index@1"
INDEX_DIR = "_bundle"  # s3://<bucket>/_bundle/<env>/versions/<digest>.json: outside every <env>/ listing
MAX_INDEX_BYTES = 64 * 1024 * 1024


def index_key(environment: str, digest: str) -> str:
    """Where the version index of a mapping with ``digest`` lives: content-addressed, at the bucket's
    root so that no listing of ``<env>/`` (the sidecar's, the bundle's) ever pages through them."""
    return f"{INDEX_DIR}/{environment}/versions/{digest}.json"


@dataclass(frozen=True)
class Index:
    """A version's mapping and, per package whose release serves immutable content objects, its served
    manifests (``dags/<id>.json -> (sha256, S3 version id)``): all a worker needs to lay out the
    version's tree without reading any package's record. Verified against the version's digest and
    each package's content digest, so whoever could write it can only make it unusable."""

    mapping: Mapping
    files: dict[str, dict[str, tuple[str, str | None]]]

    def to_json(self) -> bytes:
        files = {
            p: {
                rest: {"sha256": sha, **({"version_id": vid} if vid else {})}
                for rest, (sha, vid) in e.items()
            }
            for p, e in sorted(self.files.items())
        }
        return orjson.dumps(
            {"format": INDEX_FORMAT, "mapping": self.mapping.to_data(), "files": files},
            option=orjson.OPT_SORT_KEYS,
        )

    @classmethod
    def from_json(cls, raw: bytes, *, file: str, bucket: str, environment: str, digest: str) -> Index:
        """The index in ``raw``; ConfigError naming what does not hold."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{file}: not JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT:
            raise ConfigError(f"{file}: not a bundle version index of format {INDEX_FORMAT!r}")
        mapping = Mapping.from_data(doc.get("mapping"), file=file)
        if (mapping.bucket, mapping.environment) != (bucket, environment):
            raise ConfigError(
                f"{file}: names s3://{mapping.bucket}/{mapping.environment}/, not this bundle's"
            )
        if not mapping.contents or mapping.digest() != digest:
            raise ConfigError(f"{file}: its mapping does not have the version's digest {digest}")
        raw_files = doc.get("files")
        if not isinstance(raw_files, dict):
            raise ConfigError(f"{file}: files must be an object")
        files: dict[str, dict[str, tuple[str, str | None]]] = {}
        for package, entries in raw_files.items():
            if package == PLATFORM or package not in mapping.releases or not isinstance(entries, dict):
                raise ConfigError(f"{file}: /files/{package}: not a package of the version")
            prefix = naming.package_prefix(environment, package)
            out: dict[str, tuple[str, str | None]] = {}
            for rest, entry in entries.items():
                sha = entry.get("sha256") if isinstance(entry, dict) else None
                vid = entry.get("version_id") if isinstance(entry, dict) else None
                if (
                    classify_key(environment, prefix + str(rest)).kind != "dag"
                    or not str(rest).endswith(".json")
                    or not isinstance(sha, str)
                    or not naming.SHA256_RE.fullmatch(sha)
                    or not (vid is None or isinstance(vid, str))
                ):
                    raise ConfigError(f"{file}: /files/{package}/{rest}: not a served manifest entry")
                out[rest] = (sha, vid)
            if _files_digest((rest, sha) for rest, (sha, _) in out.items()) != mapping.contents[package]:
                raise ConfigError(f"{file}: /files/{package}: does not serve what the version names")
            files[package] = out
        return cls(mapping, files)


Content = Callable[[str, str], str]  # (package, release id) -> content_digest of that release


def search(
    bucket: str,
    environment: str,
    history: dict[str, list[str]],
    stamp: str,
    digest: str,
    *,
    deep: bool,
    exact: bool = True,
    content: Content | None = None,
) -> Mapping | None:
    """The mapping named by ``(stamp, digest)`` among the kept releases ``history`` (package -> ids,
    oldest first): per package the newest release not after ``stamp``; with ``deep``, also each
    mapping that differs from it in one package (a publish that committed across ``stamp``). Not
    ``exact``: the newest releases not after ``stamp``, whatever the digest.

    ``content`` gives a release's :func:`content_digest`: a candidate matches when its releases *and*
    their contents give the digest (or, for a version named before versions named bytes, its
    releases alone). A release whose content cannot be read matches nothing."""

    def matches(candidate: dict[str, str]) -> Mapping | None:
        named = Mapping(bucket, environment, candidate)
        if named.digest() == digest:
            return named
        if content is None or not candidate:
            return None
        try:
            contents = {p: content(p, r) for p, r in candidate.items()}
        except Exception:  # an unreadable release is not the one the version named
            return None
        pinned = Mapping(bucket, environment, candidate, contents=contents)
        return pinned if pinned.digest() == digest else None

    guess = {}
    for package, ids in history.items():
        older = [i for i in ids if i.partition("-")[0] <= stamp]
        if older:
            guess[package] = older[-1]
    if not exact:
        return Mapping(bucket, environment, guess)
    if found := matches(guess):
        return found
    if not deep:
        return None
    for package, ids in sorted(history.items()):
        for other in [None, *ids]:
            candidate = {p: r for p, r in guess.items() if p != package}
            if other is not None:
                candidate[package] = other
            if found := matches(candidate):
                return found
    return None


def deletions_to_keep(
    old_files: Files, files: Files, now: dict[str, str], tombstones: set[str], fraction: float
) -> tuple[set[str], int, int]:
    """The mass-delete guard over two versions: ``(packages that must keep their previous release,
    DAGs deleted, DAGs served before)``; the set is empty when the deletions are within ``fraction``.
    Packages retired by a tombstone (``tombstones``) never count."""
    served = sum(len(v) for v in old_files.values())
    losing = {
        p
        for p in old_files
        if not (p in now and p in tombstones) and set(old_files[p]) - set(files.get(p, {}))
    }
    deleted = sum(len(set(old_files[p]) - set(files.get(p, {}))) for p in losing)
    added = sum(len(set(f) - set(old_files.get(p, {}))) for p, f in files.items())
    if too_many_deletions(served, deleted, added, fraction):
        return losing, deleted, served
    return set(), deleted, served


def claims(previous: Mapping | None, files: Files) -> tuple[dict[str, list[str]], list[tuple[str, str, str]]]:
    """DAG ids a package may not serve (the sidecar's rules): those a longer package name owns
    (:func:`~dagfactory_s3.naming.dag_id_owner`), and those another package served first:
    ``(package -> refused ids, [(dag_id, package, why)])``. The previous version's holders keep theirs."""
    held: dict[str, str] = {}
    packages = set(files)
    if previous is not None:
        prev_refused = {p: set(ids) for p, ids in previous.refused.items()}
        for package in sorted(previous.releases):
            for rest in files.get(package, {}):
                dag_id = naming.dag_id_of(rest)
                if dag_id not in prev_refused.get(package, set()) and not naming.foreign_owner(
                    dag_id, package, packages
                ):
                    held.setdefault(dag_id, package)
    refused: dict[str, list[str]] = {}
    collisions: list[tuple[str, str, str]] = []
    for package in sorted(files):
        for rest in sorted(files[package]):
            dag_id = naming.dag_id_of(rest)
            foreign = naming.foreign_owner(dag_id, package, packages)
            holder = claim(held, dag_id, package) if not foreign else None
            if foreign or holder:
                why = foreign or f"dag_id {dag_id!r} is already served by package {holder!r}"
                collisions.append((dag_id, package, f"{why}; refused for package {package!r}"))
                refused.setdefault(package, []).append(dag_id)
    return refused, collisions


class EventPoller:
    """A daemon thread that long-polls a bundle's queue and gathers what its messages name until a
    refresh takes it. It belongs to the process that started it (``pid``): threads do not survive a
    fork, so a forked child neither has one running nor touches this one's batch or lock."""

    def __init__(self, queue: events.Queue, *, name: str, wait_seconds: float, retry_seconds: float) -> None:
        self.queue, self.name = queue, name
        self.wait_seconds, self.retry_seconds = wait_seconds, retry_seconds
        self.pid = os.getpid()
        self.failing = False  # the last receive failed: refreshes list everything until one succeeds
        self._pending = events.Batch()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"dagfactory-s3-events-{name}", daemon=True)
        self._thread.start()

    @property
    def up(self) -> bool:
        return self._thread.is_alive() and not self.failing

    def take(self) -> events.Batch:
        """What the messages received since the last ``take`` name, with their receipts."""
        with self._lock:
            batch, self._pending = self._pending, events.Batch()
        return batch

    def stop(self) -> None:
        """Ask no more (a long poll in flight ends on its own)."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self.queue.receive(int(self.wait_seconds))
            except Exception as exc:  # StorageError, or anything else: the same fallback, never a dead thread
                if self._stop.is_set():
                    return
                if not self.failing:
                    log.error(
                        "bundle %s: event queue not read, refreshing from full listings until it answers: %s",
                        self.name,
                        exc,
                    )
                self.failing = True
                self._stop.wait(self.retry_seconds)
                continue
            with self._lock:
                self._pending.merge(batch)
                if self.failing:
                    log.info("bundle %s: event queue %s answers again", self.name, self.queue.url)
                self.failing = False


class ReleaseVersions:
    """The versions of ``s3://<bucket>/<environment>/`` kept under ``base_dir`` (see the module doc).

    ``name`` prefixes every log line (the bundle's name); ``requests`` counts what was asked of S3.
    With ``queue_url``, :meth:`refresh` with ``push`` follows the queue's events (the module doc).
    """

    keep_trees = 3  # refreshed trees kept: the current one and those a parse in flight may still read
    cache_grace = 3600.0  # seconds a cached object no tree links any more is kept for the next version
    wait_seconds = 20  # one receive's long poll: at idle, at most one SQS request per 20 s
    retry_seconds = 60.0  # a queue that could not be read is asked again after this

    def __init__(
        self,
        *,
        name: str,
        bucket: str,
        environment: str,
        base_dir: Path,
        versions_dir: Path,
        max_delete_fraction: float = 0.5,
        workers: int = 16,
        queue_url: str | None = None,
        full_refresh_interval: float | None = None,
        version_index: bool = True,
    ) -> None:
        why = naming.check_environment(environment)
        if why or not bucket:
            raise ConfigError(f"bundle {name!r}: {why or 'bucket is empty'}")
        if queue_url is not None and (not isinstance(queue_url, str) or not queue_url.strip()):
            raise ConfigError(
                f"bundle {name!r}: queue_url must be the URL of an SQS queue, got {queue_url!r}"
            )
        if full_refresh_interval is not None and not queue_url:
            raise ConfigError(
                f"bundle {name!r}: full_refresh_interval needs queue_url (without a queue every refresh "
                "is a full listing)"
            )
        if full_refresh_interval is not None and (
            isinstance(full_refresh_interval, bool)
            or not isinstance(full_refresh_interval, (int, float))
            or not full_refresh_interval > 0
        ):
            raise ConfigError(
                f"bundle {name!r}: full_refresh_interval must be a number of seconds > 0, "
                f"got {full_refresh_interval!r}"
            )
        if not isinstance(version_index, bool):
            raise ConfigError(f"bundle {name!r}: version_index must be true or false, got {version_index!r}")
        self.version_index = version_index
        self._index_warned = False
        self.queue_url = queue_url
        self.full_refresh_interval = float(full_refresh_interval or 300.0)
        self._poller: EventPoller | None = None
        self._full_at: float | None = None  # time.monotonic() of this poller's last full listing
        self._unserved: set[str] = set()  # packages (and PLATFORM) the last refresh could not serve anew
        self.name, self.bucket, self.env = name, bucket, environment
        self.max_delete_fraction = max_delete_fraction
        self.workers = workers
        self.base_dir, self.versions_dir = base_dir, versions_dir
        self.cache = ContentCache(base_dir / "objects")
        self.records_dir = base_dir / "records"
        self.mappings_dir = base_dir / "mappings"
        self.tracking_dir = base_dir / "tracking"
        self.current_link = base_dir / "current"
        self._client: Any = None
        self._pointers: dict[str, tuple[str, str]] = {}  # package -> (metadata.json ETag, release id)
        self._memo: dict[tuple[str, str, bool], dict[str, str] | None] = {}  # immutable: by release id
        # package -> its current record (None: it has none), read once, and that object's LastModified
        self._currents: dict[str, tuple[releases.Release | None, float]] = {}
        self._contents: dict[tuple[str, str], str] = {}  # (package, release id) -> content digest
        # (package, release id) -> its index entries, or None (not immutable content objects)
        self._indexed: dict[tuple[str, str], dict[str, tuple[str, str | None]] | None] = {}
        self._policy_pointer: tuple[str, str] | None = None  # (pointer ETag, policy id) last served
        self._policy_record: policies.PolicyRecord | None = None  # the policy pointer, once read
        self._policy_read = False
        self.requests = {"LIST": 0, "GET": 0, "PUT": 0}
        self._counting = threading.Lock()

    # -- what a caller asks -----------------------------------------------------------------------

    def current_version(self) -> str | None:
        """The version ``current`` points at (the newest refreshed), or None before the first refresh."""
        with contextlib.suppress(OSError):
            return os.readlink(self.current_link).rpartition("/")[2] or None
        return None

    def local_mapping(self, version: str) -> Mapping | None:
        path = self.mappings_dir / f"{version}.json"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        return Mapping.from_data(orjson.loads(raw), file=str(path))

    def refresh(self, *, push: bool = False) -> None:
        """Build the next version and switch ``current`` to it: from a listing of every package's release
        pointer, or -- ``push`` (the dag-processor's periodic refresh) with a queue -- from only what
        the queue's events named since the last refresh, and nothing at all when they named nothing."""
        poller = self._events() if push else None
        if poller is None:
            self._refresh(None)
            return
        full = (
            not poller.up
            or self._full_at is None
            or time.monotonic() - self._full_at >= self.full_refresh_interval
        )
        batch = poller.take()
        if not full and not batch.relevant:
            self._delete(poller, batch)  # foreign, malformed or not a commit point: nothing to refresh
            return
        started = time.monotonic()
        unserved = self._refresh(None if full else batch)  # raises: the messages stay in the queue
        if full:
            self._full_at = started
        named = batch.packages | ({PLATFORM} if batch.policy else set())
        if unserved & named:  # at least once: what they named is read again when they come back
            log.warning(
                "bundle %s: %d event message(s) left in the queue, %s not served anew; they come back "
                "after the queue's visibility timeout",
                self.name,
                batch.messages - len(batch.settled(unserved)),
                sorted(unserved & named),
            )
        self._delete(poller, batch, failed=unserved)

    def close(self) -> None:
        """Stop this process's queue poller, if any (the next refresh with ``push`` starts another)."""
        if self._poller is not None and self._poller.pid == os.getpid():
            self._poller.stop()
            self._poller = None

    def _events(self) -> EventPoller | None:
        """This process's queue poller, started by its first refresh; None without a queue, and in a
        forked child of a process that polls (the parent owns the queue's messages: the child refreshes
        from a full listing and never receives or deletes one)."""
        if not self.queue_url:
            return None
        if self._poller is None:
            queue = events.Queue(self.queue_url, self.bucket, self.env)
            self._poller = EventPoller(
                queue, name=self.name, wait_seconds=self.wait_seconds, retry_seconds=self.retry_seconds
            )
            self._full_at = None  # what happened before the poller started is known by a full listing
        if self._poller.pid != os.getpid():
            return None
        return self._poller

    def _delete(self, poller: EventPoller, batch: events.Batch, failed: Collection[str] = ()) -> None:
        """Delete the batch's messages but those naming one of ``failed`` (packages, the policy)."""
        if not batch.settled(failed):
            return
        try:
            poller.queue.delete(batch, failed=failed)
        except StorageError as exc:  # they come back: one more refresh of what they name
            log.warning("bundle %s: %s", self.name, exc)

    def _refresh(self, only: events.Batch | None) -> set[str]:
        """One refresh: every package (``only`` None) or the packages and policy ``only`` names, the
        others as the current version has them. Returns what kept its previous release because its
        own could not be served (packages, and PLATFORM for the policy)."""
        self._currents.clear()  # current records are read anew each refresh (releases are immutable)
        self._policy_read = False
        self._unserved = set()
        at = time.time()  # before the listing: every release it shows has an id no later than this
        current = self.current_version()
        previous = self.local_mapping(current) if current else None
        before = previous.releases if previous else {}
        if previous is None:
            only = None  # nothing to keep: every package is read
        if only is None:
            listing = s3.list_objects(
                self.client, self.bucket, f"{self.env}/", on_page=lambda: self._count("LIST")
            )
        else:  # each named package's own prefix, one delimited page: its metadata.json and ETag
            prefixes = [naming.package_prefix(self.env, p) for p in sorted(only.packages)]
            if only.policy:
                prefixes.append(f"{self.env}/{PLATFORM}/")
            listing = {}
            for prefix in prefixes:
                listing.update(
                    s3.list_objects(
                        self.client,
                        self.bucket,
                        prefix,
                        delimiter="/",
                        on_page=lambda: self._count("LIST"),
                    )
                )
        pointers = {}
        for key, obj in listing.items():
            cls = classify_key(self.env, key)
            if cls.kind == "metadata":
                pointers[cls.package] = obj
        now: dict[str, str] = {}
        files: Files = {}
        for package in sorted(set(pointers) | set(before) - {PLATFORM}):
            try:
                if package in pointers:
                    release_id, raw = self._pointer(package, pointers[package])
                elif only is not None and package not in only.packages:
                    # no event named it: as the current version has it (its files are in memory)
                    release_id, raw = before[package], None
                else:
                    continue  # gone from S3: dropped, unless the guard below keeps it
                served = self._load_package(package, release_id, raw)
                now[package] = release_id
                if served is not None:
                    files[package] = served
            except Exception as exc:  # one package's content must not cost the others their version
                self._keep(package, before, now, files, f"{type(exc).__name__}: {exc}")
        self._guard(before, now, files, previous)
        if only is None or only.policy:
            pointer = listing.get(policies.pointer_key(self.env))
            policy_id = self._refresh_policy(pointer, before.get(PLATFORM))
        else:
            policy_id = before.get(PLATFORM)
        if policy_id:
            now[PLATFORM] = policy_id
        refused, collisions = claims(previous, files)
        for _dag_id, _package, why in collisions:
            log.warning("bundle %s: %s", self.name, why)
        if (
            previous is not None
            and previous.releases == now
            and previous.refused == {p: ids for p, ids in refused.items() if ids}
        ):
            return self._unserved
        kept = previous.contents if previous is not None else {}
        contents = {
            p: kept[p] if p == PLATFORM and before.get(p) == r and p in kept else self._content(p, r)
            for p, r in now.items()
        }
        mapping = Mapping(self.bucket, self.env, now, refused, contents)
        version = version_name(mapping, at)
        self._save_mapping(version, mapping)
        tree = self.tracking_dir / version
        if not tree.is_dir():
            self._write_index(mapping)  # before Airflow can name the version: a worker's one GET
            old_tree = self.tracking_dir / current if current else None
            if before.get(PLATFORM) != now.get(PLATFORM):
                old_tree = None  # another policy: every stub is written anew, so Airflow parses it now
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
        return self._unserved

    def materialize(self, version: str) -> Path:
        """A worker's tree of ``version`` in ``versions_dir/<version>``, built once per machine."""
        dest = self.versions_dir / version
        if dest.is_dir():
            return dest
        start = time.monotonic()
        mapping = self.local_mapping(version)
        index = self._read_index(version) if mapping is None and self.version_index else None
        if index is not None:
            mapping = index.mapping
        elif mapping is None:
            mapping = self.resolve(version)
        indexed = index.files if index is not None else {}
        names = sorted(
            p
            for p in mapping.releases
            if p != PLATFORM and p not in indexed and mapping.contents.get(p) != "tombstone"
        )
        with ThreadPoolExecutor(max_workers=self.workers) as pool:  # records first, then all content at once
            records = list(pool.map(lambda p: self._record(p, mapping.releases[p]), names))
        changed = [
            r.package
            for r in records
            if mapping.contents and self._content(r.package, r.release_id) != mapping.contents[r.package]
        ]
        if changed:  # the version names other bytes: those packages' tasks fail, the others run
            log.error(
                "bundle %s: version %s: package(s) %s serve other bytes than the version named; left out",
                self.name,
                version,
                changed,
            )
            records = [r for r in records if r.package not in changed]
        files = {r.package: self._package_files(r, check=False) for r in records if not r.tombstone}
        lazy = {r.package: self._served(r) for r in records if not r.tombstone}
        for package, entries in indexed.items():  # what the index names: no record read
            prefix = naming.package_prefix(self.env, package)
            files[package] = {rest: sha for rest, (sha, _) in entries.items()}
            lazy[package] = {
                sha: ServedFile(rest, prefix + rest, prefix + naming.object_name(sha), sha, 0, vid)
                for rest, (sha, vid) in entries.items()
            }
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._save_mapping(version, mapping)
        self._build(mapping, files, dest, None, lazy=lazy)
        log.info(
            "bundle %s: materialized version %s (%d packages, %s requests) in %.2fs",
            self.name,
            version,
            len(files),
            self.requests,
            time.monotonic() - start,
        )
        return dest

    def resolve(self, version: str) -> Mapping:
        """Rebuild the mapping of ``version`` from S3 history alone (a worker that never saw it)."""
        stamp, digest = parse_version(version)
        self._count("LIST")
        names = [
            p
            for p in s3.list_prefixes(self.client, self.bucket, f"{self.env}/")
            if not naming.check_package(p)
        ]

        def recent(package: str) -> list[str]:
            """The ids the current record names (no history object read) when they reach back to
            ``T``: the newest release not after ``T`` is then among them; else every kept id (a LIST).
            A package whose record cannot be read is that package's problem: its history objects
            alone are listed, and the other packages are not held up."""
            try:
                ids = sorted(self._ids(package))
            except Exception as exc:  # any package's bad record fails only that package
                log.warning(
                    "bundle %s: package %r: %s; rebuilding from its history objects", self.name, package, exc
                )
                unreadable.add(package)
                ids = []
            return ids if ids and ids[0].partition("-")[0] <= stamp else self._history_ids(package)

        unreadable: set[str] = set()

        policy_ids = self._policy_ids()  # the platform's, read first: without it no version is rebuilt
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            history = dict(zip(names, pool.map(recent, names), strict=True))
        if policy_ids:
            history[PLATFORM] = policy_ids
        found = search(self.bucket, self.env, history, stamp, digest, deep=False, content=self._content)
        if found is None:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:  # every kept release, then search
                history = dict(zip(names, pool.map(self._history_ids, names), strict=True))
            if policy_ids:
                history[PLATFORM] = policy_ids
            found = search(self.bucket, self.env, history, stamp, digest, deep=True, content=self._content)
        return found or self._current_at(version, stamp, history, unreadable)

    def _current_at(
        self, version: str, stamp: str, history: dict[str, list[str]], unreadable: set[str]
    ) -> Mapping:
        """No kept releases match ``version`` whole: a package pruned, rewrote or deleted what it named,
        or its record cannot be read. One package's objects must not stop every other package's
        tasks: each package runs its release current at ``stamp``. A package that cannot be placed
        at ``stamp`` is left out (its tasks fail to find their file): its record is unreadable, or
        its current record was written after ``stamp`` under an id not after it -- rewritten in place,
        or committed across ``stamp``, so the bytes the version named are not known."""
        guess = search(self.bucket, self.env, history, stamp, "", deep=False, exact=False)
        assert guess is not None
        stamp_at = naming.release_time(stamp)
        left_out = dict.fromkeys(sorted(unreadable), "its record cannot be read")
        for package, release_id in guess.releases.items():
            record, modified = self._currents.get(package, (None, 0.0))
            # LastModified is in whole seconds: a rewrite within T's own second is not told apart from a
            # commit just before T (the dag-processor read the record after T's listing began).
            if record is not None and record.release_id == release_id and modified > stamp_at:
                left_out[package] = f"its current record {release_id} was written after {stamp}"
            else:
                try:
                    self._content(package, release_id)
                except Exception as exc:  # what it named is gone: its tasks fail, the others run
                    left_out[package] = f"release {release_id} cannot be read ({exc})"
        releases_at = {p: r for p, r in guess.releases.items() if p not in left_out}
        if not releases_at:
            raise SyncError(
                f"bundle version {version} cannot be rebuilt from s3://{self.bucket}/{self.env}/: no kept "
                "release history matches it (pruned by the publisher's --keep, or deleted)"
            )
        log.error(
            "bundle %s: version %s does not match the releases kept in S3 whole; packages run their releases "
            "current at %s, except %s",
            self.name,
            version,
            stamp,
            "; ".join(f"{p} ({why})" for p, why in left_out.items()) or "none",
        )
        contents = {p: self._content(p, r) for p, r in releases_at.items()}
        return Mapping(self.bucket, self.env, releases_at, contents=contents)

    # -- S3 -------------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3.client(max_pool_connections=self.workers)
        return self._client

    def _count(self, kind: str) -> None:
        with self._counting:
            self.requests[kind] += 1

    def _get_record(self, key: str, *, missing_ok: bool = False) -> bytes | None:
        self._count("GET")
        fetched = s3.get(self.client, self.bucket, key, max_bytes=MAX_RECORD_BYTES, missing_ok=missing_ok)
        return fetched.data if fetched is not None else None

    def _current(self, package: str) -> releases.Release | None:
        """The package's current record (one GET per instance), checked to be the package's; None
        when the package has none."""
        if package not in self._currents:
            key = naming.package_prefix(self.env, package) + naming.METADATA
            self._count("GET")
            fetched = s3.get(self.client, self.bucket, key, max_bytes=MAX_RECORD_BYTES, missing_ok=True)
            record = (
                None
                if fetched is None
                else read_record(fetched.data, key=key, package=package, environment=self.env)
            )
            self._currents[package] = (record, fetched.modified if fetched else 0.0)
        return self._currents[package][0]

    def _ids(self, package: str) -> list[str]:
        """The release ids the package's current record names: itself and its history (no history
        object is read; a record naming thousands costs one GET)."""
        current = self._current(package)
        return current.release_ids() if current is not None else []

    history_pages = 10  # LIST pages of one package's history objects a rebuild reads at most

    def _history_ids(self, package: str) -> list[str]:
        """The release ids kept for ``package``, oldest first: its history objects (a LIST of at most
        :attr:`history_pages` pages), and the ids its current record names when that record can be
        read. A listing that fails or runs past the cap leaves that package the ids its record names."""
        prefix = naming.package_prefix(self.env, package)
        try:
            listing = s3.list_objects(
                self.client,
                self.bucket,
                prefix + naming.RELEASES_DIR + "/",
                delimiter="/",
                on_page=lambda: self._count("LIST"),
                max_pages=self.history_pages,
            )
        except Exception as exc:  # one package's history must not stop the others' rebuild
            log.warning("bundle %s: package %r: history not listed: %s", self.name, package, exc)
            listing = {}
        ids = {naming.release_id_of(key[len(prefix) :]) for key in listing}
        try:
            named = self._ids(package)
        except Exception:  # a bad current record: its history objects still stand
            named = []
        return sorted({*(i for i in ids if i), *named})

    def _load_history(self, package: str, release_id: str) -> releases.Release:
        key = naming.package_prefix(self.env, package) + naming.history_name(release_id)
        raw = self._get_record(key)
        assert raw is not None
        return read_record(raw, key=key, package=package, environment=self.env, release_id=release_id)

    # -- records and content, cached by immutable address ------------------------------------------

    def _record(self, package: str, release_id: str, *, raw: bytes | None = None) -> releases.Release:
        """The record of one release: from the local cache, the given bytes, the current record's
        history, or its history object."""
        path = self.records_dir / package / f"{release_id}.json"
        key = naming.package_prefix(self.env, package) + naming.history_name(release_id)
        try:
            kept: bytes | None = path.read_bytes()  # the bytes first read for this id on this machine
        except FileNotFoundError:
            kept = None
        if raw is None and kept is None:  # the current record (at most one history object), else its own
            try:
                current = self._current(package)
            except Exception:  # a bad current record: the release's history object stands
                current = None
            found = (
                current.release(release_id, lambda rid: self._load_history(package, rid)) if current else None
            )
            raw = found.whole().to_json() if found else self._get_record(key)
            assert raw is not None
        if kept is None:
            assert raw is not None
            record = read_record(raw, key=key, package=package, environment=self.env, release_id=release_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            fs.atomic_write(path, raw, sync_dir=False)
            return record
        first = read_record(kept, key=key, package=package, environment=self.env, release_id=release_id)
        if raw is not None and raw != kept:
            record = read_record(raw, key=key, package=package, environment=self.env, release_id=release_id)
            if content_digest(first, self.env) != content_digest(record, self.env):
                log.error(
                    "bundle %s: package %r rewrote release %s in place; the bytes first read stay served",
                    self.name,
                    package,
                    release_id,
                )
        return first

    def _content(self, package: str, release_id: str) -> str:
        """The content digest of one release (its record read once per machine); for the platform
        policy, the sha256 of its bytes."""
        memo = (package, release_id)
        if memo not in self._contents:
            if package == PLATFORM:
                self._contents[memo] = self._policy_entry(release_id).sha256
            else:
                self._contents[memo] = content_digest(self._record(package, release_id), self.env)
        return self._contents[memo]

    # -- the platform policy ------------------------------------------------------------------------

    def _read_policy_record(self) -> policies.PolicyRecord | None:
        """The environment's policy pointer, read once per refresh (a worker: once)."""
        if not self._policy_read:
            self._count("GET")
            self._policy_record, _ = policies.read_record(self.client, self.bucket, self.env)
            self._policy_read = True
        return self._policy_record

    def _policy_ids(self) -> list[str]:
        record = self._read_policy_record()
        return sorted(e.policy_id for e in record.entries()) if record else []

    def _policy_entry(self, policy_id: str) -> policies.PolicyEntry:
        record = self._read_policy_record()
        entry = record.entry(policy_id) if record else None
        if entry is None:
            raise SyncError(
                f"platform policy {policy_id} is not kept in s3://{self.bucket}/{policies.pointer_key(self.env)}"
            )
        return entry

    def _cache_policy(self, policy_id: str, sha: str) -> Path:
        """The policy's verified bytes in the content cache (fetched when missing), checked to parse."""
        path = self.cache.path(sha)
        pointer = self._policy_record
        if self.cache.has(sha, verify=True):
            pass
        elif pointer is not None and pointer.content is not None and pointer.current.sha256 == sha:
            self.cache.put(sha, pointer.content, source=policies.pointer_key(self.env))  # carried: no GET
        else:
            self.cache.fetch(
                self.client,
                self.bucket,
                policies.object_key(self.env, sha),
                sha,
                max_bytes=policies.MAX_POLICY_BYTES,
                on_get=lambda: self._count("GET"),
            )
        platform.parse(path.read_bytes(), policies.label(self.env, policy_id))  # ConfigError: not served
        return path

    def _refresh_policy(self, pointer: s3.Listed | None, previous: str | None) -> str | None:
        """The policy the next version serves: the pointer's current one (read when its ETag changed),
        else -- no pointer, or one that cannot be read, verified or parsed -- the previous version's."""
        if pointer is None:
            return previous
        if self._policy_pointer and self._policy_pointer[0] == pointer.etag:
            return self._policy_pointer[1]
        try:
            record = self._read_policy_record()
            assert record is not None, "the pointer is gone"
            self._cache_policy(record.current.policy_id, record.current.sha256)
        except Exception as exc:  # fail-static: the platform's rules never drop to the default
            self._unserved.add(PLATFORM)
            log.error(
                "bundle %s: platform policy at %s not served, %s: %s",
                self.name,
                pointer.key,
                f"keeping {previous}" if previous else "none served yet",
                exc,
            )
            return previous
        self._policy_pointer = (pointer.etag, record.current.policy_id)
        if record.current.policy_id != previous:
            log.info("bundle %s: platform policy %s", self.name, record.current.policy_id)
        return record.current.policy_id

    def _served(self, record: releases.Release) -> dict[str, ServedFile]:
        """The manifests a release serves by sha256 (the serving rules); refusals are logged."""
        served, refused = served_files(record, self.env)
        for no in refused:
            log.warning("bundle %s: refused %s: %s", self.name, no.key, no.reason)
        return {f.sha256: f for f in served}

    def _fetch(self, wanted: dict[str, ServedFile]) -> dict[str, Exception]:
        """Put every served file not yet cached into the cache, verified; failures by sha256."""
        missing = {sha: f for sha, f in wanted.items() if not self.cache.has(sha, verify=True)}

        def one(f: ServedFile) -> None:
            self.cache.fetch(
                self.client,
                self.bucket,
                f.source,
                f.sha256,
                version_id=f.version_id,
                max_bytes=MANIFEST_MAX_BYTES,
                on_get=lambda: self._count("GET"),
            )

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = {sha: pool.submit(one, missing[sha]) for sha in sorted(missing)}
        return {sha: exc for sha, future in futures.items() if (exc := future.exception()) is not None}

    def _package_files(self, record: releases.Release, *, check: bool) -> dict[str, str]:
        """``dags/<id>.json -> sha`` of a release whose content is cached, after the ownership check.

        A worker (``check`` False) skips the manifest check: it runs only the file Airflow names, which
        the dag-processor accepted, and the loader re-checks the manifest's package and DAG id at parse.
        """
        out: dict[str, str] = {}
        for f in sorted(self._served(record).values(), key=lambda f: f.rest):
            if not check:
                out[f.rest] = f.sha256
                continue
            raw = self.cache.path(f.sha256).read_bytes()
            verdict = check_manifest(
                raw, key=f.key, package=record.package, stem=naming.dag_id_of(f.rest), full=False
            )
            if verdict.serve:
                out[f.rest] = f.sha256
            else:
                log.warning("bundle %s: refused %s: %s", self.name, f.key, verdict.reason)
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
        failures = self._fetch(self._served(record))
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
        files: Files,
        dest: Path,
        previous: Path | None,
        *,
        lazy: dict[str, dict[str, ServedFile]] | None = None,
    ) -> None:
        """Write the tree of a version at ``dest`` (atomically: built beside it, then renamed).

        Manifests are hard links into the content cache; a stub is hard-linked from ``previous`` when
        its manifest is the same there (same mtime: Airflow does not reparse it), else written anew, after
        its manifest, so Airflow reparses it now. With ``lazy`` (a worker: package -> sha -> served
        file), a manifest the cache lacks is listed as pending (:mod:`dagfactory_s3.pending`) instead,
        fetched when its stub is parsed.
        """
        temp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        shutil.rmtree(temp, ignore_errors=True)
        temp.mkdir(parents=True)
        if PLATFORM in mapping.releases:  # before the stubs: every parse of this tree reads it
            policy_id, sha = mapping.releases[PLATFORM], mapping.contents[PLATFORM]
            cached = self._cache_policy(policy_id, sha)
            folder = temp / PLATFORM
            folder.mkdir()
            os.link(cached, folder / policies.POINTER)
            (folder / policies.SERVED_ID).write_bytes(f"{policy_id} {self.env}\n".encode())
        for package in sorted(files):
            dags = temp / package / naming.DAGS_DIR
            dags.mkdir(parents=True)
            (temp / package / naming.SYNC_IGNORE_FILE).write_bytes(_PACKAGE_IGNORE)
            refused = set(mapping.refused.get(package, ()))
            waiting: dict[str, tuple[str, str, str | None]] = {}
            for rest, sha in sorted(files[package].items()):
                if naming.dag_id_of(rest) in refused:
                    continue
                name = rest.rpartition("/")[2]
                cached = self.cache.path(sha)
                held = self.cache.has(sha, verify=True)  # a version names bytes: linked only while held
                if held:
                    os.link(cached, dags / name)
                elif lazy is not None:  # a worker fetches it when its stub is parsed
                    f = lazy[package][sha]
                    waiting[name] = (sha, f.source, f.version_id)
                else:
                    self._memo = {k: v for k, v in self._memo.items() if k[0] != package}  # fetch anew
                    raise SyncError(
                        f"cached object {sha} of package {package!r} changed on disk; fetched again next refresh"
                    )
                stub_name = naming.stub_of(name)
                old = previous / package / naming.DAGS_DIR if previous else None
                if old and _same_file(old / name, cached) and (old / stub_name).is_file():
                    os.link(old / stub_name, dags / stub_name)
                else:
                    (dags / stub_name).write_bytes(canonical_stub(stub_name)[0])
            if waiting:
                pending.write(dags.parent, bucket=self.bucket, cache=self.cache.root, files=waiting)
        fs.fsync_dir(temp)
        os.rename(temp, dest)

    # -- the refresh's steps ---------------------------------------------------------------------------

    def _pointer(self, package: str, meta: s3.Listed) -> tuple[str, bytes | None]:
        """The release id ``metadata.json`` points at; a GET only when its ETag changed."""
        known = self._pointers.get(package)
        if known and known[0] == meta.etag:
            return known[1], None
        raw = self._get_record(meta.key)
        assert raw is not None
        record = read_record(raw, key=meta.key, package=package, environment=self.env)
        self._pointers[package] = (meta.etag, record.release_id)
        if known and known[1] == record.release_id:  # rewritten under the same id: the first bytes stand
            self._record(package, record.release_id, raw=raw)
            return record.release_id, None
        return record.release_id, raw

    def _keep(
        self, package: str, before: dict[str, str], now: dict[str, str], files: Files, why: str
    ) -> None:
        """Fail-static: a package whose release cannot be served keeps its previous one (whole)."""
        log.error("bundle %s: package %r keeps its previous release: %s", self.name, package, why)
        self._unserved.add(package)
        if package in before:
            with contextlib.suppress(Exception):
                served = self._load_package(package, before[package])
                now[package] = before[package]
                if served is not None:
                    files[package] = served

    def _guard(
        self, before: dict[str, str], now: dict[str, str], files: Files, previous: Mapping | None
    ) -> None:
        """The sidecar's mass-delete guard: when too many DAGs would go at once, packages that lose DAGs
        keep their previous release (retired packages, a tombstone, never count)."""
        if previous is None:
            return
        before = {p: r for p, r in before.items() if p != PLATFORM}
        old_files: Files = {}
        for package, release_id in before.items():
            try:
                old_files[package] = self._load_package(package, release_id) or {}
            except Exception:  # no longer servable: it cannot be kept either
                old_files[package] = {}
        tombstones = {p for p in before if p in now and self._record(p, now[p]).tombstone}
        keep, deleted, served = deletions_to_keep(old_files, files, now, tombstones, self.max_delete_fraction)
        if keep:
            log.error(
                "bundle %s: refusing to delete %d of %d served DAGs in one refresh; packages %s keep their "
                "previous release (retire with a tombstone release, or raise max_delete_fraction)",
                self.name,
                deleted,
                served,
                sorted(keep),
            )
            for package in keep:
                now[package] = before[package]
                files[package] = old_files[package]

    def _save_mapping(self, version: str, mapping: Mapping) -> None:
        path = self.mappings_dir / f"{version}.json"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            fs.atomic_write(path, orjson.dumps(mapping.to_data(), option=orjson.OPT_INDENT_2))

    def _write_index(self, mapping: Mapping) -> None:
        """Put the version index of ``mapping`` (see :class:`Index`): each package serving immutable
        content objects with its manifests. One PUT per new version; a failure costs only the workers'
        speed (they rebuild the version from history), so it is logged, once until a write succeeds."""
        if not self.version_index:
            return
        files: dict[str, dict[str, tuple[str, str | None]]] = {}
        for package, release_id in mapping.releases.items():
            if package == PLATFORM or mapping.contents.get(package) == "tombstone":
                continue
            memo = (package, release_id)
            if memo not in self._indexed:  # releases are immutable: each record is read once
                record = self._record(package, release_id)
                self._indexed[memo] = (
                    {f.rest: (f.sha256, f.version_id) for f in served_files(record, self.env)[0]}
                    if record.content == releases.CONTENT_OBJECTS
                    else None
                )
            if self._indexed[memo] is not None:
                files[package] = self._indexed[memo]
        key = index_key(self.env, mapping.digest())
        try:
            s3.put(
                self.client, self.bucket, key, Index(mapping, files).to_json(), ContentType="application/json"
            )
        except Exception as exc:  # read-only Airflow role, outage: workers fall back to history
            if not self._index_warned:
                log.warning(
                    "bundle %s: version index s3://%s/%s not written (%s); task starts rebuild each version "
                    "from every package's history instead (grant s3:PutObject on s3://%s/%s/%s/*, or set "
                    "version_index false: docs/bundle.md)",
                    self.name,
                    self.bucket,
                    key,
                    exc,
                    self.bucket,
                    INDEX_DIR,
                    self.env,
                )
                self._index_warned = True
            return
        self._count("PUT")
        self._index_warned = False

    def _read_index(self, version: str) -> Index | None:
        """The version's index (one GET), verified; None when it is missing, unreadable or does not
        match the version (logged): the worker then rebuilds the version from S3 history."""
        _, digest = parse_version(version)
        key = index_key(self.env, digest)
        self._count("GET")
        try:
            fetched = s3.get(self.client, self.bucket, key, max_bytes=MAX_INDEX_BYTES, missing_ok=True)
            if fetched is None:
                log.info("bundle %s: version %s has no index; rebuilding it from history", self.name, version)
                return None
            return Index.from_json(
                fetched.data,
                file=f"s3://{self.bucket}/{key}",
                bucket=self.bucket,
                environment=self.env,
                digest=digest,
            )
        except Exception as exc:
            log.warning(
                "bundle %s: version %s: index not used: %s; rebuilding it from history",
                self.name,
                version,
                exc,
            )
            return None

    def _clean(self, current: str) -> None:
        """Old refreshed trees (keep the newest few) and cached objects no tree links any more.

        Worker trees under ``versions_dir`` are Airflow's to remove (stale bundle cleanup).
        """
        trees = sorted(p for p in self.tracking_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        for tree in trees[: -self.keep_trees]:
            if tree.name != current:
                shutil.rmtree(tree, ignore_errors=True)
        cutoff = time.time() - self.cache_grace
        for path in self.cache.root.glob("*/*"):
            with contextlib.suppress(OSError):
                st = path.stat()
                if st.st_nlink == 1 and st.st_mtime < cutoff:
                    path.unlink()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
