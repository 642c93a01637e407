"""One reconcile cycle: list ``<env>/`` once, fetch what changed, verify, then apply in a safe order.

A cycle has four steps, each of which can only *narrow* what gets applied:

1. **list** -- one paginated ListObjectsV2 of ``<env>/``; any error or an incomplete listing ends
   the cycle with nothing changed (fail-static);
2. **plan** -- per package, the files it should have: exactly its release record when it has a
   ``metadata.json``, else a mirror of its ``dags/``; keys, stubs and DAG ids are checked here
   (:mod:`dagfactory_s3._sync_policy`), and a DAG id keeps serving from the package that has it;
3. **fetch** -- GET only objects whose sha256 (release) or ETag (mirror) differs from what is on
   disk, verify every byte, check manifest ownership; a release that S3 does not match yet (publish
   in flight) or that could not be read keeps the last applied release, whole;
4. **apply** -- write manifests, then stubs (bumping a stub's mtime when only its manifest changed,
   so Airflow reparses it), then delete stubs before manifests; the mass-delete guard may veto
   deletions. Every write is temp file + fsync + rename in the same directory; the state file is
   written after the files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError as Urllib3Error

from dagfactory_s3 import release as releases
from dagfactory_s3._sync_observe import Log, Metrics
from dagfactory_s3._sync_policy import KeyClass, canonical_stub, check_manifest, classify_key, etag_matches
from dagfactory_s3._sync_state import Applied, PackageState, State, remove_stale_temp_files
from dagfactory_s3.errors import DagFactoryError, StorageError, SyncError
from dagfactory_s3.manifest import MAX_BYTES as MANIFEST_MAX_BYTES
from dagfactory_s3.s3 import describe

__all__ = ["CycleReport", "Reconciler"]

_MAX_RECORD_BYTES = 8 * 1024 * 1024
_MAX_PYTHON_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Listed:
    key: str
    etag: str
    size: int


@dataclass
class Want:
    """One file a package should have on disk (``rest`` is relative to ``<package>/``)."""

    rest: str
    kind: str  # manifest | stub | python
    key: str | None = None  # where to GET it (None: the sidecar writes it, e.g. a canonical stub)
    etag: str | None = None
    sha256: str | None = None  # expected content (release mode), or known after the GET
    size: int | None = None
    version_id: str | None = None
    data: bytes | None = None
    unchanged: bool = False  # already on disk as wanted
    verify_stub: bool = False  # a .py whose ETag cannot tell whether it is the canonical stub


@dataclass
class Plan:
    package: str
    mode: str  # release | mirror
    status: str = "ok"  # ok | waiting (publish in flight) | error: an un-ok plan changes nothing
    release_id: str | None = None
    tombstone: bool = False
    wants: dict[str, Want] = field(default_factory=dict)
    keep: set[str] = field(default_factory=set)  # applied files kept as they are (refused or failed update)


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
    duration: float = 0.0
    list_duration: float = 0.0

    @property
    def status(self) -> str:
        if self.errors or not self.complete:
            return "error"
        return "success" if self.written or self.deleted else "noop"


class Reconciler:
    """Keeps ``dags_folder`` equal to what S3 publishes for one bucket and environment."""

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
        self.max_delete_fraction = max_delete_fraction
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dagsync-get")
        self.on_progress = on_progress or (lambda: None)
        self._refusals_logged: set[tuple[str, str, str]] = set()
        self._waiting_logged: dict[str, str] = {}
        self.root.mkdir(parents=True, exist_ok=True)
        self.state = State.load(state_dir, bucket=bucket, environment=environment)
        self._recover()
        self.metrics.dags.set(self.state.dag_count())
        for name, pkg in self.state.packages.items():
            self.metrics.set_release(name, pkg.release_id)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    # -- restart ------------------------------------------------------------------------------

    def _recover(self) -> None:
        """Make the state match the disk after an interrupted cycle (SIGKILL, OOM, node loss)."""
        stale = remove_stale_temp_files(self.root)
        touched = list(self.state.pending)
        for item in touched:
            name, _, rest = item.partition("/")
            path = self.root / name / rest
            pkg = self.state.packages.setdefault(name, PackageState(mode="mirror"))
            if path.is_file():
                pkg.files[rest] = Applied(_sha256(path.read_bytes()), None)
            else:
                pkg.files.pop(rest, None)
        if touched or stale:
            self.log("recover", pending=len(touched), temp_files_removed=stale)
            self.state.pending = []
            self.state.save(self.state_dir)

    # -- the cycle ----------------------------------------------------------------------------

    def cycle(self) -> CycleReport:
        start = time.monotonic()
        report = CycleReport()
        try:
            listing = self._list()
        except StorageError as exc:
            self._error("list", exc, report)
            return self._finish(report, start)
        finally:
            report.list_duration = time.monotonic() - start
        report.listed = len(listing)
        self.metrics.listed.set(len(listing))

        found: dict[str, dict[str, tuple[KeyClass, Listed]]] = {}
        refused_now = 0
        for key in sorted(listing):
            cls = classify_key(self.env, key)
            if cls.kind == "refuse":
                self._refuse(key, listing[key].etag, "key", cls.reason, cls.package or None)
                refused_now += 1
            elif cls.kind in ("dag", "metadata"):
                found.setdefault(cls.package, {})[cls.rest] = (cls, listing[key])

        report.complete = True  # until a download fails
        self._refused_in_plans = 0
        plans: dict[str, Plan] = {}
        for name in sorted(set(found) | set(self.state.packages)):
            plans[name] = self._plan(name, found.get(name, {}), report)
        self._claim(plans)
        self._fetch(plans, listing, report)
        self._guard(plans, report)
        self._apply(plans, report)
        for name in set(self.state.records) - {n for n, f in found.items() if releases.METADATA in f}:
            del self.state.records[name]  # no longer a release-mode package
            self._state_dirty = True
        if self._state_dirty:
            self.state.save(self.state_dir)
            self._state_dirty = False
        report.waiting = sorted(p.package for p in plans.values() if p.status == "waiting")
        report.refused = refused_now + self._refused_in_plans
        self.metrics.in_flight.set(len(report.waiting))
        self.metrics.refused_now.set(report.refused)
        return self._finish(report, start)

    def _finish(self, report: CycleReport, start: float) -> CycleReport:
        report.duration = time.monotonic() - start
        self.metrics.duration.observe(report.duration)
        self.metrics.cycles.labels(report.status).inc()
        if report.complete:
            self.metrics.last_success.set(time.time())
        self.log(
            "cycle",
            level="info" if report.status != "error" else "warning",
            status=report.status,
            listed=report.listed,
            written=report.written,
            deleted=report.deleted,
            refused=report.refused,
            errors=report.errors,
            waiting=report.waiting or None,
            seconds=round(report.duration, 3),
            list_seconds=round(report.list_duration, 3),
        )
        return report

    # -- 1. list ------------------------------------------------------------------------------

    def _list(self) -> dict[str, Listed]:
        """Every object under ``<env>/``, or StorageError: a partial listing is never returned."""
        out: dict[str, Listed] = {}
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": f"{self.env}/", "MaxKeys": self.page_size}
        while True:
            try:
                page = self.client.list_objects_v2(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise StorageError(describe(exc, self.bucket)) from exc
            except (OSError, Urllib3Error) as exc:
                raise StorageError(f"s3://{self.bucket}: listing failed: {exc}") from exc
            self.metrics.list_requests.inc()
            contents = page.get("Contents", [])
            if "KeyCount" in page and page["KeyCount"] != len(contents):
                raise StorageError(
                    f"s3://{self.bucket}: listing page is inconsistent (KeyCount != entries); not trusting it"
                )
            for obj in contents:
                out[obj["Key"]] = Listed(obj["Key"], obj.get("ETag", ""), int(obj.get("Size", 0)))
            if not page.get("IsTruncated"):
                return out
            token = page.get("NextContinuationToken")
            if not token:
                raise StorageError(
                    f"s3://{self.bucket}: listing truncated without a continuation token; not trusting it"
                )
            kwargs["ContinuationToken"] = token

    # -- 2. plan ------------------------------------------------------------------------------

    def _plan(self, name: str, files: dict[str, tuple[KeyClass, Listed]], report: CycleReport) -> Plan:
        meta = files.get(releases.METADATA)
        if meta is None:
            return self._plan_mirror(name, files)
        plan = Plan(name, "release")
        try:
            record = self._record(name, meta[1])
        except StorageError as exc:
            plan.status = "error"
            self._error("get", exc, report, package=name)
            return plan
        except SyncError as exc:
            plan.status = "error"
            self._error("record", exc, report, package=name)
            return plan
        plan.release_id, plan.tombstone = record.release_id, record.tombstone
        if record.tombstone:
            return plan
        prefix = f"{self.env}/{name}/"
        manifests = {rest for rest in record.files if rest.endswith(".json")}
        for rest in sorted(record.files):
            entry = record.files[rest]
            key = prefix + rest
            cls = classify_key(self.env, key)
            if cls.kind != "dag":
                self._refuse_want(plan, key, entry.sha256, "key", cls.reason or "not a DAG file")
                continue
            want = Want(rest, "manifest", key, None, entry.sha256, entry.size, entry.version_id)
            if rest.endswith(".json") and entry.size > MANIFEST_MAX_BYTES:
                self._refuse_want(
                    plan, key, entry.sha256, "content", f"manifest is larger than {MANIFEST_MAX_BYTES} bytes"
                )
                continue
            if rest.endswith(".py"):
                _, stub_sha, _ = canonical_stub(cls.name)
                if entry.sha256 == stub_sha and rest[:-3] + ".json" in manifests:
                    continue  # the canonical stub: written below without a GET
                if not self.allow_python or entry.size > _MAX_PYTHON_BYTES:
                    why = (
                        "stub without its manifest" if entry.sha256 == stub_sha else "not the canonical stub"
                    )
                    self._refuse_want(
                        plan,
                        key,
                        entry.sha256,
                        "python",
                        f"{why}; only generated stubs are served (see --allow-python)",
                    )
                    continue
                want.kind = "python"
            plan.wants[rest] = want
        self._add_stubs(plan)
        return plan

    def _plan_mirror(self, name: str, files: dict[str, tuple[KeyClass, Listed]]) -> Plan:
        plan = Plan(name, "mirror")
        for rest, (cls, obj) in sorted(files.items()):
            if cls.is_manifest:
                if obj.size > MANIFEST_MAX_BYTES:
                    self._refuse_want(
                        plan,
                        obj.key,
                        obj.etag,
                        "content",
                        f"manifest is larger than {MANIFEST_MAX_BYTES} bytes",
                    )
                    continue
                plan.wants[rest] = Want(rest, "manifest", obj.key, obj.etag, size=obj.size)
        for rest, (cls, obj) in sorted(files.items()):
            if cls.is_manifest:
                continue
            has_manifest = rest[:-3] + ".json" in plan.wants
            stub_bytes, _, _ = canonical_stub(cls.name)
            canonical = etag_matches(obj.etag, stub_bytes)
            if canonical and has_manifest:
                continue
            if self.allow_python and obj.size <= _MAX_PYTHON_BYTES:
                plan.wants[rest] = Want(rest, "python", obj.key, obj.etag, size=obj.size)
            elif canonical is None and has_manifest:
                plan.wants[rest] = Want(rest, "python", obj.key, obj.etag, size=obj.size, verify_stub=True)
            else:
                why = "stub without its manifest" if canonical else "not the canonical stub"
                self._refuse_want(
                    plan,
                    obj.key,
                    obj.etag,
                    "python",
                    f"{why}; only generated stubs are served (see --allow-python)",
                )
        self._add_stubs(plan)
        return plan

    def _add_stubs(self, plan: Plan) -> None:
        """The sidecar writes each served manifest's canonical stub itself: no GET, no foreign code."""
        applied = self._applied(plan.package)
        for rest in [r for r in plan.wants if r.endswith(".json")]:
            stub_rest = rest[:-5] + ".py"
            if stub_rest not in plan.wants:
                data, sha, _ = canonical_stub(stub_rest.rpartition("/")[2])
                old = applied.get(stub_rest)
                unchanged = (
                    old is not None and old.sha256 == sha and (self.root / plan.package / stub_rest).is_file()
                )
                plan.wants[stub_rest] = Want(stub_rest, "stub", data=data, sha256=sha, unchanged=unchanged)

    def _record(self, name: str, meta: Listed) -> releases.Release:
        """The package's release record: from the state cache when its ETag is unchanged, else a GET."""
        cached = self.state.records.get(name)
        if cached and cached[0] == meta.etag:
            raw = cached[1].encode()
        else:
            if meta.size > _MAX_RECORD_BYTES:
                raise SyncError(f"{meta.key}: release record is larger than {_MAX_RECORD_BYTES} bytes")
            raw, etag = self._get(meta.key)
            self.state.records[name] = (etag or meta.etag, raw.decode("utf-8", "replace"))
            self._state_dirty = True
        record = releases.Release.from_json(raw, file=meta.key)
        if record.package != name or record.environment != self.env:
            raise SyncError(
                f"{meta.key}: release record names package {record.package!r} in environment "
                f"{record.environment!r}; it must be {name!r} in {self.env!r}"
            )
        return record

    def _claim(self, plans: dict[str, Plan]) -> None:
        """A DAG id stays with the package serving it; a newcomer's claim is refused, naming both."""
        claims = self.state.served()
        for name in sorted(plans):
            plan = plans[name]
            if plan.status != "ok":
                continue
            for rest in sorted(r for r in plan.wants if r.endswith(".json")):
                dag_id = rest.rpartition("/")[2][: -len(".json")]
                holder = claims.setdefault(dag_id, name)
                if holder != name:
                    want = plan.wants[rest]
                    reason = (
                        f"dag_id {dag_id!r} is already served by package {holder!r}; "
                        f"refused for package {name!r} (the package serving it keeps it)"
                    )
                    self._refuse_want(
                        plan, want.key or rest, want.sha256 or want.etag or "", "collision", reason
                    )

    # -- 3. fetch -----------------------------------------------------------------------------

    def _fetch(self, plans: dict[str, Plan], listing: dict[str, Listed], report: CycleReport) -> None:
        jobs: list[tuple[Plan, Want]] = []
        for plan in plans.values():
            if plan.status != "ok":
                continue
            applied = self._applied(plan.package)
            for want in plan.wants.values():
                path = self.root / plan.package / want.rest
                old = applied.get(want.rest)
                if want.data is not None:  # a stub the sidecar writes (see _add_stubs)
                    continue
                if (
                    old is not None
                    and path.is_file()
                    and (
                        (plan.mode == "release" and old.sha256 == want.sha256)
                        or (plan.mode == "mirror" and old.etag == want.etag)
                    )
                ):
                    want.unchanged, want.sha256 = True, old.sha256
                    continue
                if plan.mode == "release":
                    listed = listing.get(want.key or "")
                    if listed is None or listed.size != want.size:
                        self._wait(plan, f"{want.rest} is not in S3 yet with the recorded size")
                        break
                jobs.append((plan, want))
        jobs = [(p, w) for p, w in jobs if p.status == "ok"]
        futures = [
            (plan, want, self.pool.submit(self._get, want.key or "", want.version_id)) for plan, want in jobs
        ]
        for plan, want, future in futures:
            try:
                data, etag = future.result()
            except StorageError as exc:
                self._error("get", exc, report, package=plan.package, key=want.key)
                if plan.mode == "release":
                    plan.status = "error"  # keep the last applied release, whole
                else:
                    self._drop(plan, want.rest, keep=True)
                continue
            self.on_progress()
            sha = _sha256(data)
            if plan.mode == "release":
                if sha != want.sha256:
                    self._wait(plan, f"{want.rest} in S3 does not match the recorded sha256")
                    continue
            elif etag_matches(want.etag or "", data) is False:
                exc = StorageError(
                    f"s3://{self.bucket}/{want.key}: body does not match its ETag (cut short or changed during download)"
                )
                self._error("get", exc, report, package=plan.package, key=want.key)
                self._drop(plan, want.rest, keep=True)
                continue
            want.data, want.sha256, want.etag = data, sha, want.etag or etag
        for plan, want, _ in futures:
            if plan.status == "ok" and plan.wants.get(want.rest) is want and want.data is not None:
                self._check_content(plan, want)

    def _check_content(self, plan: Plan, want: Want) -> None:
        key = want.key or want.rest
        assert want.data is not None
        if want.kind == "manifest":
            stem = want.rest.rpartition("/")[2][: -len(".json")]
            verdict = check_manifest(want.data, key=key, package=plan.package, stem=stem)
            if not verdict.serve:
                self._refuse_want(plan, key, want.sha256 or "", "ownership", verdict.reason)
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
            name = want.rest.rpartition("/")[2]
            if want.data == canonical_stub(name)[0]:
                del plan.wants[want.rest]
                self._add_stubs(plan)
            elif not self.allow_python:
                self._refuse_want(
                    plan,
                    key,
                    want.sha256 or "",
                    "python",
                    "not the canonical stub; only generated stubs are served (see --allow-python)",
                )

    def _get(self, key: str, version_id: str | None = None) -> tuple[bytes, str]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            response = self.client.get_object(**kwargs)
            data = response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(describe(exc, self.bucket) + f" ({key})") from exc
        except (OSError, Urllib3Error) as exc:
            raise StorageError(f"s3://{self.bucket}/{key}: download failed: {exc}") from exc
        if len(data) != int(response.get("ContentLength", len(data))):
            raise StorageError(
                f"s3://{self.bucket}/{key}: body cut short ({len(data)} of {response['ContentLength']} bytes)"
            )
        self.metrics.downloaded.inc()
        return data, response.get("ETag", "")

    # -- 4. guard and apply ---------------------------------------------------------------------

    def _deletions(self, plan: Plan) -> list[str]:
        if plan.status != "ok":
            return []
        return sorted(r for r in self._applied(plan.package) if r not in plan.wants and r not in plan.keep)

    def _guard(self, plans: dict[str, Plan], report: CycleReport) -> None:
        """Veto deletions that would shrink the served DAGs by more than the threshold in one cycle.

        A listing that lost objects (eventual consistency, a wrong prefix, a bucket emptied by
        mistake) looks exactly like a mass delete. DAGs added in the same cycle offset deletions,
        so renaming or replacing DAGs is not blocked; retired packages (tombstone) never count.
        """
        served = self.state.dag_count()
        doomed = {
            name: [r for r in self._deletions(plan) if r.endswith(".json")]
            for name, plan in plans.items()
            if not plan.tombstone
        }
        added = sum(
            1
            for plan in plans.values()
            if plan.status == "ok"
            for rest in plan.wants
            if rest.endswith(".json") and rest not in self._applied(plan.package)
        )
        count = sum(len(v) for v in doomed.values())
        if served and count and count - added > self.max_delete_fraction * served:
            exc = SyncError(
                f"refusing to delete {count} of {served} served DAGs in one cycle (net loss of more than "
                f"{self.max_delete_fraction:.0%}); retire packages with a tombstone release, or raise "
                "--max-delete-fraction if this is intended"
            )
            self._error("mass_delete_guard", exc, report, packages=sorted(n for n, v in doomed.items() if v))
            for name in doomed:
                plan = plans[name]
                plan.keep.update(self._deletions(plan))

    def _apply(self, plans: dict[str, Plan], report: CycleReport) -> None:
        writes: list[tuple[Plan, Want]] = []
        deletes: list[tuple[str, str]] = []
        for name in sorted(plans):
            plan = plans[name]
            if plan.status != "ok":
                continue
            writes += [
                (plan, w) for _, w in sorted(plan.wants.items()) if not w.unchanged and w.data is not None
            ]
            deletes += [(name, rest) for rest in self._deletions(plan)]
        changed_manifests = {(p.package, w.rest[:-5]) for p, w in writes if w.rest.endswith(".json")}
        touches = [
            (p, w)
            for p in plans.values()
            if p.status == "ok"
            for w in p.wants.values()
            if w.unchanged and w.rest.endswith(".py") and (p.package, w.rest[:-3]) in changed_manifests
        ]
        if writes or deletes:
            self.state.pending = [f"{p.package}/{w.rest}" for p, w in writes] + [
                f"{n}/{r}" for n, r in deletes
            ]
            self.state.save(self.state_dir)

        # Manifests first, then Python: a stub never appears before its manifest. Within a phase the
        # writes run in parallel (fsync releases the GIL); the phase ends only when all are renamed.
        for phase in (".json", ".py"):
            batch = [(p, w) for p, w in writes if w.rest.endswith(phase)]
            actions = {}
            for plan, want in batch:
                path = self.root / plan.package / want.rest
                actions[path] = "update" if path.exists() else "add"
                path.parent.mkdir(parents=True, exist_ok=True)
            results = [
                self.pool.submit(_write, self.root / p.package / w.rest, w.data or b"") for p, w in batch
            ]
            failure: BaseException | None = None
            for (plan, want), result in zip(batch, results, strict=True):
                try:
                    result.result()
                except BaseException as exc:  # re-raised below, after the successful writes are recorded
                    failure = failure or exc
                    continue
                path = self.root / plan.package / want.rest
                self._record_applied(plan, want)
                self.metrics.written.labels(actions[path]).inc()
                report.written += 1
                self.log(
                    actions[path],
                    package=plan.package,
                    path=f"{plan.package}/{want.rest}",
                    sha256=want.sha256,
                    release_id=plan.release_id,
                    mode=plan.mode,
                )
            for directory in {(self.root / p.package / w.rest).parent for p, w in batch}:
                _fsync_dir(directory)
            if failure is not None:
                raise failure
            self.on_progress()
        for plan, want in touches:
            # The stub's bytes did not change but its manifest did: advance its mtime so Airflow's
            # modified_time ordering reparses it now rather than after min_file_process_interval.
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.root / plan.package / want.rest)
        # Stubs before manifests: a stub never outlives its manifest.
        for name, rest in sorted(deletes, key=lambda nr: (not nr[1].endswith(".py"), nr[0], nr[1])):
            with contextlib.suppress(FileNotFoundError):
                (self.root / name / rest).unlink()
            self.state.packages[name].files.pop(rest, None)
            self.metrics.deleted.inc()
            report.deleted += 1
            self.log(
                "delete",
                package=name,
                path=f"{name}/{rest}",
                release_id=plans[name].release_id,
                mode=plans[name].mode,
                retired=plans[name].tombstone or None,
            )
        for name in {n for n, _ in deletes}:
            self._remove_empty_dirs(name)

        for name, plan in plans.items():
            pkg = self.state.packages.get(name)
            if plan.status == "ok" and pkg is not None:
                if (pkg.mode, pkg.release_id) != (plan.mode, plan.release_id):
                    pkg.mode, pkg.release_id = plan.mode, plan.release_id
                    self._state_dirty = True
                if not pkg.files:
                    del self.state.packages[name]
                    pkg = None
                    self._state_dirty = True
            self.metrics.set_release(name, pkg.release_id if pkg else None)
        if writes or deletes:
            self.state.pending = []
            self._state_dirty = True
        self.metrics.dags.set(self.state.dag_count())

    def _record_applied(self, plan: Plan, want: Want) -> None:
        pkg = self.state.packages.setdefault(plan.package, PackageState(mode=plan.mode))
        assert want.sha256 is not None
        pkg.files[want.rest] = Applied(want.sha256, want.etag)

    def _remove_empty_dirs(self, name: str) -> None:
        for directory in (self.root / name / releases.DAGS_DIR, self.root / name):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only succeeds when empty

    # -- bookkeeping ----------------------------------------------------------------------------

    _state_dirty = False
    _refused_in_plans = 0
    page_size = 1000  # S3's maximum; tests lower it to exercise pagination cheaply

    def _applied(self, name: str) -> dict[str, Applied]:
        pkg = self.state.packages.get(name)
        return pkg.files if pkg else {}

    def _drop(self, plan: Plan, rest: str, *, keep: bool) -> None:
        """Stop wanting ``rest`` (and, for a manifest, its stub); keep what is applied when asked."""
        related = [rest] + ([rest[:-5] + ".py"] if rest.endswith(".json") else [])
        for item in related:
            plan.wants.pop(item, None)
            if keep and item in self._applied(plan.package):
                plan.keep.add(item)

    def _refuse_want(self, plan: Plan, key: str, version: str, kind: str, reason: str) -> None:
        rest = key[len(f"{self.env}/{plan.package}/") :] if key.startswith(f"{self.env}/") else key
        self._drop(plan, rest, keep=True)
        self._refused_in_plans += 1
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

    def _wait(self, plan: Plan, why: str) -> None:
        """The recorded release is not (all) in S3 yet: keep the last applied one and retry."""
        plan.status = "waiting"
        if self._waiting_logged.get(plan.package) != plan.release_id:
            self._waiting_logged[plan.package] = plan.release_id or ""
            self.log(
                "waiting",
                package=plan.package,
                release_id=plan.release_id,
                reason=why,
                note="publish in flight; keeping the last applied release",
            )

    def _error(self, kind: str, exc: DagFactoryError, report: CycleReport, **fields: Any) -> None:
        report.errors += 1
        if isinstance(exc, StorageError):
            report.complete = False
        self.metrics.errors.labels(kind).inc()
        self.log("error", level="error", kind=kind, error=str(exc), **fields)


def _write(path: Path, data: bytes) -> None:
    """Temp file in the destination directory, fsync, rename: a reader sees the old or the new file.

    Unlike files.atomic_write, the directory is fsynced once per batch by the caller (_fsync_dir),
    not once per file: a cold sync writes thousands of files into a handful of directories.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
