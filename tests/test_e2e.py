"""End to end, with real processes: a package publishes and a running Airflow picks it up, no restart.

One stack for the whole module (starting Airflow costs tens of seconds on two cores): a moto server
over HTTP, ``airflow-dag-sync`` running continuously, ``airflow dag-processor`` running continuously
against SQLite with the settings docs/deploy.md recommends, the deploy kit's policy published to the
bucket (``policy publish``) and served by the sidecar, and ``airflow-dag-publisher`` run as a user runs
it (checking against that published policy, as the demo does).
``min_file_process_interval`` is an hour, so every change below is picked up through the stub's mtime
(``file_parsing_sort_mode=modified_time``), never by periodic re-parsing.

The tests are one story and run in file order: publish, add, change, republish unchanged, delete,
then hostile content planted directly in S3. A watcher thread checks the dags folder throughout.
Set ``DAGFACTORY_E2E_REPORT=path.json`` to keep the measured latencies (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dagfactory_s3 import stub

import timing
from conftest import ROOT

# demo/ is a repository tool, not part of the wheel; `python -m pytest` has the root on sys.path
# already, a bare `pytest` does not.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from demo.stack import BIN, Proc, Settings, Stack, Trial, percentile, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.airflow]

SYNC_INTERVAL = 3  # DAG_SYNC_INTERVAL of the sidecar
REFRESH_INTERVAL = 3  # [dag_processor] refresh_interval: new and deleted files
BUNDLE_CHECK = 5  # [dag_processor] bundle_refresh_check_interval (Airflow's default)
MIN_FILE_PROCESS_INTERVAL = 3600  # long on purpose: nothing is re-parsed unless its mtime moves
SLACK = 8.0  # parse + poll time allowed on a loaded 2-core machine
TRIALS = 5
EXAMPLE_DAGS = {
    "pipeline_processing_example_job",
    "reporting_seeder_refresh_agency",
    "reporting_seeder_refresh_all",
}
BROKEN = "legacy_team_broken"


class Watcher(threading.Thread):
    """Polls the dags folder for the whole module: only canonical stubs, never a stub without manifest."""

    def __init__(self, dags: Path) -> None:
        super().__init__(daemon=True)
        self.dags = dags
        self.violations: list[str] = []
        self.seen: set[str] = set()
        self.scans = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.scan()
            self._halt.wait(0.05)

    def scan(self) -> None:
        for path in self.dags.rglob("*.py"):
            rel = str(path.relative_to(self.dags))
            if any(part.startswith(".") for part in path.relative_to(self.dags).parts[:-1]):
                continue
            self.seen.add(rel)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            if not stub.is_canonical(path.name, data):
                self.violations.append(f"non-canonical Python in the dags folder: {rel}")
            if not path.with_suffix(".json").exists() and path.exists():
                self.violations.append(f"stub without its manifest: {rel}")
        self.scans += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


@dataclass
class E2E:
    stack: Stack
    processor: Proc
    watcher: Watcher
    marker: Path
    trials: list[Trial] = field(default_factory=list)


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory):
    """The running stack: S3 (empty bucket), the sidecar, a migrated SQLite DB and the dag-processor."""
    stack = Stack(
        tmp_path_factory.mktemp("e2e"),
        Settings(
            sync_interval=SYNC_INTERVAL,
            refresh_interval=REFRESH_INTERVAL,
            min_file_process_interval=MIN_FILE_PROCESS_INTERVAL,
            # legacy_team below has no release record: a team in the migration window, served only
            # because the platform opted in (DAG_SYNC_MIRROR_UNRELEASED), object by object.
            mirror_unreleased=True,
        ),
    )
    watcher = Watcher(stack.dags)
    try:
        with timing.kind("end-to-end stack start (S3, sidecar, migrate, dag-processor)"):
            migrate = stack.start_migrate()
            stack.start_s3()
            stack.publish_policy()
            stack.copy_examples()
            stack.start_sync()
            watcher.start()
            stack.wait_migrate(migrate)
            processor = stack.start_dag_processor()
            wait_for("the dag-processor to record its job", lambda: stack.db.processor_jobs(), timeout=120)
        yield E2E(stack, processor, watcher, stack.workdir / "IMPORTED")
    finally:
        try:
            if watcher.is_alive():
                watcher.stop()
        finally:
            stack.stop()


def _fail_with_logs(e2e: E2E, message: str) -> None:
    logs = "\n".join(f"--- {p.name} ---\n{p.tail(15)}" for p in e2e.stack.procs.values())
    pytest.fail(f"{message}\n{logs}")


def _wait(e2e: E2E, what: str, check, timeout: float = 120, poll: float = 0.2):
    def checked():
        e2e.stack.check_alive()
        return check()

    try:
        return wait_for(what, checked, timeout=timeout, poll=poll)
    except RuntimeError as exc:
        _fail_with_logs(e2e, str(exc))


def _airflow(e2e: E2E, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / "airflow"), *args],
        env=e2e.stack.airflow_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _sync_events(e2e: E2E, event: str) -> list[dict]:
    lines = (e2e.stack.logs / "sync.log").read_text().splitlines()
    return [
        d for d in (json.loads(line) for line in lines if line.startswith("{")) if d.get("event") == event
    ]


# -- the story ---------------------------------------------------------------------------------


def test_publish_registers_the_dags_in_the_running_airflow(e2e: E2E):
    """Publishing both example packages with the CLI registers their 3 DAGs; the processor never restarts."""
    pid = e2e.processor.pid
    for package in ("pipeline_processing", "reporting_seeder"):
        assert e2e.stack.publish(package).changed
    active = _wait(
        e2e, "the example DAGs", lambda: (a := e2e.stack.db.active()) and set(a) >= EXAMPLE_DAGS and a
    )
    assert set(active) == EXAMPLE_DAGS
    assert active["reporting_seeder_refresh_all"].schedule == "0 0 * * *"
    assert [t for t, _ in active["reporting_seeder_refresh_all"].tasks] == [
        "extract",
        "refresh_tables",
        "publish_summary",
    ]
    assert active["pipeline_processing_example_job"].images == [
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/pipeline-processing:v1.0.0"
    ]
    # Unpaused by the published policy's paused_on_create (the manifest does not set it): Airflow read
    # the copy the sidecar served from the bucket (the image names no policy file).
    assert e2e.stack.db.paused()["pipeline_processing_example_job"] is False
    assert e2e.processor.alive() and e2e.processor.pid == pid
    assert len(e2e.stack.db.processor_jobs()) == 1


def test_new_dag_is_registered_within_sync_and_refresh_interval(e2e: E2E):
    """Each of 5 new DAGs (replacing the previous one) is served within sync + refresh interval + slack."""
    stack = e2e.stack
    folder = stack.package_dir("pipeline_processing")
    bound = SYNC_INTERVAL * 1.1 + max(REFRESH_INTERVAL, BUNDLE_CHECK) + SLACK
    for i in range(TRIALS):
        dag_id = f"pipeline_processing_trial_{i}"
        if i:
            for suffix in (".json", ".py"):
                (folder / f"pipeline_processing_trial_{i - 1}{suffix}").unlink()
        stack.cli(
            "generate",
            "--package-name",
            "pipeline_processing",
            "--dag-id",
            dag_id,
            "--job-name",
            "trial",
            "--image-tag",
            f"123456789012.dkr.ecr.us-east-1.amazonaws.com/pipeline-processing:v1.{i}.0",
            "--schedule",
            "@hourly",
            "--start-date",
            "2024-01-01",
            "--output",
            str(folder / f"{dag_id}.py"),
        )
        trial = stack.measure("new", "pipeline_processing", dag_id, timeout=120)
        e2e.trials.append(trial)
        assert trial.visible - trial.published <= bound, trial
    dags = stack.db.dags()
    assert all(dags[f"pipeline_processing_trial_{i}"].stale for i in range(TRIALS - 1))
    assert not dags[f"pipeline_processing_trial_{TRIALS - 1}"].stale


def test_manifest_update_is_parsed_within_the_sync_interval(e2e: E2E):
    """A changed manifest is a new DAG version within the sync interval + slack, though nothing re-parses for an hour."""
    stack = e2e.stack
    # A DAG version that has task instances is immutable: give each example one, so a change must
    # create a new version (and a non-deterministic DAG would show up as extra versions later).
    for dag_id in sorted(EXAMPLE_DAGS):
        _airflow(e2e, "dags", "trigger", dag_id)
    dag_id = "reporting_seeder_refresh_all"
    path = stack.package_dir("reporting_seeder") / f"{dag_id}.json"
    assert stack.db.dags()[dag_id].versions == 1
    for i in range(TRIALS):
        old, new = f"reporting-seeder:2.4.{i + 1}", f"reporting-seeder:2.4.{i + 2}"
        path.write_text(path.read_text().replace(old, new))
        trial = stack.measure("change", "reporting_seeder", dag_id, timeout=120)
        e2e.trials.append(trial)
        assert trial.visible - trial.published <= SYNC_INTERVAL * 1.1 + SLACK, trial
        info = stack.db.dags()[dag_id]
        assert info.images == [f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{new}"]
    # The first change made version 2; later ones rewrote it in place (it has no task instances).
    assert stack.db.dags()[dag_id].versions == 2


def test_unchanged_republish_and_20_parse_cycles_keep_one_version_per_dag(e2e: E2E):
    """Republishing unchanged writes nothing; 20 re-parses of every DAG leave versions and hashes as they were."""
    stack = e2e.stack
    before = {d: (i.versions, i.dag_hash, i.serialized_updated) for d, i in stack.db.active().items()}
    stubs = sorted(p for p in stack.dags.rglob("*.py") if not p.parent.name.startswith("."))
    mtimes = {p: p.stat().st_mtime_ns for p in stubs}
    for package in ("pipeline_processing", "reporting_seeder"):
        assert not stack.publish(package).changed
    time.sleep(2 * SYNC_INTERVAL + 1)  # two sidecar cycles: nothing to write, no mtime moves
    assert {p: p.stat().st_mtime_ns for p in stubs} == mtimes

    # min_file_process_interval is an hour: force each parse cycle by advancing the stubs' mtime,
    # exactly what the sidecar does when a manifest changes.
    for cycle in range(20):
        parsed = {d: i.last_parsed_time for d, i in stack.db.active().items()}
        now = time.time()
        for path in stubs:
            os.utime(path, (now, now))
        _wait(
            e2e,
            f"parse cycle {cycle + 1}",
            lambda parsed=parsed: all(
                (i := stack.db.dags().get(d)) and i.last_parsed_time != t for d, t in parsed.items()
            ),
            timeout=60,
            poll=0.1,
        )
    after = {d: (i.versions, i.dag_hash, i.serialized_updated) for d, i in stack.db.active().items()}
    assert after == before
    assert {d: v for d, (v, _, _) in after.items() if d in EXAMPLE_DAGS} == {
        "pipeline_processing_example_job": 1,
        "reporting_seeder_refresh_agency": 1,
        "reporting_seeder_refresh_all": 2,
    }
    assert stack.db.rows("select dag_id, message from dag_warning") == []
    assert stack.db.import_errors() == []


def test_deleted_dag_leaves_the_folder_and_is_marked_stale(e2e: E2E):
    """Removing a DAG from the package removes both files from the dags folder; Airflow marks it stale."""
    stack = e2e.stack
    dag_id = f"pipeline_processing_trial_{TRIALS - 1}"
    for suffix in (".json", ".py"):
        (stack.package_dir("pipeline_processing") / f"{dag_id}{suffix}").unlink()
    trial = stack.measure("delete", "pipeline_processing", dag_id, timeout=120)
    e2e.trials.append(trial)
    assert not list(stack.dags.rglob(f"{dag_id}.*"))
    assert stack.db.dags()[dag_id].stale
    assert set(stack.db.active()) == EXAMPLE_DAGS


def test_bad_manifest_planted_in_s3_is_exactly_one_import_error(e2e: E2E):
    """An invalid manifest put straight into S3 is served, and is Airflow's one import error; the rest stay active."""
    stack = e2e.stack
    s3 = stack.s3_client()
    manifest = {
        "schema_version": 1,
        "package": "legacy_team",
        "dag_id": BROKEN,
        "schedule": "0 3 * * *",
        "start_date": "2024-01-01",
        "job": {"name": "broken", "image": "registry.example.com/legacy:latest"},
    }
    prefix = f"{stack.environment}/legacy_team/dags/{BROKEN}"
    s3.put_object(Bucket=stack.bucket, Key=f"{prefix}.json", Body=json.dumps(manifest).encode())
    s3.put_object(Bucket=stack.bucket, Key=f"{prefix}.py", Body=stub.render(f"{BROKEN}.json"))
    errors = _wait(e2e, "the import error", lambda: stack.db.import_errors(), timeout=60)
    time.sleep(SYNC_INTERVAL + 2)  # another sidecar cycle and parse: still one error, not more
    errors = stack.db.import_errors()
    assert [f for f, _ in errors] == [f"legacy_team/dags/{BROKEN}.py"]
    assert "/job/image: image tag 'latest'" in errors[0][1] and "pin a version or digest" in errors[0][1]
    assert set(stack.db.active()) == EXAMPLE_DAGS


def test_planted_python_never_reaches_the_dags_folder(e2e: E2E):
    """Non-canonical .py files put straight into S3 are refused: never on disk, never imported."""
    stack = e2e.stack
    s3 = stack.s3_client()
    evil = f"import pathlib\npathlib.Path({str(e2e.marker)!r}).write_text('imported')\n".encode()
    refused = [
        f"{stack.environment}/legacy_team/dags/legacy_team_evil.py",  # no manifest at all
        f"{stack.environment}/legacy_team/dags/{BROKEN}.py",  # replaces a canonical stub (mirror package)
    ]
    # A package with a release record is served exactly as recorded: other keys are not even fetched.
    ignored = f"{stack.environment}/pipeline_processing/dags/pipeline_processing_evil.py"
    for key in [*refused, ignored]:
        s3.put_object(Bucket=stack.bucket, Key=key, Body=evil)
    _wait(
        e2e,
        "the sidecar to refuse the planted files",
        lambda: {e.get("key") for e in _sync_events(e2e, "refuse")} >= set(refused),
        timeout=60,
    )
    time.sleep(max(REFRESH_INTERVAL, BUNDLE_CHECK) + 2)  # a bundle refresh: Airflow lists the folder again
    assert not e2e.marker.exists()
    assert not [p for p in e2e.watcher.seen if "evil" in p]
    assert stub.is_canonical(
        f"{BROKEN}.py", (stack.dags / "legacy_team" / "dags" / f"{BROKEN}.py").read_bytes()
    )
    assert [f for f, _ in stack.db.import_errors()] == [f"legacy_team/dags/{BROKEN}.py"]
    assert set(stack.db.active()) == EXAMPLE_DAGS


def test_airflow_was_never_restarted_and_the_folder_was_always_clean(e2e: E2E):
    """Same dag-processor process and job from start to end; the watcher saw no partial or foreign file."""
    assert e2e.processor.alive()
    assert [state for _, state, _ in e2e.stack.db.processor_jobs()] == ["running"]
    e2e.watcher.stop()
    assert e2e.watcher.scans > 100
    assert e2e.watcher.violations == []
    _report(e2e.trials)


def _report(trials: list[Trial]) -> None:
    summary = {}
    for kind in ("new", "change", "delete"):
        values = [t.visible for t in trials if t.kind == kind]
        if values:
            summary[kind] = {
                "n": len(values),
                "p50": round(percentile(values, 50), 2),
                "p95": round(percentile(values, 95), 2),
                "max": round(max(values), 2),
                "stages_p50": {
                    stage: round(percentile([getattr(t, stage) for t in trials if t.kind == kind], 50), 2)
                    for stage in ("published", "on_disk", "visible")
                },
            }
    settings = {
        "DAG_SYNC_INTERVAL": SYNC_INTERVAL,
        "refresh_interval": REFRESH_INTERVAL,
        "bundle_refresh_check_interval": BUNDLE_CHECK,
        "min_file_process_interval": MIN_FILE_PROCESS_INTERVAL,
    }
    report = {"settings": settings, "summary": summary, "trials": [t.__dict__ for t in trials]}
    print(json.dumps(summary, indent=2))
    if out := os.environ.get("DAGFACTORY_E2E_REPORT"):
        Path(out).write_text(json.dumps(report, indent=2) + "\n")
