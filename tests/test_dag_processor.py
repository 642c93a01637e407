"""One run of the real `airflow dag-processor` (SQLite) over stubs and manifests."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("airflow", reason="needs the [airflow] extra")

from dagfactory_s3 import stub

from airflow_env import dags_folder_with_examples, db_rows, migrate, probe, process_once
from bad_inputs import GOOD
from conftest import ROOT, all_examples

pytestmark = [pytest.mark.airflow, pytest.mark.compat]


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    """A dags folder of the examples plus one bad manifest, parsed once by the real dag-processor
    (with the recommended airflow_local_settings.py warming dagfactory-s3 in the manager)."""
    root = tmp_path_factory.mktemp("dp")
    home, dags = root / "home", root / "dags"
    home.mkdir()
    dags_folder_with_examples(dags, all_examples())
    bad = json.loads(json.dumps(GOOD))
    bad["tasks"][1]["depends_on"] = ["missing"]
    (dags / "pipeline_processing_nightly.json").write_text(json.dumps(bad))
    (dags / "pipeline_processing_nightly.py").write_bytes(stub.render("pipeline_processing_nightly.json"))
    # The recommended image ships this file (deploy/airflow/Dockerfile): parse with it, as production does.
    (home / "config").mkdir()
    shutil.copy(ROOT / "deploy" / "airflow" / "airflow_local_settings.py", home / "config")
    migrate(home, dags)
    process_once(home, dags)
    return home, dags


def test_every_good_dag_is_registered_and_active(processed):
    """The examples (the task-level feature tour included) are registered, active, and serialized, with
    the version inflation check at error."""
    home, _ = processed
    rows = db_rows(home, "select dag_id, is_stale from dag order by dag_id")
    assert rows == [
        ("pipeline_processing_example_job", 0),
        ("reporting_seeder_agency_rebuild", 0),
        ("reporting_seeder_orders_report", 0),
        ("reporting_seeder_refresh_agency", 0),
        ("reporting_seeder_refresh_all", 0),
    ]
    assert len(db_rows(home, "select dag_id from serialized_dag")) == 5
    # First-run state: refresh_all and orders_report set paused_on_create false; the others keep
    # Airflow's default ([core] dags_are_paused_at_creation, true) as no platform policy is configured.
    paused = dict(db_rows(home, "select dag_id, is_paused from dag"))
    assert paused.pop("reporting_seeder_refresh_all") == paused.pop("reporting_seeder_orders_report") == 0
    assert set(paused.values()) == {1}


def test_bad_manifest_is_exactly_one_import_error(processed):
    """The bad manifest is one import error, on its stub, carrying file, pointer and reason."""
    home, dags = processed
    rows = db_rows(home, "select filename, stacktrace from import_error")
    # Airflow 3.0 stores the absolute path, later minors the path relative to the bundle: same file.
    assert [str((dags / r[0]).relative_to(dags)) for r in rows] == ["pipeline_processing_nightly.py"]
    assert (
        f"{dags / 'pipeline_processing_nightly.json'}: /tasks/1/depends_on/0: depends on unknown task 'missing'"
        in rows[0][1]
    )


def test_no_version_inflation_findings_at_level_error(processed):
    """With dag_version_inflation_check_level=error the stubs produce no warning or error."""
    home, _ = processed
    assert db_rows(home, "select count(*) from dag_warning")[0][0] == 0


def test_processor_hash_equals_a_fresh_interpreters_hash(processed, tmp_path):
    """serialized_dag.dag_hash written by the processor equals a separate interpreter's computation."""
    home, dags = processed
    stored = dict(db_rows(home, "select dag_id, dag_hash from serialized_dag"))
    fresh = probe(dags, tmp_path, PYTHONHASHSEED="7")
    assert fresh["hashes"] == stored
