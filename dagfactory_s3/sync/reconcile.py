"""One reconcile cycle: list ``<env>/`` once, fetch what changed, verify, then apply in a safe order.

A cycle has four steps, each of which can only *narrow* what gets applied:

1. **list** -- one paginated ListObjectsV2 of ``<env>/``; any error or an incomplete listing ends
   the cycle with nothing changed (fail-static); then the platform policy, when its pointer changed,
   is served in ``_platform/`` (verified, parsed; else the served one stays);
2. **plan** -- per package, the files it should have: exactly its release record when it has a
   ``metadata.json``, else a mirror of its ``dags/``; keys, stubs and DAG ids are checked here
   (:mod:`dagfactory_s3.serve.rules`), and a DAG id keeps serving from the package that has it;
3. **fetch** -- GET only objects whose sha256 (release) or ETag (mirror) differs from what is on
   disk, verify every byte, check manifest ownership; a release that S3 does not match yet (publish
   in flight) or that could not be read keeps the last applied release, whole;
4. **apply** -- write manifests, then stubs (bumping a stub's mtime when only its manifest changed,
   so Airflow reparses it), then delete stubs before manifests; the mass-delete guard may veto
   deletions. Every write is temp file + fsync + rename in the same directory; the state file is
   written after the files.

A cycle may be *scoped* (:class:`Scope`, push delivery: the packages S3 events named): it lists only
``<env>/<package>/`` of those packages (and the policy pointer when named) and runs the same four
steps over them alone; every other package's files and state stay as the last full cycle left them.

Everything one cycle accumulates (its report, plans, refusal count, whether the state changed) lives
on a :class:`Cycle` passed to each step; the :class:`Reconciler` keeps only what outlives a cycle.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dagfactory_s3 import fs, naming, s3
from dagfactory_s3 import release as releases
from dagfactory_s3.errors import DagFactoryError, RecordError, StorageError, SyncError
from dagfactory_s3.manifest import MAX_BYTES as MANIFEST_MAX_BYTES
from dagfactory_s3.manifest import too_large
from dagfactory_s3.serve import policy as policies
from dagfactory_s3.serve.rules import (
    MAX_PYTHON_BYTES,
    MAX_RECORD_BYTES,
    KeyClass,
    canonical_stub,
    check_manifest,
    claim,
    classify_key,
    read_record,
    served_files,
    too_many_deletions,
)
from dagfactory_s3.sync.observe import Log, Metrics
from dagfactory_s3.sync.state import Applied, Mode, PackageState, State, StrEnum

__all__ = ["Cycle", "CycleReport", "PackagePlan", "Reconciler", "Scope", "Status", "Want", "WantKind"]

# Beside each package's live dags/: the next release being built, and the fallback swap's old copy.
# The package's .airflowignore keeps Airflow out of both.
STAGING_DIR = ".dags-next"
OLD_DIR = ".dags-old"
AIRFLOW_IGNORE = naming.SYNC_IGNORE_FILE
IGNORE_PATTERNS = (
    naming.SYNC_IGNORE_HEADER + f": its staging directories\n{STAGING_DIR}\n{OLD_DIR}\n".encode()
)
# S3 answers about one object, not about reaching S3 (see Reconciler._error).
# Errors writing the dags folder that say the volume is in trouble (full, read-only), not a package.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM})
_OBJECT_CODES = frozenset(
    {s3.TOO_LARGE, "NoSuchKey", "NoSuchVersion", "InvalidArgument", "404", "NotFound", "InvalidObjectState"}
)


class Status(StrEnum):
    """A package plan's outcome; only an ``ok`` plan changes anything on disk."""

    OK = "ok"
    WAITING = "waiting"  # the release record is ahead of S3: a publish is in flight
    ERROR = "error"  # the record or a file could not be read


class WantKind(StrEnum):
    MANIFEST = "manifest"  # a manifest fetched from S3
    STUB = "stub"  # a canonical stub the sidecar writes itself
    PYTHON = "python"  # a .py fetched from S3 (--allow-python, or a stub to verify)


@dataclass
class Want:
    """One file a package should have on disk (``rest`` is relative to ``<package>/``)."""

    rest: str
    kind: WantKind
    key: str | None = (
        None  # the object's key under dags/ (None: the sidecar writes it, e.g. a canonical stub)
    )
    etag: str | None = None  # unquoted
    sha256: str | None = None  # expected content (release mode), or known after the GET
    size: int | None = None
    version_id: str | None = None
    data: bytes | None = None
    unchanged: bool = False  # already on disk as wanted
    verify_stub: bool = False  # a .py whose ETag cannot tell whether it is the canonical stub
    source: str | None = None  # where to GET it when not ``key``: the immutable content object
    fetched_etag: str = ""  # the ETag of the body the GET brought (unquoted)


@dataclass
class PackagePlan:
    """What one package should look like on disk after this cycle."""

    package: str
    mode: Mode
    status: Status = Status.OK
    release_id: str | None = None
    tombstone: bool = False
    content: str | None = None  # the record's content layout (CONTENT_OBJECTS, or None for 0.1 records)
    wants: dict[str, Want] = field(default_factory=dict)
    keep: set[str] = field(default_factory=set)  # applied files kept as they are (refused or failed update)

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


Change = tuple[PackagePlan, Want]  # one file to write (or stub to touch) and the plan it belongs to


@dataclass(frozen=True)
class Scope:
    """What a scoped cycle reconciles: these packages, and the platform policy when ``policy``."""

    packages: frozenset[str] = frozenset()
    policy: bool = False
    why: str = "queue"  # what asked for it, for the cycle line

    def covers(self, key: str, env: str) -> bool:
        return any(key.startswith(naming.package_prefix(env, name)) for name in self.packages)


@dataclass
class CycleReport:
    """``complete``: the listing and every needed download succeeded (readiness, ``--once`` exit code)."""

    complete: bool = False
    listed: int = 0
    written: int = 0
    deleted: int = 0
    refused: int = 0
    errors: int = 0
    waiting: list[str] = field(default_factory=list)
    unservable: list[str] = field(default_factory=list)  # recorded releases this cycle could not serve
    unchecked: int = 0  # manifests served on their ownership alone: the cycle's check budget was spent
    duration: float = 0.0
    list_duration: float = 0.0
    scope: Scope | None = None  # None: a full cycle
    # What this cycle did not bring to what S3 says, even when complete: packages whose plan failed or
    # waits, or whose deletions the guard vetoed, and policies.PLATFORM_DIR for a policy not served.
    failed: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.errors or not self.complete:
            return "error"
        return "success" if self.written or self.deleted else "noop"


@dataclass
class Cycle:
    """What one :meth:`Reconciler.cycle` accumulates; created at its start, dropped at its end."""

    report: CycleReport = field(default_factory=CycleReport)
    plans: dict[str, PackagePlan] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)  # keys and wanted files refused, by package
    state_dirty: bool = False  # the state changed without being saved yet
    check_until: float = float("inf")  # monotonic instant after which manifests are not checked in full
    scope: Scope | None = None  # None: a full cycle
    vetoed: set[str] = field(default_factory=set)  # packages whose deletions the guard vetoed
    policy_failed: bool = False


class Reconciler:
    """Keeps ``dags_folder`` equal to what S3 publishes for one bucket and environment."""

    page_size = 1000  # S3's maximum; tests lower it to exercise pagination cheaply
    # Seconds a cycle spends checking manifests in full, for their invalid_manifest line. Serving needs
    # only the ownership check; past the budget a manifest is served on that alone (Airflow still shows
    # its import error), so no package's manifests, however costly, hold up the others' updates.
    check_budget = 5.0

    def __init__(
        self,
        *,
        client: Any,
        bucket: str,
        environment: str,
        dags_folder: Path,
        state_dir: Path,
        log: Log,
        metrics: Metrics,
        allow_python: bool = False,
        mirror_unreleased: bool = False,
        max_delete_fraction: float = 0.5,
        workers: int = 16,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.env = environment
        self.root = dags_folder
        self.state_dir = state_dir
        self.log = log
        self.metrics = metrics
        self.allow_python = allow_python
        self.mirror_unreleased = mirror_unreleased
        self.max_delete_fraction = max_delete_fraction
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dagsync-get")
        self.on_progress = on_progress or (lambda: None)
        self._refusals_logged: set[tuple[str, str, str]] = set()
        self._empty_warned = False  # the environment prefix held nothing, and that was said
        # Objects refused after a GET, by key: (ETag, kind, reason). Not fetched again until the ETag changes.
        self._refused_objects: dict[str, tuple[str, str, str]] = {}
        self._waiting_logged: dict[str, str] = {}
        self._policy_said: tuple[str, str] | None = None  # (pointer ETag, what) last logged about the policy
        # What the last full cycle saw, kept up to date by scoped ones: every package (name -> retired),
        # None before the first full listing; and per package, what the gauges sum.
        self._known: dict[str, bool] | None = None
        self._waiting_now: set[str] = set()
        self._refused_now: Counter[str] = Counter()
        self.root.mkdir(parents=True, exist_ok=True)
        self.state = State.load(state_dir, bucket=bucket, environment=environment)
        self._recover()
        self.metrics.dags.set(self.state.dag_count())
        self.metrics.set_policy(self._served_policy_id())
        for name, pkg in self.state.packages.items():
            self.metrics.set_release(name, pkg.release_id)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    # -- restart ------------------------------------------------------------------------------

    def _recover(self) -> None:
        """Make the state match the disk after an interrupted cycle (SIGKILL, OOM, node loss)."""
        stale = fs.remove_temp_files(self.root, f"*/{naming.DAGS_DIR}")
        stale += fs.remove_temp_files(self.root, policies.PLATFORM_DIR)
        for leftover in [*self.root.glob(f"*/{STAGING_DIR}"), *self.root.glob(f"*/{OLD_DIR}")]:
            if fs.escape(self.root, leftover):
                continue  # reached through a planted link: not ours to delete (the package is refused later)
            shutil.rmtree(leftover, ignore_errors=True)  # a swap that never happened, or its old half
            stale += 1
        touched = list(self.state.pending)
        for item in touched:
            name, _, rest = item.partition("/")
            path = self.root / name / rest
            pkg = self.state.packages.setdefault(name, PackageState(mode=Mode.MIRROR))
            try:
                pkg.files[rest] = Applied(_sha256(fs.read_no_follow(path)), None)
            except OSError:  # gone, or a symbolic link planted since (refused when the package is applied)
                pkg.files.pop(rest, None)
        if touched or stale:
            self.log("recover", pending=len(touched), temp_files_removed=stale)
            self.state.pending = []
            self.state.save(self.state_dir)

    # -- the cycle ----------------------------------------------------------------------------

    def cycle(self, scope: Scope | None = None) -> CycleReport:
        """One full cycle, or (``scope``) one of only the named packages and, if named, the policy.

        A scoped cycle also takes in each package a named one's DAG ids could pass to or from (a
        shorter name it starts with: ``etl`` for ``etl_sales``), so one owner per DAG id holds; before
        the first full listing it is a full cycle.
        """
        start = time.monotonic()
        if scope is not None:
            scope = self._widen(scope) if self._known is not None else None
        cycle = Cycle(check_until=time.monotonic() + self.check_budget, scope=scope)
        report = cycle.report
        report.scope = scope
        unsafe = fs.escape(self.root, self.state_dir) if self.state_dir.is_relative_to(self.root) else None
        if unsafe:  # the sidecar's own directory was tampered with: write nothing until it is fixed
            self._error(cycle, "config", SyncError(f"state directory: {unsafe}"))
            report.complete = False
            return self._finish(report, start)
        try:
            listing = self._list(scope)
        except StorageError as exc:
            self._error(cycle, "list", exc)
            return self._finish(report, start)
        finally:
            report.list_duration = time.monotonic() - start
        report.listed = len(listing)
        if scope is None:
            self.metrics.listed.set(len(listing))
            self._warn_if_empty(listing)
        for key in [k for k in self._refused_objects if k not in listing]:
            if scope is None or scope.covers(key, self.env):
                del self._refused_objects[key]
        if scope is None or scope.policy:
            try:  # before the packages: their manifests are parsed under the policy they were published for
                cycle.policy_failed = not self._serve_policy(cycle, listing)
            except Exception as exc:  # a bug here must not cost the packages their cycle
                cycle.policy_failed = True
                self._policy_refused(
                    listing.get(policies.pointer_key(self.env)), f"{type(exc).__name__}: {exc}"
                )

        found = self._classify(cycle, listing)
        report.complete = True  # until a download fails
        names = set(found) | set(self.state.packages)
        for name in sorted(names if scope is None else names & scope.packages):
            files = found.get(name, {})
            try:
                cycle.plans[name] = self._plan(cycle, name, files)
            except Exception as exc:  # one package's content must not cost the others their cycle
                mode = Mode.RELEASE if naming.METADATA in files else Mode.MIRROR
                cycle.plans[name] = PackagePlan(name, mode)
                self._package_failed(cycle, cycle.plans[name], "plan", exc)
        self._claim(cycle)
        self._fetch(cycle, listing)
        self._guard(cycle)
        self._apply(cycle)
        report.waiting = sorted(p.package for p in cycle.plans.values() if p.status is Status.WAITING)
        report.unservable = sorted(set(report.unservable) | set(report.waiting))
        report.refused = sum(cycle.refused.values())
        report.failed = sorted(
            {n for n, p in cycle.plans.items() if not p.ok}
            | cycle.vetoed
            | ({policies.PLATFORM_DIR} if cycle.policy_failed else set())
        )
        self._remember(cycle)
        return self._finish(report, start)

    def _widen(self, scope: Scope) -> Scope:
        """``scope`` with valid names only, plus every known package whose name a named one starts
        with (``etl`` for ``etl_sales``): a change of ``etl_sales`` moves DAG ids to or from it."""
        named = frozenset(n for n in scope.packages if naming.check_package(n) is None)
        known = set(self._known or ()) | set(self.state.packages)
        shorter = {q for q in known for p in named if p.startswith(f"{q}_")}
        return replace(scope, packages=named | shorter)

    def _remember(self, cycle: Cycle) -> None:
        """Fold the cycle's packages into what outlives it: all of it after a full cycle, the scoped
        packages' part after a scoped one; and set the gauges that sum over every package."""
        seen = {n: p.tombstone for n, p in cycle.plans.items()}
        if cycle.scope is None or self._known is None:
            self._known = seen
            self._waiting_now = set(cycle.report.waiting)
            self._refused_now = Counter(cycle.refused)
        else:
            for name in cycle.scope.packages:
                self._known.pop(name, None)
                self._refused_now.pop(name, None)
            self._known.update(seen)
            self._waiting_now = (self._waiting_now - cycle.scope.packages) | set(cycle.report.waiting)
            self._refused_now.update(cycle.refused)
        self.metrics.in_flight.set(len(self._waiting_now))
        self.metrics.refused_now.set(sum(self._refused_now.values()))

    def _warn_if_empty(self, listing: dict[str, s3.Listed]) -> None:
        """A wrong environment (``ENVIRONMENT=staging`` with nothing under ``staging/``) is loud: one
        warning naming the environments the bucket holds, each time the prefix turns empty."""
        if listing:
            self._empty_warned = False
            return
        if self._empty_warned:
            return
        self._empty_warned = True
        try:
            there = s3.list_environments(self.client, self.bucket)
        except StorageError:
            there = []
        self.log(
            "empty_environment",
            level="warning",
            environment=self.env,
            note=f"nothing under s3://{self.bucket}/{self.env}/; check the environment setting",
            environments_in_bucket=there,
        )

    def _finish(self, report: CycleReport, start: float) -> CycleReport:
        report.duration = time.monotonic() - start
        self.metrics.duration.observe(report.duration)
        self.metrics.cycles.labels(report.status).inc()
        if report.complete and report.scope is None:  # a scoped cycle does not sync the environment
            self.metrics.last_success.set(time.time())
        scope = report.scope
        self.log(
            "cycle",
            level="info" if report.status != "error" else "warning",
            status=report.status,
            scope=None if scope is None else "packages",
            why=None if scope is None else scope.why,
            packages=None if scope is None else sorted(scope.packages),
            policy=None if scope is None else scope.policy,
            listed=report.listed,
            written=report.written,
            deleted=report.deleted,
            refused=report.refused,
            errors=report.errors,
            waiting=report.waiting or None,
            unchecked=report.unchecked or None,
            seconds=round(report.duration, 3),
            list_seconds=round(report.list_duration, 3),
            failed=report.failed or None,
        )
        return report

    # -- 1. list ------------------------------------------------------------------------------

    def _list(self, scope: Scope | None = None) -> dict[str, s3.Listed]:
        """Every object under ``<env>/`` (or, scoped, under each named ``<env>/<package>/``, and the
        policy pointer when named), or StorageError: a partial listing is never returned."""
        if scope is None:
            return self._list_prefix(f"{self.env}/")
        listing: dict[str, s3.Listed] = {}
        for name in sorted(scope.packages):
            listing.update(self._list_prefix(naming.package_prefix(self.env, name)))
        if scope.policy:
            key = policies.pointer_key(self.env)
            listing.update((k, v) for k, v in self._list_prefix(key).items() if k == key)
        return listing

    def _list_prefix(self, prefix: str) -> dict[str, s3.Listed]:
        return s3.list_objects(
            self.client, self.bucket, prefix, page_size=self.page_size, on_page=self.metrics.list_requests.inc
        )

    def _classify(
        self, cycle: Cycle, listing: dict[str, s3.Listed]
    ) -> dict[str, dict[str, tuple[KeyClass, s3.Listed]]]:
        """The DAG files and release records of the listing by package; refuses every other key."""
        found: dict[str, dict[str, tuple[KeyClass, s3.Listed]]] = {}
        for key in sorted(listing):
            try:
                cls = classify_key(self.env, key)
            except Exception as exc:  # a gap in the key rules: this key alone is not served
                package = key[len(self.env) + 1 :].partition("/")[0] or None
                self._unexpected(cycle, "classify", exc, package=package, key=key)
                continue
            if cls.kind == "refuse":
                self._refuse(key, listing[key].etag, "key", cls.reason, cls.package or None)
                cycle.refused[cls.package or key[len(self.env) + 1 :].partition("/")[0]] += 1
            elif cls.kind in ("dag", "metadata"):
                found.setdefault(cls.package, {})[cls.rest] = (cls, listing[key])
        return found

    # -- the platform policy ------------------------------------------------------------------

    def _serve_policy(self, cycle: Cycle, listing: dict[str, s3.Listed]) -> bool:
        """Serve the environment's platform policy at ``<dags_folder>/_platform/`` when its pointer
        changed (zero GETs when it did not). Fail-static: a pointer or policy that cannot be read,
        verified or parsed keeps the one served (False); a pointer removed from S3 too (a platform
        retires a policy by publishing a permissive one)."""
        key = policies.pointer_key(self.env)
        listed = listing.get(key)
        served = self.state.policy
        on_disk = self._served_policy_id()
        if listed is None:
            if served is not None:
                self._say_policy(
                    "",
                    "removed",
                    lambda: self.log(
                        "policy_removed",
                        level="warning",
                        key=key,
                        policy_id=on_disk,
                        note="keeping the served policy; publish a permissive policy to retire it",
                    ),
                )
            return True
        if served == (listed.etag, on_disk):
            self._policy_said = None  # served as published: the next refusal or removal is news
            return True
        folder = self.root / policies.PLATFORM_DIR
        unsafe = fs.escape(self.root, folder / policies.POINTER) or fs.escape(
            self.root, folder / policies.SERVED_ID
        )
        if unsafe:
            self._policy_refused(listed, unsafe)
            return False
        try:
            record, etag = policies.read_record(self.client, self.bucket, self.env)
            self.metrics.downloaded.inc()
            if record is None:  # deleted since the listing: the next cycle says so
                return True
            entry = record.current
            if entry.policy_id != on_disk:
                raw, _ = policies.read_policy(
                    self.client,
                    self.bucket,
                    self.env,
                    entry,
                    record=record,
                    on_get=self.metrics.downloaded.inc,
                )
                policies.write_served(folder, raw, self.env, entry.policy_id)
                self.metrics.set_policy(entry.policy_id)
                self.log("policy", key=key, policy_id=entry.policy_id, sha256=entry.sha256, previous=on_disk)
                self._touch_stubs()
        except DagFactoryError as exc:  # unreadable, not as its pointer records, or not a policy
            self._policy_refused(listed, str(exc))
            return False
        self.state.policy = (etag or listed.etag, entry.policy_id)
        self._policy_said = None
        cycle.state_dirty = True
        return True

    def _served_policy_id(self) -> str | None:
        """The id of the policy served in ``_platform/`` for this environment, or None."""
        try:
            served = fs.read_no_follow(self.root / policies.PLATFORM_DIR / policies.SERVED_ID)
        except OSError:
            return None
        policy_id, _, environment = served.decode("ascii", "replace").strip().partition(" ")
        return policy_id if environment == self.env and naming.RELEASE_ID_RE.fullmatch(policy_id) else None

    def _touch_stubs(self) -> None:
        """Another policy changes what every DAG may use: advance each served stub's mtime, so Airflow
        parses it again now (``file_parsing_sort_mode=modified_time``), not at the periodic re-parse."""
        for name, pkg in sorted(self.state.packages.items()):
            if self._escape(name):
                continue  # that package's error, said when it is written
            for rest in (r for r in pkg.files if r.endswith(".py")):
                with contextlib.suppress(OSError):  # gone by hand: the next cycle rewrites it
                    os.utime(self.root / name / rest, follow_symlinks=False)

    def _policy_refused(self, listed: s3.Listed | None, reason: str) -> None:
        """The policy was not served: one line and one count per pointer version and reason."""
        key = policies.pointer_key(self.env)
        kept = self._served_policy_id()

        def say() -> None:
            self.metrics.policy_refused.inc()
            self.log(
                "policy_refused",
                level="warning",
                key=key,
                reason=reason,
                note=f"keeping the served policy {kept}" if kept else "no policy served yet",
            )

        self._say_policy(listed.etag if listed else "", reason, say)

    def _say_policy(self, etag: str, what: str, emit: Callable[[], object]) -> None:
        if self._policy_said != (etag, what):
            self._policy_said = (etag, what)
            emit()

    # -- 2. plan ------------------------------------------------------------------------------

    def _plan(self, cycle: Cycle, name: str, files: dict[str, tuple[KeyClass, s3.Listed]]) -> PackagePlan:
        meta = files.get(naming.METADATA)
        if meta is None:
            if self.mirror_unreleased or not files:
                return self._plan_mirror(cycle, name, files)
            return self._plan_unreleased(cycle, name)
        plan = PackagePlan(name, Mode.RELEASE)
        try:
            record = self._record(cycle, name, meta[1])
        except StorageError as exc:
            plan.status = Status.ERROR
            self._error(cycle, "get", exc, package=name)
            return plan
        except (SyncError, RecordError) as exc:
            plan.status = Status.ERROR
            self._error(cycle, "record", exc, package=name)
            return plan
        plan.release_id, plan.tombstone, plan.content = record.release_id, record.tombstone, record.content
        if record.tombstone:
            return plan
        served, refused = served_files(record, self.env, allow_python=self.allow_python)
        for no in refused:
            reason = f"{no.reason} (see --allow-python)" if no.kind == "python" else no.reason
            self._refuse_want(cycle, plan, no.key, no.sha256, no.kind, reason)
        for f in served:
            kind = WantKind.PYTHON if f.python else WantKind.MANIFEST
            want = Want(f.rest, kind, f.key, None, f.sha256, f.size, f.version_id)
            want.source = f.source if f.source != f.key else None
            plan.wants[f.rest] = want
        self._add_stubs(plan)
        return plan

    def _plan_unreleased(self, cycle: Cycle, name: str) -> PackagePlan:
        """DAG files but no release record: serve nothing new, keep what is applied (fail-static).

        Objects without a record are a publish that never committed (or a hand upload): serving them
        one by one would be serving half a release. ``--mirror-unreleased`` opts into that anyway.
        """
        plan = PackagePlan(name, Mode.MIRROR)
        plan.keep = set(self._applied(name))
        key = naming.package_prefix(self.env, name) + naming.METADATA
        reason = (
            "package has DAG files but no release record: nothing is served until a publish commits one "
            "(--mirror-unreleased serves such packages object by object, non-atomically)"
        )
        self._refuse(key, "", "unreleased", reason, name)
        cycle.refused[name] += 1
        return plan

    def _plan_mirror(
        self, cycle: Cycle, name: str, files: dict[str, tuple[KeyClass, s3.Listed]]
    ) -> PackagePlan:
        plan = PackagePlan(name, Mode.MIRROR)
        for rest, (cls, obj) in sorted(files.items()):
            if cls.is_manifest:
                if obj.size > MANIFEST_MAX_BYTES:
                    self._refuse_want(cycle, plan, obj.key, obj.etag, "content", too_large())
                    continue
                plan.wants[rest] = Want(rest, WantKind.MANIFEST, obj.key, obj.etag, size=obj.size)
        for rest, (cls, obj) in sorted(files.items()):
            if cls.is_manifest:
                continue
            has_manifest = naming.manifest_of(rest) in plan.wants
            stub_bytes, _, _ = canonical_stub(cls.name)
            canonical = s3.etag_matches(obj.etag, stub_bytes)
            if canonical is None and obj.size != len(stub_bytes):
                canonical = False  # a multipart/KMS ETag cannot tell, but the size can
            if canonical and has_manifest:
                continue
            if self.allow_python and obj.size <= MAX_PYTHON_BYTES:
                plan.wants[rest] = Want(rest, WantKind.PYTHON, obj.key, obj.etag, size=obj.size)
            elif canonical is None and has_manifest:
                plan.wants[rest] = Want(
                    rest, WantKind.PYTHON, obj.key, obj.etag, size=obj.size, verify_stub=True
                )
            else:
                why = "stub without its manifest" if canonical else "not the canonical stub"
                reason = f"{why}; only generated stubs are served (see --allow-python)"
                self._refuse_want(cycle, plan, obj.key, obj.etag, "python", reason)
        self._add_stubs(plan)
        return plan

    def _add_stubs(self, plan: PackagePlan) -> None:
        """The sidecar writes each served manifest's canonical stub itself: no GET, no foreign code."""
        applied = self._applied(plan.package)
        for rest in [r for r in plan.wants if r.endswith(".json")]:
            stub_rest = naming.stub_of(rest)
            if stub_rest not in plan.wants:
                data, sha, _ = canonical_stub(stub_rest.rpartition("/")[2])
                old = applied.get(stub_rest)
                unchanged = (
                    old is not None and old.sha256 == sha and (self.root / plan.package / stub_rest).is_file()
                )
                plan.wants[stub_rest] = Want(
                    stub_rest, WantKind.STUB, data=data, sha256=sha, unchanged=unchanged
                )

    def _record(self, cycle: Cycle, name: str, meta: s3.Listed) -> releases.Release:
        """The package's release record: from the state cache when its ETag is unchanged, else a GET."""
        cached = self.state.records.get(name)
        if cached and cached[0] == meta.etag:
            raw = cached[1].encode()
        else:
            if meta.size > MAX_RECORD_BYTES:
                raise SyncError(f"{meta.key}: release record is larger than {MAX_RECORD_BYTES} bytes")
            raw, etag = self._get(meta.key, None, MAX_RECORD_BYTES)
            self.state.records[name] = (etag or meta.etag, raw.decode("utf-8", "replace"))
            cycle.state_dirty = True
        record = read_record(raw, key=meta.key, package=name, environment=self.env)
        return record

    def _claim(self, cycle: Cycle) -> None:
        """One owner per DAG id: the longest package name it starts with (naming.dag_id_owner); among
        packages that may name it, the one serving it keeps it and a newcomer's claim is refused."""
        packages = {n for n, p in cycle.plans.items() if not p.tombstone}
        if cycle.scope is not None:  # the other packages, as the last cycle that listed them saw them
            scoped = cycle.scope.packages
            packages |= {n for n, retired in (self._known or {}).items() if not retired and n not in scoped}
        claims = {d: p for d, p in self.state.served().items() if not naming.foreign_owner(d, p, packages)}
        for name in sorted(cycle.plans):
            plan = cycle.plans[name]
            if not plan.ok:
                continue
            try:
                self._claim_package(cycle, plan, claims, packages)
            except Exception as exc:
                self._package_failed(cycle, plan, "claim", exc)

    def _claim_package(
        self, cycle: Cycle, plan: PackagePlan, claims: dict[str, str], packages: set[str]
    ) -> None:
        name = plan.package
        for rest in sorted(r for r in plan.wants if r.endswith(".json")):
            dag_id = naming.dag_id_of(rest)
            foreign = naming.foreign_owner(dag_id, name, packages)
            if foreign:
                want = plan.wants[rest]
                reason = f"{foreign}; refused for package {name!r}"
                # not kept: the owner serves it now, and Airflow must not see the DAG id twice
                self._refuse_want(
                    cycle,
                    plan,
                    want.key or rest,
                    want.sha256 or want.etag or "",
                    "collision",
                    reason,
                    keep=False,
                )
                continue
            holder = claim(claims, dag_id, name)
            if holder:
                want = plan.wants[rest]
                reason = (
                    f"dag_id {dag_id!r} is already served by package {holder!r}; "
                    f"refused for package {name!r} (the package serving it keeps it)"
                )
                self._refuse_want(
                    cycle, plan, want.key or rest, want.sha256 or want.etag or "", "collision", reason
                )

    # -- 3. fetch -----------------------------------------------------------------------------

    def _downloads(self, cycle: Cycle, listing: dict[str, s3.Listed]) -> list[Change]:
        """The wanted files that need a GET; a release whose files S3 does not have yet waits, whole."""
        jobs: list[Change] = []
        for plan in cycle.plans.values():
            if not plan.ok:
                continue
            try:
                jobs += self._package_downloads(cycle, plan, listing)
            except Exception as exc:
                self._package_failed(cycle, plan, "plan", exc)
        return [(p, w) for p, w in jobs if p.ok]

    def _package_downloads(
        self, cycle: Cycle, plan: PackagePlan, listing: dict[str, s3.Listed]
    ) -> list[Change]:
        jobs: list[Change] = []
        applied = self._applied(plan.package)
        for want in list(plan.wants.values()):  # a remembered refusal drops wants on the way
            if plan.wants.get(want.rest) is not want:
                continue
            path = self.root / plan.package / want.rest
            old = applied.get(want.rest)
            if want.data is not None:  # a stub the sidecar writes (see _add_stubs)
                continue
            if (
                old is not None
                and path.is_file()
                and (
                    (plan.mode is Mode.RELEASE and old.sha256 == want.sha256)
                    or (plan.mode is Mode.MIRROR and old.etag == want.etag)
                )
            ):
                want.unchanged, want.sha256 = True, old.sha256
                continue
            listed = listing.get(want.source or want.key or "")
            if plan.mode is Mode.RELEASE and (listed is None or listed.size != want.size):
                self._not_in_s3(cycle, plan, f"{want.rest} is not in S3 with the recorded size")
                break
            remembered = self._refused_objects.get(want.source or want.key or "")
            if listed is not None and remembered is not None and remembered[0] == listed.etag:
                # Refused before at this ETag: refused again without a GET until the object changes.
                self.metrics.refusals_remembered.inc()
                self._refuse_want(cycle, plan, want.key or want.rest, listed.etag, *remembered[1:])
                continue
            jobs.append((plan, want))
        return [(p, w) for p, w in jobs if p.ok]

    def _fetch(self, cycle: Cycle, listing: dict[str, s3.Listed]) -> None:
        """GET what changed in parallel and verify every body before anything is written."""
        jobs = self._downloads(cycle, listing)
        futures = [
            (
                plan,
                want,
                self.pool.submit(self._get, want.source or want.key or "", want.version_id, self._cap(want)),
            )
            for plan, want in jobs
        ]
        for plan, want, future in futures:
            try:
                data, etag = future.result()
            except StorageError as exc:
                if exc.code == s3.TOO_LARGE and plan.mode is Mode.RELEASE:  # not as recorded: keep it whole
                    self._not_in_s3(cycle, plan, f"{want.rest} in S3 is larger than recorded")
                    continue
                if exc.code == s3.TOO_LARGE:  # the object grew after the listing, or lies about its size
                    listed = listing.get(want.source or want.key or "")
                    self._refuse_object(cycle, plan, want, listed.etag if listed else "", "size", str(exc))
                    continue
                self._error(cycle, "get", exc, package=plan.package, key=want.key)
                if plan.mode is Mode.RELEASE:
                    plan.status = Status.ERROR  # keep the last applied release, whole
                else:
                    self._drop(plan, want.rest, keep=True)
                continue
            except Exception as exc:  # not S3 failing: something about this object or its record
                self._package_failed(cycle, plan, "get", exc, key=want.key)
                continue
            self.on_progress()
            sha = _sha256(data)
            if plan.mode is Mode.RELEASE:
                if sha != want.sha256:
                    self._not_in_s3(cycle, plan, f"{want.rest} in S3 does not match the recorded sha256")
                    continue
            elif s3.etag_matches(want.etag or "", data) is False:
                exc = StorageError(
                    f"s3://{self.bucket}/{want.key}: body does not match its ETag (cut short or changed during download)"
                )
                self._error(cycle, "get", exc, package=plan.package, key=want.key)
                self._drop(plan, want.rest, keep=True)
                continue
            want.data, want.sha256, want.etag = data, sha, want.etag or etag
            want.fetched_etag = etag
        for plan, want, _ in futures:
            if plan.ok and plan.wants.get(want.rest) is want and want.data is not None:
                try:
                    self._check_content(cycle, plan, want)
                except Exception as exc:
                    self._package_failed(cycle, plan, "check", exc, key=want.key)

    def _check_content(self, cycle: Cycle, plan: PackagePlan, want: Want) -> None:
        key = want.key or want.rest
        assert want.data is not None
        if want.kind is WantKind.MANIFEST:
            stem = naming.dag_id_of(want.rest)
            full = time.monotonic() < cycle.check_until
            cycle.report.unchecked += not full
            verdict = check_manifest(want.data, key=key, package=plan.package, stem=stem, full=full)
            if not verdict.serve:
                self._refuse_object(cycle, plan, want, want.fetched_etag, verdict.kind, verdict.reason)
            elif verdict.invalid:
                self._refuse_once(
                    key,
                    want.sha256 or "",
                    "invalid",
                    lambda: self.log(
                        "invalid_manifest",
                        level="warning",
                        package=plan.package,
                        key=key,
                        note="served so Airflow shows the import error",
                        error=verdict.invalid,
                    ),
                )
        elif want.verify_stub:
            if want.data == canonical_stub(want.rest.rpartition("/")[2])[0]:
                del plan.wants[want.rest]
                self._add_stubs(plan)
            elif not self.allow_python:
                reason = "not the canonical stub; only generated stubs are served (see --allow-python)"
                self._refuse_object(cycle, plan, want, want.fetched_etag, "python", reason)

    def _cap(self, want: Want) -> int:
        """The most bytes one GET may hold for ``want``: what the record says, else the kind's limit."""
        if want.size is not None and want.sha256 is not None:
            return want.size  # release mode: the record names the exact size
        if want.verify_stub:
            return len(canonical_stub(_name(want.rest))[0])
        return MANIFEST_MAX_BYTES if want.kind is WantKind.MANIFEST else MAX_PYTHON_BYTES

    def _refuse_object(
        self, cycle: Cycle, plan: PackagePlan, want: Want, etag: str, kind: str, reason: str
    ) -> None:
        """Refuse what one GET brought, and remember it by ETag so it is not fetched again unchanged."""
        if etag:
            self._refused_objects[want.source or want.key or ""] = (etag, kind, reason)
        self._refuse_want(cycle, plan, want.key or want.rest, etag or want.sha256 or "", kind, reason)

    def _get(self, key: str, version_id: str | None, max_bytes: int) -> tuple[bytes, str]:
        fetched = s3.get(self.client, self.bucket, key, version_id=version_id, max_bytes=max_bytes)
        assert fetched is not None  # only missing_ok=True returns None
        self.metrics.downloaded.inc()
        return fetched.data, fetched.etag

    # -- 4. guard and apply ---------------------------------------------------------------------

    def _deletions(self, plan: PackagePlan) -> list[str]:
        if not plan.ok:
            return []
        return sorted(r for r in self._applied(plan.package) if r not in plan.wants and r not in plan.keep)

    def _guard(self, cycle: Cycle) -> None:
        """Veto deletions that would shrink the served DAGs by more than the threshold in one cycle.

        A listing that lost objects (eventual consistency, a wrong prefix, a bucket emptied by
        mistake) looks exactly like a mass delete. DAGs added in the same cycle offset deletions,
        so renaming or replacing DAGs is not blocked; retired packages (tombstone) never count.
        """
        plans = cycle.plans
        served = self.state.dag_count()
        doomed = {
            name: [r for r in self._deletions(plan) if r.endswith(".json")]
            for name, plan in plans.items()
            if not plan.tombstone
        }
        added = sum(
            1
            for plan in plans.values()
            if plan.ok
            for rest in plan.wants
            if rest.endswith(".json") and rest not in self._applied(plan.package)
        )
        count = sum(len(v) for v in doomed.values())
        if too_many_deletions(served, count, added, self.max_delete_fraction):
            exc = SyncError(
                f"refusing to delete {count} of {served} served DAGs in one cycle (net loss of more than "
                f"{self.max_delete_fraction:.0%}); retire packages with a tombstone release, or raise "
                "--max-delete-fraction if this is intended"
            )
            cycle.vetoed = {n for n, v in doomed.items() if v}
            self._error(cycle, "mass_delete_guard", exc, packages=sorted(cycle.vetoed))
            for name in doomed:
                plan = plans[name]
                plan.keep.update(self._deletions(plan))

    def _apply(self, cycle: Cycle) -> None:
        """Pending list, then one atomic swap per changed package, then the state: in that order."""
        writes, deletes = self._changes(cycle)
        if writes or deletes:
            self._mark_pending(writes, deletes)
        failed = False
        for name in sorted({p.package for p, _ in writes} | {n for n, _ in deletes}):
            plan = cycle.plans[name]
            unsafe = self._escape(name)
            if unsafe:  # fail-static: the package keeps what it has, nothing is written through the link
                failed = True
                plan.status = Status.ERROR
                self._error(cycle, "symlink", SyncError(unsafe), package=name)
                continue
            try:
                self._swap(
                    cycle,
                    plan,
                    [w for p, w in writes if p.package == name],
                    {r for n, r in deletes if n == name},
                )
            except Exception as exc:  # this package keeps its last applied files; its paths stay pending
                failed = True
                if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
                    cycle.report.complete = False  # the volume, not the package: not ready, back off
                self._package_failed(cycle, plan, "apply", exc)
        self._settle_state(cycle, changed=bool(writes or deletes) and not failed)

    def _escape(self, name: str) -> str | None:
        """Why writing package ``name`` could leave the dags folder (a symbolic link on the way), or None.

        The sidecar builds everything under ``<package>/`` itself, so a link there was planted: the
        package directory, its ``dags/``, the staging directories, ``.airflowignore`` or a file in ``dags/``.
        """
        pkg_dir = self.root / name
        for path in (
            pkg_dir / naming.DAGS_DIR,
            pkg_dir / STAGING_DIR,
            pkg_dir / OLD_DIR,
            pkg_dir / AIRFLOW_IGNORE,
        ):
            why = fs.escape(self.root, path)
            if why:
                return why
        live = pkg_dir / naming.DAGS_DIR
        with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(live) as entries:
            for entry in entries:
                if entry.is_symlink():
                    return f"{entry.path} is a symbolic link (to {os.readlink(entry.path)}); refusing to serve it"
        return None

    def _changes(self, cycle: Cycle) -> tuple[list[Change], list[tuple[str, str]]]:
        """The files to write and the (package, rest) to delete, of the ok plans only."""
        writes: list[Change] = []
        deletes: list[tuple[str, str]] = []
        for name in sorted(cycle.plans):
            plan = cycle.plans[name]
            if not plan.ok:
                continue
            writes += [
                (plan, w) for _, w in sorted(plan.wants.items()) if not w.unchanged and w.data is not None
            ]
            deletes += [(name, rest) for rest in self._deletions(plan)]
        return writes, deletes

    def _mark_pending(self, writes: list[Change], deletes: list[tuple[str, str]]) -> None:
        """Record every path about to change before touching one, so a restart can re-check them."""
        self.state.pending = [f"{p.package}/{w.rest}" for p, w in writes] + [f"{n}/{r}" for n, r in deletes]
        self.state.save(self.state_dir)

    def _swap(self, cycle: Cycle, plan: PackagePlan, writes: list[Want], deletes: set[str]) -> None:
        """Build the package's next ``dags/`` beside the live one, then exchange the two atomically.

        A reader listing ``<package>/dags/`` sees the old release or the new one, never a mix: unchanged
        files are hard links (same bytes, same mtime, so Airflow does not reparse them), changed files
        and the stubs of changed manifests are fresh (new mtime, so Airflow reparses them now). The
        staging directory is hidden from Airflow by the package's ``.airflowignore``.
        """
        pkg_dir = self.root / plan.package
        live, staging = pkg_dir / naming.DAGS_DIR, pkg_dir / STAGING_DIR
        pkg_dir.mkdir(parents=True, exist_ok=True)
        if not (pkg_dir / AIRFLOW_IGNORE).is_file():
            fs.atomic_write(pkg_dir / AIRFLOW_IGNORE, IGNORE_PATTERNS)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        fresh = {w.rest for w in writes} | {
            naming.stub_of(w.rest) for w in writes if w.rest.endswith(".json")
        }
        applied = self._applied(plan.package)
        for rest in sorted(r for r in applied if r not in deletes and r not in fresh):
            with contextlib.suppress(FileNotFoundError):  # gone by hand: the next cycle rewrites it
                os.link(live / _name(rest), staging / _name(rest))
        actions = {w.rest: "update" if w.rest in applied else "add" for w in writes}
        results = [
            self.pool.submit(fs.atomic_write, staging / _name(w.rest), w.data or b"", sync_dir=False)
            for w in writes
        ]
        for result in results:
            result.result()  # a failure leaves the live directory untouched; staging is rebuilt next time
        # After the manifests, so each such stub is newer than its manifest and Airflow reparses it now:
        for rest in sorted(r for r in fresh if r not in deletes and all(w.rest != r for w in writes)):
            if rest in applied and (live / _name(rest)).is_file():
                fs.atomic_write(staging / _name(rest), fs.read_no_follow(live / _name(rest)), sync_dir=False)
        fs.fsync_dir(staging)
        if not live.exists():
            os.rename(staging, live)
        elif not fs.exchange(staging, live):  # no renameat2 here: two renames, a brief gap
            old = pkg_dir / OLD_DIR
            shutil.rmtree(old, ignore_errors=True)
            os.rename(live, old)
            os.rename(staging, live)
            staging = old
        fs.fsync_dir(pkg_dir)
        shutil.rmtree(staging, ignore_errors=True)  # the previous release's directory
        self._record_swap(cycle, plan, writes, actions, deletes)
        self.on_progress()

    def _record_swap(
        self, cycle: Cycle, plan: PackagePlan, writes: list[Want], actions: dict[str, str], deletes: set[str]
    ) -> None:
        for want in writes:
            self._record_applied(plan, want)
            self.metrics.written.labels(actions[want.rest]).inc()
            cycle.report.written += 1
            self.log(
                actions[want.rest],
                package=plan.package,
                path=f"{plan.package}/{want.rest}",
                sha256=want.sha256,
                release_id=plan.release_id,
                mode=plan.mode,
            )
        for rest in sorted(deletes, key=lambda r: (not r.endswith(".py"), r)):
            self.state.packages[plan.package].files.pop(rest, None)
            self.metrics.deleted.inc()
            cycle.report.deleted += 1
            self.log(
                "delete",
                package=plan.package,
                path=f"{plan.package}/{rest}",
                release_id=plan.release_id,
                mode=plan.mode,
                retired=plan.tombstone or None,
            )
        if not self._applied(plan.package):
            self._remove_empty_dirs(plan.package)

    def _settle_state(self, cycle: Cycle, *, changed: bool) -> None:
        """Bring the state up to the plans and save it when it changed: after the files, always."""
        for name, plan in cycle.plans.items():
            pkg = self.state.packages.get(name)
            if plan.ok and pkg is not None:
                if (pkg.mode, pkg.release_id) != (plan.mode, plan.release_id):
                    pkg.mode, pkg.release_id = plan.mode, plan.release_id
                    cycle.state_dirty = True
                if not pkg.files:
                    del self.state.packages[name]
                    pkg = None
                    cycle.state_dirty = True
            self.metrics.set_release(name, pkg.release_id if pkg else None)
        if changed:
            self.state.pending = []
            cycle.state_dirty = True
        self.metrics.dags.set(self.state.dag_count())
        release_packages = {name for name, plan in cycle.plans.items() if plan.mode is Mode.RELEASE}
        cached = (
            set(self.state.records) if cycle.scope is None else set(self.state.records) & cycle.scope.packages
        )
        for name in cached - release_packages:
            del self.state.records[name]  # no longer a release-mode package
            cycle.state_dirty = True
        if cycle.state_dirty:
            self.state.save(self.state_dir)

    def _record_applied(self, plan: PackagePlan, want: Want) -> None:
        pkg = self.state.packages.setdefault(plan.package, PackageState(mode=plan.mode))
        assert want.sha256 is not None
        pkg.files[want.rest] = Applied(want.sha256, want.etag)

    def _remove_empty_dirs(self, name: str) -> None:
        live = self.root / name / naming.DAGS_DIR
        if live.is_dir() and not any(live.iterdir()):
            with contextlib.suppress(OSError):
                (self.root / name / AIRFLOW_IGNORE).unlink()
        for directory in (live, self.root / name):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only succeeds when empty

    # -- bookkeeping ----------------------------------------------------------------------------

    def _applied(self, name: str) -> dict[str, Applied]:
        pkg = self.state.packages.get(name)
        return pkg.files if pkg else {}

    def _drop(self, plan: PackagePlan, rest: str, *, keep: bool) -> None:
        """Stop wanting ``rest`` (and, for a manifest, its stub); keep what is applied when asked."""
        related = [rest] + ([naming.stub_of(rest)] if rest.endswith(".json") else [])
        for item in related:
            plan.wants.pop(item, None)
            if keep and item in self._applied(plan.package):
                plan.keep.add(item)

    def _refuse_want(
        self,
        cycle: Cycle,
        plan: PackagePlan,
        key: str,
        version: str,
        kind: str,
        reason: str,
        *,
        keep: bool = True,
    ) -> None:
        """Refuse one wanted file; what is applied stays (fail-static) unless ``keep`` is False."""
        prefix = naming.package_prefix(self.env, plan.package)
        rest = key[len(prefix) :] if key.startswith(f"{self.env}/") else key
        self._drop(plan, rest, keep=keep)
        cycle.refused[plan.package] += 1
        self._refuse(key, version, kind, reason, plan.package)

    def _refuse(self, key: str, version: str, kind: str, reason: str, package: str | None) -> None:
        self._refuse_once(
            key,
            version,
            reason,
            lambda: (
                self.metrics.refused.labels(kind).inc(),
                self.log("refuse", level="warning", kind=kind, package=package, key=key, reason=reason),
            ),
        )

    def _refuse_once(self, key: str, version: str, reason: str, emit: Callable[[], object]) -> None:
        marker = (key, version, reason)
        if marker not in self._refusals_logged:
            self._refusals_logged.add(marker)
            emit()

    def _not_in_s3(self, cycle: Cycle, plan: PackagePlan, why: str) -> None:
        """The record names content S3 does not hold (as recorded): keep the last applied release, whole.

        For a 0.1 record whose files live at their dags/ keys that is a publish in flight (wait); for
        immutable content it cannot happen short of someone deleting or altering a content object, so
        it is an error. Either way ``--once`` does not report success.
        """
        if plan.content == releases.CONTENT_OBJECTS:
            plan.status = Status.ERROR
            cycle.report.unservable.append(plan.package)
            exc = SyncError(f"release {plan.release_id} of {plan.package!r} is unservable: {why}")
            self._error(cycle, "content_missing", exc, package=plan.package)
        else:
            self._wait(plan, why)

    def _wait(self, plan: PackagePlan, why: str) -> None:
        """The recorded release is not (all) in S3 yet: keep the last applied one and retry."""
        plan.status = Status.WAITING
        if self._waiting_logged.get(plan.package) != plan.release_id:
            self._waiting_logged[plan.package] = plan.release_id or ""
            self.log(
                "waiting",
                package=plan.package,
                release_id=plan.release_id,
                reason=why,
                note="publish in flight; keeping the last applied release",
            )

    def _package_failed(
        self, cycle: Cycle, plan: PackagePlan, stage: str, exc: Exception, key: str | None = None
    ) -> None:
        """An unexpected exception about one package: it keeps its last applied files (fail-static),
        the error names it, and the cycle goes on for every other package."""
        plan.status = Status.ERROR
        self._unexpected(cycle, stage, exc, package=plan.package, key=key)

    def _unexpected(self, cycle: Cycle, stage: str, exc: Exception, **fields: Any) -> None:
        """Log an exception that is not one of ours as an error of ``kind: package`` (not ``internal``)."""
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        what = f"package {fields['package']!r}" if fields.get("package") else "a key"
        error = SyncError(f"{stage} failed for {what}: {reason}; it keeps its last applied files")
        self._error(cycle, "package", error, stage=stage, **fields)

    def _error(self, cycle: Cycle, kind: str, exc: DagFactoryError, **fields: Any) -> None:
        """Count and log one error; only S3 being unreachable (or refusing us) makes the cycle incomplete.

        An answer about one object (too large, gone since the listing) is that object's problem: it
        cannot make ``/readyz`` or ``--once`` fail for everyone.
        """
        cycle.report.errors += 1
        if isinstance(exc, StorageError) and exc.code not in _OBJECT_CODES:
            cycle.report.complete = False
        self.metrics.errors.labels(kind).inc()
        self.log("error", level="error", kind=kind, error=str(exc), **fields)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _name(rest: str) -> str:
    return rest.rpartition("/")[2]
