"""The factory on real Airflow 3.3: manifests become deterministic KubernetesPodOperator DAGs."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("airflow", reason="needs the [airflow] extra")

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

from dagfactory_s3 import stub

from airflow_env import dag_bag, dags_folder_with_examples, probe
from bad_inputs import GOOD
from conftest import example_manifests

pytestmark = [pytest.mark.airflow, pytest.mark.compat]


@pytest.fixture
def dags(tmp_path):
    return dags_folder_with_examples(tmp_path / "dags", example_manifests())


def _bag(folder):
    return dag_bag(folder)


class TestDagBag:
    def test_examples_load_without_import_errors(self, dags):
        """Every example stub loads in the real DagBag with zero import errors."""
        bag = _bag(dags)
        assert bag.import_errors == {}
        assert sorted(bag.dag_ids) == [
            "pipeline_processing_example_job",
            "reporting_seeder_refresh_agency",
            "reporting_seeder_refresh_all",
        ]

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
        assert "manifest.py" not in text  # our internal frames are not part of the record

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
    def test_same_hash_across_interpreters_seeds_cwd_and_path(self, dags, tmp_path):
        """Two fresh interpreters (other PYTHONHASHSEED, cwd, sys.path, TZ) give equal dag_hash."""
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
        assert len(first["hashes"]) == 3
        assert first["hashes"] == second["hashes"]

    def test_other_folder_differs_only_in_airflows_own_folder_field(self, dags, tmp_path):
        """Moved to another dags folder, the serialized DAG differs only in Airflow's _processor_dags_folder."""
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
