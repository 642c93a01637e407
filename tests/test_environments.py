"""Per-environment values: one source manifest, resolved by publish --environment into the concrete
manifest each environment gets; Airflow and the sidecar never see overlays."""

from __future__ import annotations

import json
import shutil

import pytest
from test_publish import main, objects, publish_args

from dagfactory_s3 import manifest, stub
from dagfactory_s3.errors import ManifestError

from conftest import ROOT, unstamped

SOURCE = ROOT / "examples" / "features" / "environments" / "reporting_seeder_refresh_all.json"
PACKAGE = "reporting_seeder"


def resolved(environment: str) -> manifest.Manifest:
    return manifest.publishable(manifest.load(SOURCE), environment)


class TestResolution:
    def test_each_environment_gets_its_values_and_no_overlays(self):
        dev, prod = resolved("dev"), resolved("prod")
        assert "environments" not in dev.data and "environments" not in prod.data
        assert dev.data["schedule"] is None and prod.data["schedule"] == "@daily"
        assert dev.data["paused_on_create"] is True and prod.data["paused_on_create"] is False
        assert dev.images == ["123456789012.dkr.ecr.us-east-1.amazonaws.com/reporting-seeder:2.4.1"]
        assert prod.images == ["123456789012.dkr.ecr.us-east-1.amazonaws.com/reporting-seeder:2.4.0"]
        assert prod.data["task_defaults"]["env"] == {"REPORTING_ENV": "prod"}
        # resources merge key by key: the overlay's memory limit, the task's own cpu limit
        assert prod.data["tasks"][1]["resources"] == {"limits": {"cpu": "2", "memory": "4Gi"}}
        assert dev.raw != prod.raw and resolved("prod").raw == prod.raw  # deterministic bytes

    def test_manifest_without_environments_is_published_byte_for_byte(self):
        plain = manifest.load(
            ROOT / "examples/packages/reporting_seeder/airflow_dags/reporting_seeder_refresh_all.json"
        )
        assert manifest.publishable(plain, "prod") is plain

    def test_undeclared_environment_is_refused(self):
        with pytest.raises(ManifestError) as info:
            resolved("staging")
        assert str(info.value) == (
            f"{SOURCE}: /environments: no values for environment 'staging' (declared: dev, prod); "
            "add an entry, even an empty one"
        )


@pytest.mark.airflow
class TestInAirflow:
    def test_each_environment_has_its_own_stable_dag_hash(self, tmp_path):
        pytest.importorskip("airflow")
        from airflow_env import probe

        hashes = {}
        for environment in ("dev", "prod"):
            dags = tmp_path / environment / "dags"
            dags.mkdir(parents=True)
            (dags / SOURCE.name).write_bytes(resolved(environment).raw)
            (dags / SOURCE.with_suffix(".py").name).write_bytes(stub.render(SOURCE.name))
            runs = []
            for seed in ("1", "2"):
                (tmp_path / environment / seed).mkdir()
                result = probe(dags, tmp_path / environment / seed, PYTHONHASHSEED=seed)
                assert result["import_errors"] == {}
                runs.append(result["hashes"]["reporting_seeder_refresh_all"])
            assert runs[0] == runs[1]
            hashes[environment] = runs[0]
        assert hashes["dev"] != hashes["prod"]

    def test_the_loader_refuses_a_manifest_with_overlays(self, tmp_path):
        """Copied by hand instead of published, a source manifest is an import error, not prod with dev values."""
        pytest.importorskip("airflow")
        from airflow_env import dag_bag

        shutil.copy(SOURCE, tmp_path / SOURCE.name)
        (tmp_path / SOURCE.with_suffix(".py").name).write_bytes(stub.render(SOURCE.name))
        (text,) = dag_bag(tmp_path).import_errors.values()
        assert "/environments: a published manifest has no environments: publish resolves them" in text


class TestPublish:
    def test_same_sources_to_dev_and_prod(self, s3, bucket, tmp_path, capsys):
        src = tmp_path / "airflow_dags"
        src.mkdir()
        shutil.copy(SOURCE, src / SOURCE.name)
        shutil.copy(SOURCE.with_suffix(".py"), src / SOURCE.with_suffix(".py").name)
        for environment in ("dev", "prod"):
            args = publish_args(bucket, PACKAGE, src)
            args[args.index("--environment") + 1] = environment
            code, _, err = main(capsys, *args)
            assert code == 0, err
        stored = objects(s3, bucket)
        published = {e: unstamped(stored[f"{e}/{PACKAGE}/dags/{SOURCE.name}"]) for e in ("dev", "prod")}
        assert published == {"dev": resolved("dev").raw, "prod": resolved("prod").raw}

    def test_publish_to_an_undeclared_environment_uploads_nothing(self, s3, bucket, tmp_path, capsys):
        src = tmp_path / "airflow_dags"
        src.mkdir()
        shutil.copy(SOURCE, src / SOURCE.name)
        args = publish_args(bucket, PACKAGE, src)
        args[args.index("--environment") + 1] = "staging"
        code, _, err = main(capsys, *args)
        assert code == 1 and "/environments: no values for environment 'staging'" in err
        assert s3.count("PUT") == 0 and objects(s3, bucket) == {}

    def test_render_shows_the_resolved_pods(self, capsys):
        pytest.importorskip("airflow")
        code, out, err = main(capsys, "render", "--dag-file", str(SOURCE), "--environment", "prod")
        assert code == 0, err
        assert "reporting-seeder:2.4.0" in out and "value: prod" in out and "2.4.1" not in out
        code, _, err = main(capsys, "render", "--dag-file", str(SOURCE))
        assert code == 2 and "declares environments: pass --environment" in err


def test_every_problem_in_one_pass():
    """A schema error in the base no longer hides the rules' problems: a mutable image in the prod
    overlay is reported in the same pass as a string where retries needs a number."""
    doc = {
        "schema_version": 1,
        "package": "team_a",
        "dag_id": "team_a_job",
        "schedule": None,
        "start_date": "2024-01-01",
        "job": {"name": "run", "image": "registry.example.com/a/run:1.0", "retries": "x"},
        "environments": {"prod": {"job": {"image": "registry.example.com/a/run:latest"}}, "dev": {}},
    }
    with pytest.raises(ManifestError) as caught:
        manifest.parse(json.dumps(doc).encode(), file="m.json", source=True)
    lines = str(caught.value).splitlines()
    assert "m.json: /job/retries: expected integer, got string" in lines
    assert any(line.startswith("m.json: /environments/prod/job/image: image tag 'latest'") for line in lines)
    assert len(lines) == len(set(lines)) == 2
