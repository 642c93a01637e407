"""The factory on real Airflow 3.3: manifests become deterministic KubernetesPodOperator DAGs."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("airflow", reason="needs the [airflow] extra")

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

from dagfactory_s3 import factory, manifest, stub
from dagfactory_s3.manifest.pod_fields import FIELDS

from airflow_env import (
    AIRFLOW,
    dag_bag,
    dags_folder_with_examples,
    db_rows,
    migrate,
    probe,
    process_once,
    run_airflow,
)
from bad_inputs import GOOD
from conftest import ROOT, all_examples, example_manifests

pytestmark = [pytest.mark.airflow, pytest.mark.compat]


@pytest.fixture
def dags(tmp_path):
    return dags_folder_with_examples(tmp_path / "dags", example_manifests())


def _bag(folder):
    return dag_bag(folder)


class TestDagBag:
    # Every example loading with zero import errors under the shipped policy: tests/test_examples.py.
    def test_task_graph_follows_depends_on(self, dags):
        """depends_on becomes Airflow upstream edges."""
        dag = _bag(dags).dags["reporting_seeder_refresh_all"]
        assert dag.get_task("refresh_tables").upstream_task_ids == {"extract"}
        assert dag.get_task("publish_summary").upstream_task_ids == {"refresh_tables"}
        assert dag.get_task("extract").upstream_task_ids == set()

    def test_one_bad_manifest_gives_exactly_one_import_error(self, dags):
        """A bad manifest among good ones fails only its own stub; the others load."""
        bad = json.loads(json.dumps(GOOD))
        bad["tasks"][0]["image"] = "registry.example.com/pp:latest"
        (dags / "pipeline_processing_nightly.json").write_text(json.dumps(bad))
        (dags / "pipeline_processing_nightly.py").write_bytes(stub.render("pipeline_processing_nightly.json"))
        bag = _bag(dags)
        assert len(bag.dags) == 3
        assert list(bag.import_errors) == [str(dags / "pipeline_processing_nightly.py")]
        text = bag.import_errors[str(dags / "pipeline_processing_nightly.py")]
        assert f"{dags / 'pipeline_processing_nightly.json'}: /tasks/0/image: image tag 'latest'" in text
        assert "dagfactory_s3/manifest/" not in text  # our internal frames are not part of the record

    def test_missing_manifest_is_an_import_error(self, dags):
        """A stub whose manifest is gone records one clear import error."""
        (dags / "reporting_seeder_refresh_all.json").unlink()
        bag = _bag(dags)
        error = bag.import_errors[str(dags / "reporting_seeder_refresh_all.py")]
        assert "reporting_seeder_refresh_all.json: /: manifest file does not exist" in error
        assert len(bag.dags) == 2

    def test_unsupported_loader_api_is_an_import_error(self, dags):
        """A stub from a future loader API fails with an upgrade hint instead of misbehaving."""
        path = dags / "reporting_seeder_refresh_all.py"
        path.write_bytes(path.read_bytes().replace(b"api=1", b"api=99"))
        error = _bag(dags).import_errors[str(path)]
        assert "stub uses loader API 99" in error


class TestOperators:
    def test_single_job_operator_fields(self, dags):
        """The shorthand job becomes one fully specified KubernetesPodOperator."""
        op = _bag(dags).dags["pipeline_processing_example_job"].get_task("example_job")
        assert isinstance(op, KubernetesPodOperator)
        assert op.image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/pipeline-processing:v1.0.0"
        assert op.cmds == ["python", "-m", "pipeline_processing.jobs.example_job"]
        assert op.arguments == ["--date", "{{ ds }}"]
        assert op.namespace == "etl-jobs"
        assert op.service_account_name == "pipeline-processing"
        assert op.on_finish_action.value == "delete_pod"
        assert op.get_logs is True and op.do_xcom_push is False
        assert op.retries == 2 and op.retry_delay.total_seconds() == 600
        assert op.execution_timeout.total_seconds() == 5400
        assert op.name == "pipeline-processing-example-job-example-job"

    def test_resources_are_v1_resource_requirements(self, dags):
        """Resources are a real V1ResourceRequirements, not a nested dict (dag-factory #520)."""
        op = _bag(dags).dags["pipeline_processing_example_job"].get_task("example_job")
        assert isinstance(op.container_resources, k8s.V1ResourceRequirements)
        assert op.container_resources.requests == {"cpu": "500m", "memory": "1Gi"}
        assert op.container_resources.limits == {"cpu": "2", "memory": "4Gi"}

    def test_env_literal_secret_and_config_map(self, dags):
        """env values become literal, secretKeyRef and configMapKeyRef variables, in manifest order."""
        op = _bag(dags).dags["pipeline_processing_example_job"].get_task("example_job")
        by_name = {e.name: e for e in op.env_vars}
        assert list(by_name) == ["LOG_LEVEL", "DB_PASSWORD", "FEATURE_FLAGS"]
        assert by_name["LOG_LEVEL"].value == "INFO"
        assert by_name["DB_PASSWORD"].value_from.secret_key_ref.name == "pipeline-db"
        assert by_name["FEATURE_FLAGS"].value_from.config_map_key_ref.key == "flags"

    def test_pod_labels_identify_package_dag_and_task(self, dags):
        """Every pod carries package, dag_id, task_id and managed-by labels next to the user's."""
        op = _bag(dags).dags["reporting_seeder_refresh_agency"].get_task("refresh_agency")
        assert op.labels == {
            "team": "reporting",
            "app.kubernetes.io/managed-by": "dagfactory-s3",
            "dagfactory-s3/package": "reporting_seeder",
            "dagfactory-s3/dag-id": "reporting_seeder_refresh_agency",
            "dagfactory-s3/task-id": "refresh_agency",
        }

    def test_task_defaults_reach_operators(self, dags):
        """task_defaults (image, tolerations, node selector, merged limits) apply to every task."""
        dag = _bag(dags).dags["reporting_seeder_refresh_all"]
        refresh = dag.get_task("refresh_tables")
        assert refresh.image.endswith("reporting-seeder:2.4.1")
        assert refresh.node_selector == {"workload": "etl"}
        assert refresh.tolerations[0].key == "dedicated"
        assert refresh.container_resources.limits == {"memory": "2Gi", "cpu": "2"}
        assert dag.get_task("extract").container_resources.limits == {"memory": "1Gi"}

    def test_doc_md_carries_provenance(self, dags):
        """doc_md names the package, manifest sha256 and image, so unserialized changes show up."""
        import hashlib

        raw = (dags / "reporting_seeder_refresh_all.json").read_bytes()
        doc = _bag(dags).dags["reporting_seeder_refresh_all"].doc_md
        assert hashlib.sha256(raw).hexdigest() in doc
        assert "reporting-seeder:2.4.1" in doc and "`reporting_seeder`" in doc


class TestDeterminism:
    @pytest.fixture
    def every(self, tmp_path):
        """The examples and the feature tour (every manifest field in use)."""
        return dags_folder_with_examples(tmp_path / "every", all_examples())

    def test_same_hash_across_interpreters_seeds_cwd_and_path(self, every, tmp_path):
        """Two fresh interpreters (other PYTHONHASHSEED, cwd, sys.path, TZ) give equal dag_hash."""
        dags = every
        for name in ("h1", "h2", "elsewhere"):
            (tmp_path / name).mkdir()
        first = probe(dags, tmp_path / "h1", PYTHONHASHSEED="1", TZ="UTC")
        second = probe(
            dags,
            tmp_path / "h2",
            cwd=tmp_path / "elsewhere",
            PYTHONHASHSEED="4242",
            PYTHONPATH=str(tmp_path / "elsewhere"),
            TZ="Asia/Kolkata",
        )
        assert first["import_errors"] == second["import_errors"] == {}
        assert len(first["hashes"]) == 5
        assert first["hashes"] == second["hashes"]

    def test_library_upgrade_changes_no_hash_and_a_manifest_change_one(self, every, tmp_path):
        """Airflow makes a new DAG version when a DAG's hash changes: an upgrade of dagfactory-s3 that
        builds the same DAGs (here the same code under another __version__, first on the path) changes
        no hash; a manifest change changes exactly its DAG's."""
        lib = tmp_path / "lib"
        shutil.copytree(
            ROOT / "dagfactory_s3", lib / "dagfactory_s3", ignore=shutil.ignore_patterns("__pycache__")
        )
        init = lib / "dagfactory_s3" / "__init__.py"
        text = init.read_text()
        assert '__version__ = "' in text
        mark = tmp_path / "imported-version"
        init.write_text(
            text.replace('__version__ = "', '__version__ = "99.0.0+upgrade-', 1)
            + f"\nopen({str(mark)!r}, 'w').write(__version__)  # proves this copy is the one imported\n"
        )
        for name in ("h1", "h2", "h3"):
            (tmp_path / name).mkdir()
        before = probe(every, tmp_path / "h1")["hashes"]
        upgraded = probe(every, tmp_path / "h2", PYTHONPATH=str(lib))
        assert mark.read_text().startswith("99.0.0+upgrade-")
        assert upgraded["import_errors"] == {} and upgraded["hashes"] == before
        path = every / "reporting_seeder_refresh_all.json"
        path.write_text(path.read_text().replace("reporting-seeder:2.4.1", "reporting-seeder:2.4.2"))
        after = probe(every, tmp_path / "h3")["hashes"]
        assert [d for d in before if before[d] != after[d]] == ["reporting_seeder_refresh_all"]

    def test_dag_versions_in_the_real_dag_processor(self, tmp_path):
        """Airflow's ``dag_version`` rows, counted: after a run of each DAG (a version with task instances
        is kept, not rewritten), the real dag-processor under an upgraded library that builds the same
        DAGs adds no version; a package change in which one DAG's manifest changed adds exactly one."""
        home, lib = tmp_path / "home", tmp_path / "lib"
        home.mkdir()
        dags = dags_folder_with_examples(tmp_path / "dags", example_manifests())
        shutil.copytree(
            ROOT / "dagfactory_s3", lib / "dagfactory_s3", ignore=shutil.ignore_patterns("__pycache__")
        )
        init = lib / "dagfactory_s3" / "__init__.py"
        mark = tmp_path / "imported-version"
        init.write_text(
            init.read_text().replace('__version__ = "', '__version__ = "99.0.0+upgrade-', 1)
            + f"\nopen({str(mark)!r}, 'w').write(__version__)  # proves this copy is the one imported\n"
        )
        fresh = {"AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0"}  # else a DAG <30 s old stays

        def versions() -> dict[str, int]:
            return dict(db_rows(home, "select dag_id, count(*) from dag_version group by dag_id"))

        migrate(home, dags)
        process_once(home, dags, **fresh)
        before = versions()
        assert sorted(before) == sorted(p.stem for p in example_manifests()) and set(before.values()) == {1}
        for dag_id in before:
            run_airflow(home, dags, AIRFLOW, "dags", "trigger", dag_id)
        with_tis = db_rows(home, "select count(distinct dag_version_id) from task_instance")
        assert with_tis == [(len(before),)]

        process_once(home, dags, PYTHONPATH=str(lib), **fresh)
        assert mark.read_text().startswith("99.0.0+upgrade-")
        assert versions() == before, "a library upgrade that builds the same DAGs is no new version"

        path = dags / "reporting_seeder_refresh_all.json"
        path.write_text(path.read_text().replace("reporting-seeder:2.4.1", "reporting-seeder:2.4.2"))
        process_once(home, dags, **fresh)
        assert versions() == {**before, "reporting_seeder_refresh_all": 2}

    def test_other_folder_differs_only_in_airflows_own_folder_field(self, every, tmp_path):
        """Moved to another dags folder, the serialized DAG differs only in Airflow's _processor_dags_folder."""
        dags = every
        moved = tmp_path / "moved" / "dags"
        shutil.copytree(dags, moved)
        (tmp_path / "h1").mkdir()
        (tmp_path / "h2").mkdir()
        a, b = probe(dags, tmp_path / "h1"), probe(moved, tmp_path / "h2")
        for dag_id in a["data"]:
            left, right = a["data"][dag_id], b["data"][dag_id]
            assert left["dag"].pop("_processor_dags_folder") == str(dags)
            assert right["dag"].pop("_processor_dags_folder") == str(moved)
            left["dag"].pop("fileloc"), right["dag"].pop("fileloc")
            assert left == right

    def test_manifest_change_changes_hash(self, dags, tmp_path):
        """Changing a field Airflow does not serialize (an env value) still changes the hash."""
        (tmp_path / "h1").mkdir()
        (tmp_path / "h2").mkdir()
        before = probe(dags, tmp_path / "h1")["hashes"]
        path = dags / "pipeline_processing_example_job.json"
        path.write_text(path.read_text().replace('"LOG_LEVEL": "INFO"', '"LOG_LEVEL": "DEBUG"'))
        after = probe(dags, tmp_path / "h2")["hashes"]
        assert after["pipeline_processing_example_job"] != before["pipeline_processing_example_job"]
        assert after["reporting_seeder_refresh_all"] == before["reporting_seeder_refresh_all"]


class TestTaskLevelFields:
    """reporting_seeder_agency_rebuild uses every task-level field: each reaches the operator as the
    provider's own type (kubernetes.client.models), and the rendered pod carries it."""

    @pytest.fixture
    def dags(self, tmp_path):
        return dags_folder_with_examples(tmp_path / "dags", all_examples())

    @pytest.fixture
    def dag(self, dags):
        bag = _bag(dags)
        assert bag.import_errors == {}
        return bag.dags["reporting_seeder_agency_rebuild"]

    def test_pod_fields_are_provider_types(self, dag):
        op = dag.get_task("list_agencies")
        assert [type(v) for v in op.volumes] == [k8s.V1Volume] * 6
        by_name = {v.name: v for v in op.volumes}
        assert by_name["scratch"].empty_dir == k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit="1Gi")
        assert by_name["config"].config_map.items == [
            k8s.V1KeyToPath(key="agencies.yaml", path="agencies.yaml", mode=292)
        ]
        assert by_name["db-ca"].secret.default_mode == 256
        token = by_name["tokens"].projected.sources[0].service_account_token
        assert (token.audience, token.expiration_seconds) == ("sts.amazonaws.com", 3600)
        claim = by_name["work"].ephemeral.volume_claim_template.spec
        assert claim.access_modes == ["ReadWriteOnce"] and claim.resources.requests == {"storage": "20Gi"}
        assert by_name["archive"].persistent_volume_claim.read_only is True
        assert [m.mount_path for m in op.volume_mounts] == ["/tmp", "/etc/reporting"]
        assert op.env_from[0].secret_ref.name == "reporting-db" and op.env_from[0].prefix == "DB_"
        assert op.env_from[1].config_map_ref == k8s.V1ConfigMapEnvSource(
            name="reporting-settings", optional=True
        )
        assert op.security_context.run_as_user == 10001 and op.security_context.fs_group == 10001
        assert op.container_security_context.capabilities.drop == ["ALL"]
        assert op.container_security_context.read_only_root_filesystem is True
        assert op.priority_class_name == "etl-batch" and op.automount_service_account_token is False
        assert op.termination_grace_period == 60
        init = op.init_containers[0]
        assert isinstance(init, k8s.V1Container) and init.name == "fetch-ca"
        assert init.resources.limits == {"memory": "64Mi"} and init.volume_mounts[0].read_only is True

    def test_task_behaviour(self, dag):
        first, cleanup = dag.get_task("list_agencies"), dag.get_task("cleanup")
        assert first.do_xcom_push is True and cleanup.do_xcom_push is False
        assert (
            first.retries == 3
            and first.retry_exponential_backoff
            and first.max_retry_delay.total_seconds() == 1800
        )
        assert cleanup.trigger_rule == "all_done" and cleanup.retries == 0
        assert cleanup.max_active_tis_per_dag == 1 and cleanup.queue == "default"
        assert cleanup.host_aliases == [k8s.V1HostAlias(ip="10.0.0.10", hostnames=["reporting-db.internal"])]
        assert isinstance(cleanup.full_pod_spec, k8s.V1Pod)
        assert cleanup.full_pod_spec.spec.dns_policy == "ClusterFirst"
        extract = dag.get_task("extract")
        assert extract.partial_kwargs["priority_weight"] == 10
        assert extract.partial_kwargs["max_active_tis_per_dagrun"] == 2
        assert dag.get_task("rebuild").partial_kwargs["deferrable"] is True

    def test_mapping_and_groups(self, dag):
        from airflow.sdk.definitions.mappedoperator import MappedOperator

        extract, rebuild, verify = (dag.get_task(t) for t in ("extract", "rebuild", "verify"))
        assert all(isinstance(t, MappedOperator) for t in (extract, rebuild, verify))
        assert extract.expand_input.value["arguments"] == [
            ["--agency", a] for a in ("north", "south", "east")
        ]
        assert rebuild.upstream_task_ids == {"extract", "list_agencies"}  # depends_on + the XCom it maps over
        envs = verify.expand_input.value["env_vars"]
        assert [e["AGENCY"] for e in envs] == ["north", "south", "east"]
        assert all(e["RUN_DATE"] == "{{ ds }}" for e in envs)  # the task's env under each item
        assert {t.task_id for t in dag.task_group.children["per_agency"]} == {"extract", "rebuild", "verify"}
        assert sorted(dag.task_ids) == [
            "cleanup",
            "extract",
            "list_agencies",
            "rebuild",
            "verify",
        ]  # unprefixed

    def test_rendered_pods_carry_the_fields(self, dags):
        m = manifest.load(dags / "reporting_seeder_agency_rebuild.json")
        pods = {name: pod for _task, name, pod in factory.render_pods(m)}
        assert list(pods) == [
            "list_agencies",
            *(f"extract[{i}]" for i in range(3)),
            "rebuild[*]",
            *(f"verify[{i}]" for i in range(3)),
            "cleanup",
        ]
        assert pods["extract[1]"]["spec"]["containers"][0]["args"] == ["--agency", "south"]
        assert [c["name"] for c in pods["list_agencies"]["spec"]["containers"]] == [
            "base",
            "airflow-xcom-sidecar",
        ]
        assert pods["list_agencies"]["spec"]["initContainers"][0]["name"] == "fetch-ca"
        cleanup = pods["cleanup"]
        assert cleanup["spec"]["enableServiceLinks"] is False  # from pod_override
        assert cleanup["metadata"]["annotations"] == {
            "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"
        }
        assert cleanup["metadata"]["labels"]["dagfactory-s3/task-id"] == "cleanup"  # ours kept
        assert cleanup["spec"]["containers"][0]["image"].endswith("reporting-seeder:2.4.1")

    def test_pod_override_unknown_field_is_refused_at_parse(self, dags):
        """A field the Kubernetes client does not know would be dropped silently: refused with its pointer."""
        doc = json.loads((dags / "reporting_seeder_agency_rebuild.json").read_text())
        doc["tasks"][4]["pod_override"]["spec"]["dnsPolicyy"] = "None"
        (dags / "reporting_seeder_agency_rebuild.json").write_text(json.dumps(doc))
        errors = _bag(dags).import_errors
        (text,) = errors.values()
        assert "/tasks/4/pod_override: not a valid Kubernetes Pod: unknown fields" in text

    def test_old_manifests_build_what_they_built(self, dags):
        """No new argument reaches an operator of a manifest that does not use the new fields."""
        op = _bag(dags).dags["reporting_seeder_refresh_all"].get_task("extract")
        assert op.volumes == [] and op.env_from == [] and op.init_containers == []
        assert op.security_context == {} and op.full_pod_spec is None and op.trigger_rule == "all_success"


def test_interval_schedule_is_airflows_timedelta_schedule(tmp_path):
    """schedule {"every": "6h"} loads in the DagBag as Airflow's timedelta schedule, serialized as
    the 6 hours (21600 s) the manifest wrote."""
    from airflow.serialization import serialized_objects

    serializer = getattr(serialized_objects, "DagSerialization", None) or serialized_objects.SerializedDAG

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "pipeline_processing_nightly.json").write_text(json.dumps({**GOOD, "schedule": {"every": "6h"}}))
    (dags / "pipeline_processing_nightly.py").write_bytes(stub.render("pipeline_processing_nightly.json"))
    bag = _bag(dags)
    assert bag.import_errors == {}
    timetable = serializer.to_dict(bag.dags["pipeline_processing_nightly"])["dag"]["timetable"]
    assert timetable["__var"]["delta"] == 21600.0


# A value for every field of the pod-field table (dagfactory_s3.manifest.pod_fields): a new row needs one.
EVERY_POD_FIELD = {
    "image": "registry.example.com/pp:1.2.3",
    "command": ["pp", "run"],
    "arguments": ["--all"],
    "env": {"MODE": "full"},
    "env_from": [{"secret": "pp-db"}],
    "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}},
    "volume_mounts": [{"name": "scratch", "mount_path": "/tmp"}],
    "security_context": {"allow_privilege_escalation": False},
    "image_pull_policy": "IfNotPresent",
    "service_account": "pp-runner",
    "node_selector": {"pool": "batch"},
    "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["batch"]}]}
                ]
            }
        }
    },
    "image_pull_secrets": ["regcred"],
    "pod_security_context": {"run_as_non_root": True, "run_as_user": 1000},
    "init_containers": [{"name": "prepare", "image": "registry.example.com/pp-init:1.0.0"}],
    "volumes": [{"name": "scratch", "empty_dir": {}}],
    "priority_class_name": "etl-batch",
    "automount_service_account_token": False,
    "host_aliases": [{"ip": "10.0.0.1", "hostnames": ["db.internal"]}],
    "termination_grace_period": "30s",
    "namespace": "etl-jobs",
    "labels": {"team": "data"},
    "annotations": {"example.com/note": "x"},
    "pod_override": {"spec": {"dnsPolicy": "ClusterFirst"}},
    "startup_timeout": "5m",
    "get_logs": False,
    "log_events_on_failure": True,
    "on_finish_action": "keep_pod",
    "do_xcom_push": True,
    "retries": 2,
    "retry_delay": "1m",
    "retry_exponential_backoff": True,
    "max_retry_delay": "10m",
    "execution_timeout": "1h",
    "pool": "etl",
    "trigger_rule": "all_done",
    "depends_on_past": True,
    "wait_for_downstream": True,
    "priority_weight": 5,
    "weight_rule": "absolute",
    "queue": "batch",
    "pool_slots": 2,
    "max_active_tis_per_dag": 3,
    "max_active_tis_per_dagrun": 2,
    "deferrable": True,
    "outlets": ["s3://pp-data/out/"],
}


def test_every_pod_field_of_the_table_reaches_the_operator():
    """The pod-field table is what the factory does: for a manifest that sets every field of the table,
    ``operator_kwargs`` emits each row's operator argument, and a plain row's value unchanged."""
    assert set(EVERY_POD_FIELD) == {f.field for f in FIELDS}
    doc = {k: v for k, v in GOOD.items() if k != "tasks"}
    doc["job"] = {"name": "run", **EVERY_POD_FIELD}
    checked = manifest.parse(json.dumps(doc).encode(), file="m.json")
    (task,) = checked.tasks
    kwargs = factory.operator_kwargs(checked, task)
    missing = [f"{f.field} -> {f.kwarg}" for f in FIELDS if f.kwarg not in kwargs]
    assert missing == []
    changed = [f.field for f in FIELDS if f.plain and kwargs[f.kwarg] != EVERY_POD_FIELD[f.field]]
    assert changed == []
