"""Local work on a manifest with overlays: DAGFACTORY_LOCAL_ENVIRONMENT resolves a source manifest for one
environment in a developer's Airflow, and never changes what a served folder shows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dagfactory_s3 import manifest, naming, settings, stub

from conftest import ROOT

SOURCE = ROOT / "examples" / "features" / "environments" / "reporting_seeder_refresh_all.json"
DAG_ID = "reporting_seeder_refresh_all"
VARIABLE = "DAGFACTORY_LOCAL_ENVIRONMENT"


def local_folder(folder: Path, raw: bytes | None = None) -> Path:
    """``folder`` with the source manifest (or ``raw``) and its stub, as a developer's checkout has them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SOURCE.name).write_bytes(SOURCE.read_bytes() if raw is None else raw)
    (folder / f"{DAG_ID}.py").write_bytes(stub.render(SOURCE.name))
    return folder


def bag(folder: Path):
    pytest.importorskip("airflow")
    from airflow_env import dag_bag

    return dag_bag(folder)


def only_error(folder: Path) -> str:
    loaded = bag(folder)
    assert loaded.dags == {}
    (text,) = loaded.import_errors.values()
    return text


@pytest.mark.airflow
class TestUnset:
    def test_the_refusal_names_the_setting_and_the_environments(self, tmp_path, monkeypatch):
        """Without the setting, the import error says how to publish and how to load it locally."""
        monkeypatch.delenv(VARIABLE, raising=False)
        text = only_error(local_folder(tmp_path))
        assert "/environments: a published manifest has no environments: publish resolves them" in text
        assert f"set {VARIABLE} to one of dev, prod" in text

    def test_a_plain_manifest_is_not_touched_by_the_setting(self, monkeypatch):
        """A developer's shell may keep the setting: a manifest without environments loads as written."""
        monkeypatch.setenv(VARIABLE, "prod")
        plain = ROOT / "examples/packages/reporting_seeder/airflow_dags/reporting_seeder_refresh_all.json"
        pytest.importorskip("airflow")
        from dagfactory_s3.loader import load_dag

        dag = load_dag(str(plain.with_suffix(".py")), plain.name, api=stub.API_VERSION)
        assert f"manifest sha256: `{manifest.load(plain).sha256}`" in dag.doc_md


@pytest.mark.airflow
class TestSet:
    @pytest.mark.parametrize("environment", ["dev", "prod"])
    def test_the_dag_has_the_environments_values(self, environment, tmp_path, monkeypatch):
        """The DAG is the one that environment's published manifest builds (same manifest sha256)."""
        monkeypatch.setenv(VARIABLE, environment)
        loaded = bag(local_folder(tmp_path))
        assert loaded.import_errors == {}
        dag = loaded.dags[DAG_ID]
        published = manifest.publishable(manifest.load(SOURCE), environment)
        assert f"manifest sha256: `{published.sha256}`" in dag.doc_md
        refresh = dag.get_task("refresh_tables")
        timetable = type(dag.timetable).__name__
        if environment == "dev":
            assert timetable == "NullTimetable" and dag.is_paused_upon_creation is True
            assert refresh.image.endswith("reporting-seeder:2.4.1")
        else:
            assert timetable != "NullTimetable" and dag.is_paused_upon_creation is False
            assert refresh.image.endswith("reporting-seeder:2.4.0")
            assert {e.name: e.value for e in refresh.env_vars}["REPORTING_ENV"] == "prod"
            assert refresh.container_resources.limits == {"cpu": "2", "memory": "4Gi"}

    def test_an_undeclared_environment_names_the_declared_ones(self, tmp_path, monkeypatch):
        """A name the manifest lacks is its import error, naming the setting and dev, prod."""
        monkeypatch.setenv(VARIABLE, "staging")
        text = only_error(local_folder(tmp_path))
        assert (
            f"/environments: {VARIABLE} is 'staging', which this manifest does not declare "
            "(declared: dev, prod); set it to one of them, or unset it"
        ) in text

    def test_same_manifest_and_setting_same_dag_hash(self, tmp_path):
        """Deterministic across interpreters and hash seeds, and equal to a hand-resolved copy's hash."""
        pytest.importorskip("airflow")
        from airflow_env import probe

        dags = local_folder(tmp_path / "dags")
        hashes = []
        for seed in ("1", "2"):
            (tmp_path / seed).mkdir()
            result = probe(dags, tmp_path / seed, PYTHONHASHSEED=seed, **{VARIABLE: "prod"})
            assert result["import_errors"] == {}
            hashes.append(result["hashes"][DAG_ID])
        resolved = manifest.publishable(manifest.load(SOURCE), "prod").raw
        shutil.rmtree(dags)
        local_folder(dags, resolved)
        (tmp_path / "copy").mkdir()
        copy = probe(dags, tmp_path / "copy")
        assert copy["import_errors"] == {}
        assert hashes == [copy["hashes"][DAG_ID]] * 2


@pytest.mark.airflow
class TestServed:
    def test_a_stamped_manifest_ignores_the_setting(self, tmp_path, monkeypatch):
        """A manifest with the publisher's stamp still refuses its overlays, whatever the setting says."""
        monkeypatch.setenv(VARIABLE, "dev")
        stamped = manifest.stamp(SOURCE.read_bytes(), {"release": "20240101T000000.000Z-abcdef"})
        text = only_error(local_folder(tmp_path, stamped))
        assert "/environments: a published manifest has no environments" in text

    def test_a_served_folder_ignores_the_setting(self, tmp_path, monkeypatch):
        """In the <package>/dags/ layout the sidecar and bundles write, the setting never applies."""
        monkeypatch.setenv(VARIABLE, "dev")
        package = tmp_path / "reporting_seeder"
        local_folder(package / naming.DAGS_DIR)
        (package / naming.SYNC_IGNORE_FILE).write_bytes(naming.SYNC_IGNORE_HEADER + b"\n")
        text = only_error(tmp_path)
        assert "/environments: a published manifest has no environments" in text


def test_the_tools_know_the_variable():
    """The publisher and the sidecar do not warn about it as a misspelt setting of theirs."""
    assert settings.unknown_variables({VARIABLE: "dev"}) == []


def test_the_loader_readme_lists_its_settings():
    """Every setting read only by the loader (no command-line flag) is in loader/README.md."""
    readme = (ROOT / "loader" / "README.md").read_text()
    loader_only = [opt.env for opt in settings.OPTIONS.values() if not opt.flag]
    assert loader_only == [VARIABLE] and f"`{VARIABLE}`" in readme
