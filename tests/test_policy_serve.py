"""The platform policy in the bucket, as Airflow reads it: the sidecar serves it beside the packages,
fail-static, and the factory builds (and renders) every DAG under the served copy.

The sidecar is driven in-process (tests/test_sync.py's ``Sidecar``) against moto over HTTP; Airflow is a
real ``DagBag`` over the same dags folder, parsed again in the same process after a cycle, as the
dag-processor does after a policy change: no restart anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_sync import ENV, Sidecar, World, watching
from test_sync_process import events, run_once

from dagfactory_s3 import platform
from dagfactory_s3.serve import policy as policies

from airflow_env import dag_bag
from bad_inputs import GOOD

FIRST, SECOND, THIRD = (f"2026010{n}T000000.000Z-{c * 6}" for n, c in ((1, "a"), (2, "b"), (3, "c")))
EMAIL = {"kind": "smtp", "to": ["oncall@example.com"], "smtp_conn_id": "smtp_alerts"}


def policy_doc(*notifiers: str, dag_run_conf: bool = False) -> dict:
    """A platform policy defining ``notifiers`` (all granted to every package)."""
    grants: dict = {"notifiers": list(notifiers)}
    if dag_run_conf:
        grants["dag_run_conf"] = True
    return {"notifiers": {name: EMAIL for name in notifiers}, "grants": {"*": grants}}


def publish_policy(world: World, policy: dict | bytes, policy_id: str, *, body: bytes | None = None) -> bytes:
    """Publish a policy as ``policy publish`` lays it out: the object named by the sha256 of the
    policy's bytes, then the pointer. ``body``: what the object holds instead (a corrupt object)."""
    data = policy if isinstance(policy, bytes) else json.dumps(policy).encode()
    sha = hashlib.sha256(data).hexdigest()
    world.client.put_object(Bucket=world.bucket, Key=policies.object_key(ENV, sha), Body=body or data)
    pointer = policies.PolicyRecord(ENV, policies.PolicyEntry(policy_id, sha, len(data)))
    world.client.put_object(Bucket=world.bucket, Key=policies.pointer_key(ENV), Body=pointer.to_json())
    return data


def alerting_manifest(notifier: str = "team-page") -> bytes:
    """DAG ``demo_alerts`` of package ``demo``, alerting ``notifier`` on failure."""
    doc = json.loads(json.dumps(GOOD))
    doc.update(package="demo", dag_id="demo_alerts", alerts={"on_failure": [notifier]})
    return json.dumps(doc).encode()


@pytest.fixture
def world(s3, bucket) -> World:
    return World(s3, bucket)


@pytest.fixture
def dags(tmp_path, world) -> Iterator[Path]:
    """The dags folder, watched for the whole test (no partial file, no stub without its manifest)."""
    with watching(tmp_path / "dags", world) as watch:
        yield watch.root


@pytest.fixture
def sidecar(world, dags) -> Iterator[Sidecar]:
    side = Sidecar(world, dags)
    yield side
    side.reconciler.close()


def served_id(dags: Path) -> str:
    return (dags / "_platform" / "policy.id").read_text()


class TestServing:
    def test_a_cycle_serves_the_published_policy_beside_the_packages(self, s3, world, sidecar, dags):
        """The pointer's current policy lands in _platform/ byte for byte with its id, said once in the log
        and the info metric; unchanged, later cycles and a restart make no GET for it."""
        world.release("demo", {"demo_alerts.json": alerting_manifest()})
        raw = publish_policy(world, policy_doc("team-page"), FIRST)
        report = sidecar.cycle()
        assert report.complete and report.errors == 0 and sidecar.events("refuse") == []
        assert (dags / "_platform" / "policy.json").read_bytes() == raw
        assert served_id(dags) == f"{FIRST} {ENV}\n"
        [event] = sidecar.events("policy")
        assert event["policy_id"] == FIRST and event["key"] == f"{ENV}/_platform/policy.json"
        assert sidecar.metric("dagsync_policy_info", policy_id=FIRST) == 1
        assert "_platform/policy.json" not in str(sidecar.served())  # not a package: nothing of it in dags/
        s3.clear()
        sidecar.cycle()
        sidecar.restart()
        sidecar.cycle()
        assert s3.count("GET") == 0 and len(sidecar.events("policy")) == 1

    def test_a_new_policy_replaces_the_served_one_and_reparses_every_dag(self, world, sidecar, dags):
        """A new pointer serves the new policy and advances every served stub's mtime, so the
        dag-processor parses each DAG again now, not at its periodic re-parse."""
        world.release("demo", {"demo_alerts.json": alerting_manifest()})
        publish_policy(world, policy_doc("oncall"), FIRST)
        sidecar.cycle()
        stub = dags / "demo" / "dags" / "demo_alerts.py"
        os.utime(stub, (1_000_000, 1_000_000))
        publish_policy(world, policy_doc("oncall", "team-page"), SECOND)
        sidecar.cycle()
        assert served_id(dags) == f"{SECOND} {ENV}\n" and stub.stat().st_mtime > 1_000_000
        assert [e["previous"] for e in sidecar.events("policy")[1:]] == [FIRST]
        assert sidecar.metric("dagsync_policy_info", policy_id=SECOND) == 1
        assert sidecar.metric("dagsync_policy_info", policy_id=FIRST) == 0

    def test_the_policy_survives_cleanups_and_is_nothing_airflow_imports(self, world, sidecar, dags):
        """Retiring every package leaves _platform/ alone; it holds JSON and an id, never .py or a zip."""
        world.release("demo", {"demo_alerts.json": alerting_manifest()})
        publish_policy(world, policy_doc("team-page"), FIRST)
        sidecar.cycle()
        world.release("demo", {}, tombstone=True)
        sidecar.cycle()
        assert sidecar.served() == {}
        files = sorted(p.name for p in (dags / "_platform").iterdir())
        assert files == ["policy.id", "policy.json"]
        assert not any(zipfile.is_zipfile(dags / "_platform" / name) for name in files)

    def test_a_removed_pointer_keeps_the_served_policy(self, world, sidecar, dags):
        """A pointer deleted from S3 is said once; the last policy stays served (a platform retires a
        policy by publishing a permissive one)."""
        publish_policy(world, policy_doc("team-page"), FIRST)
        sidecar.cycle()
        world.delete(policies.pointer_key(ENV))
        sidecar.cycle()
        sidecar.cycle()
        assert served_id(dags) == f"{FIRST} {ENV}\n"
        [removed] = sidecar.events("policy_removed")
        assert removed["policy_id"] == FIRST and removed["level"] == "warning"

    def test_a_temp_file_left_by_a_kill_is_removed_on_restart(self, world, sidecar, dags):
        """A write of the served copy interrupted by SIGKILL leaves no temp file after a restart."""
        publish_policy(world, policy_doc("team-page"), FIRST)
        sidecar.cycle()
        leftover = dags / "_platform" / ".policy.json.x1y2.tmp"
        leftover.write_bytes(b"{")
        sidecar.restart()
        assert not leftover.exists() and served_id(dags) == f"{FIRST} {ENV}\n"


class TestFailStatic:
    @pytest.mark.parametrize(
        ("policy", "body", "reason"),
        [
            (policy_doc(), b'{"notifiers": {}, "grants": {}}  ', "does not match the sha256 and size"),
            (b"{not json", None, "policy is not valid JSON"),
        ],
        ids=["sha256-mismatch", "invalid-json-with-matching-sha256"],
    )
    def test_a_corrupt_policy_object_is_kept_out(self, world, sidecar, dags, policy, body, reason):
        """An object that does not verify, or verifies and is no policy, is not served: the previous
        policy stays, with one policy_refused line and one count however many cycles see it."""
        publish_policy(world, policy_doc("team-page"), FIRST)
        sidecar.cycle()
        publish_policy(world, policy, SECOND, body=body)
        for _ in range(3):
            assert sidecar.cycle().complete
        assert served_id(dags) == f"{FIRST} {ENV}\n"
        [refused] = sidecar.events("policy_refused")
        assert reason in refused["reason"] and refused["key"] == policies.pointer_key(ENV)
        assert refused["note"] == f"keeping the served policy {FIRST}"
        assert sidecar.metric("dagsync_policy_refused_total") == 1
        assert sidecar.metric("dagsync_policy_info", policy_id=FIRST) == 1
        publish_policy(world, policy_doc("team-page", "oncall"), THIRD)  # the platform publishes a fix
        sidecar.cycle()
        assert served_id(dags) == f"{THIRD} {ENV}\n"

    def test_a_pointer_that_is_no_pointer_is_kept_out(self, world, sidecar, dags):
        """A pointer object that does not parse keeps the served policy; with none served before, none is."""
        world.put(policies.pointer_key(ENV), b'{"format": "something else"}')
        assert sidecar.cycle().complete
        [refused] = sidecar.events("policy_refused")
        assert "not a policy pointer" in refused["reason"] and refused["note"] == "no policy served yet"
        assert not (dags / "_platform").exists()

    def test_a_symlinked_platform_folder_is_not_written_through(self, tmp_path, world, sidecar, dags):
        """A link planted at _platform/ is refused: nothing is written outside the dags folder."""
        outside = tmp_path / "outside"
        outside.mkdir()
        (dags / "_platform").symlink_to(outside)
        publish_policy(world, policy_doc("team-page"), FIRST)
        assert sidecar.cycle().complete
        assert list(outside.iterdir()) == []
        assert "symbolic link" in sidecar.events("policy_refused")[0]["reason"]


@pytest.mark.airflow
class TestAirflowReadsTheServedCopy:
    @pytest.fixture(autouse=True)
    def _airflow(self, monkeypatch):
        pytest.importorskip("airflow", reason="needs the [airflow] extra")
        monkeypatch.delenv(platform.POLICY_ENV, raising=False)

    def test_a_served_policy_change_reaches_the_factory_without_a_restart(self, world, sidecar, dags):
        """A manifest naming a notifier the served policy lacks is the DAG's import error, naming the
        policy; after a new policy is published and the next cycle serves it, a fresh parse in the same
        process builds the DAG."""
        world.release("demo", {"demo_alerts.json": alerting_manifest("team-page")})
        publish_policy(world, policy_doc("oncall"), FIRST)
        sidecar.cycle()
        stub = str(dags / "demo" / "dags" / "demo_alerts.py")
        bag = dag_bag(dags)
        assert list(bag.import_errors) == [stub] and bag.dags == {}
        label = policies.label(ENV, FIRST)
        assert (
            f"unknown notifier 'team-page'; the platform policy ({label}) defines: oncall"
            in (bag.import_errors[stub])
        )
        publish_policy(world, policy_doc("oncall", "team-page"), SECOND)
        sidecar.cycle()
        bag = dag_bag(dags)
        assert bag.import_errors == {} and list(bag.dags) == ["demo_alerts"]

    def test_tasks_render_under_the_policy_their_dag_was_parsed_with(self, world, sidecar, dags):
        """The render-time template scope reads the copy served beside the DAG's stub: a grant of
        dag_run.conf in the served policy reaches the task, and goes when the policy drops it."""
        world.release("demo", {"demo_alerts.json": alerting_manifest("team-page")})
        publish_policy(world, policy_doc("team-page", dag_run_conf=True), FIRST)
        sidecar.cycle()
        task = dag_bag(dags).dags["demo_alerts"].tasks[0]
        assert task.dag.fileloc == str(dags / "demo" / "dags" / "demo_alerts.py")
        assert task._template_scope().conf is True
        publish_policy(world, policy_doc("team-page"), SECOND)
        sidecar.cycle()
        assert task._template_scope().conf is False

    def test_dagfactory_policy_overrides_the_served_copy(self, tmp_path, world, sidecar, dags, monkeypatch):
        """The image's DAGFACTORY_POLICY file wins over the served policy: an explicit override."""
        world.release("demo", {"demo_alerts.json": alerting_manifest("team-page")})
        publish_policy(world, policy_doc("oncall"), FIRST)
        sidecar.cycle()
        override = tmp_path / "image-policy.json"
        override.write_text(json.dumps(policy_doc("team-page")))
        monkeypatch.setenv(platform.POLICY_ENV, str(override))
        bag = dag_bag(dags)
        assert bag.import_errors == {} and list(bag.dags) == ["demo_alerts"]

    def test_nothing_served_is_the_default_policy_as_before(self, world, sidecar, dags):
        """No policy in the bucket and no DAGFACTORY_POLICY: the built-in default, which defines no
        notifier, and the import error says where a policy would come from."""
        world.release("demo", {"demo_alerts.json": alerting_manifest("team-page")})
        world.release("plain", {"plain_a.json": plain_manifest()})
        sidecar.cycle()
        assert not (dags / "_platform").exists()
        bag = dag_bag(dags)
        assert list(bag.dags) == ["plain_a"]
        [error] = bag.import_errors.values()
        assert "no platform policy: none is served beside the packages" in error


def plain_manifest() -> bytes:
    doc = json.loads(json.dumps(GOOD))
    doc.update(package="plain", dag_id="plain_a")
    return json.dumps(doc).encode()


def test_once_serves_the_policy_before_exiting(s3, world, dags):
    """The init container (``airflow-dag-sync --once``) serves the policy with the packages, so the
    first parse of every DAG already reads it."""
    world.release("demo", {"demo_alerts.json": alerting_manifest()})
    publish_policy(world, policy_doc("team-page"), FIRST)
    result = run_once(s3, world, dags)
    assert result.returncode == 0, result.stdout + result.stderr
    assert served_id(dags) == f"{FIRST} {ENV}\n"
    assert [e["policy_id"] for e in events(result.stdout) if e["event"] == "policy"] == [FIRST]
