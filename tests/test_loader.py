"""The loader on real Airflow: a manifest in the wrong place, or one that breaks the build, fails alone.

``load_dag`` is the last line of defence behind the sync sidecar: it checks that a manifest is the
one its stub's place promises (``<package>/dags/<dag_id>.py``), and turns every exception on the way
into one ``file: /pointer: reason`` import error for that stub only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("airflow", reason="needs the [airflow] extra")


from dagfactory_s3 import stub
from dagfactory_s3.sync.reconcile import IGNORE_PATTERNS

from airflow_env import dag_bag, dags_folder_with_examples
from bad_inputs import CASES, GOOD
from conftest import example_manifests

pytestmark = [pytest.mark.airflow, pytest.mark.compat]


def _manifest(package: str, name: str, **changes: object) -> bytes:
    """The corpus' good manifest as DAG ``<package>_<name>`` of ``package``, with top-level changes."""
    doc = json.loads(json.dumps(GOOD))
    doc.update(package=package, dag_id=f"{package}_{name}", **changes)
    return json.dumps(doc).encode()


def _place(folder: Path, file_name: str, raw: bytes) -> Path:
    """Write a manifest and its canonical stub into ``folder``; returns the stub's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file_name).write_bytes(raw)
    stub_path = folder / (file_name[: -len(".json")] + ".py")
    stub_path.write_bytes(stub.render(file_name))
    return stub_path


def _synced_package(root: Path, package: str) -> Path:
    """``<root>/<package>/dags/`` as the sync sidecar lays it out (with its .airflowignore)."""
    (root / package / "dags").mkdir(parents=True, exist_ok=True)
    (root / package / ".airflowignore").write_bytes(IGNORE_PATTERNS)
    return root / package / "dags"


def _one_line_error(text: str, manifest: Path, pointer: str) -> str:
    """The import error's message line, after checking it is our one line and no internal frame shows."""
    last = text.strip().splitlines()[-1]
    prefix = f"dagfactory_s3.errors.ManifestError: {manifest}: {pointer}: "
    assert last.startswith(prefix), text
    for internal in ("dagfactory_s3/manifest/", "schedule.py", "factory.py", "site-packages/airflow"):
        assert internal not in text, f"{internal} frame in the import error:\n{text}"
    return last[len(prefix) :]


@pytest.fixture
def synced(tmp_path) -> Path:
    """A dags folder as the sidecar fills it: package ``good`` serving ``good_a``."""
    root = tmp_path / "dags"
    _place(_synced_package(root, "good"), "good_a.json", _manifest("good", "a"))
    return root


class TestPlacement:
    def test_manifest_in_another_packages_folder_is_one_import_error(self, synced):
        """A copy of good's manifest in bad/dags/ cannot take over good_a: one import error at /package."""
        foreign = _place(_synced_package(synced, "bad"), "good_a.json", _manifest("good", "a"))
        bag = dag_bag(synced)
        assert list(bag.import_errors) == [str(foreign)]
        reason = _one_line_error(bag.import_errors[str(foreign)], foreign.with_suffix(".json"), "/package")
        assert (
            reason
            == "manifest belongs to package 'good' but sits in bad/dags/, which only package 'bad' may fill"
        )
        assert list(bag.dags) == ["good_a"]
        assert bag.dags["good_a"].fileloc == str(synced / "good" / "dags" / "good_a.py")

    def test_folder_name_is_not_checked_outside_the_sidecar_layout(self, tmp_path):
        """Without the sidecar's .airflowignore (a developer's folder, or stubs at the root of a folder
        called dags) the directory name says nothing about the package, so it is not checked."""
        stub_path = _place(tmp_path / "dags" / "bad" / "dags", "good_a.json", _manifest("good", "a"))
        bag = dag_bag(tmp_path / "dags")
        assert bag.import_errors == {} and bag.dags["good_a"].fileloc == str(stub_path)

    def test_dag_id_other_than_the_file_name_is_one_import_error(self, synced):
        """good/dags/good_b.json declaring dag_id good_a fails at /dag_id; the real good_a still loads."""
        impostor = _place(synced / "good" / "dags", "good_b.json", _manifest("good", "a"))
        bag = dag_bag(synced)
        assert list(bag.import_errors) == [str(impostor)]
        reason = _one_line_error(bag.import_errors[str(impostor)], impostor.with_suffix(".json"), "/dag_id")
        assert reason.startswith("manifest declares dag_id 'good_a' but its stub is good_b.py")
        assert bag.dags["good_a"].fileloc == str(synced / "good" / "dags" / "good_a.py")


class TestNothingButOneLine:
    @pytest.mark.parametrize(
        ("field", "value", "pointer", "reason"),
        [
            ("dagrun_timeout", "99999999999999d", "/dagrun_timeout", "is too long (at most 999999999 days)"),
            ("start_date", "0001-01-01T00:00:00+01:00", "/start_date", "outside the years 1-9999"),
            ("end_date", "9999-12-31T23:00:00-02:00", "/end_date", "outside the years 1-9999"),
        ],
        ids=["huge-duration", "year-one-east-of-utc", "year-9999-west-of-utc"],
    )
    def test_values_too_large_for_python_are_one_clean_import_error(
        self, synced, field, value, pointer, reason
    ):
        """Durations and dates that overflow Python's types (OverflowError before) fail only their stub, in one line."""
        bad = _place(synced / "good" / "dags", "good_big.json", _manifest("good", "big", **{field: value}))
        bag = dag_bag(synced)
        assert list(bag.import_errors) == [str(bad)] and list(bag.dags) == ["good_a"]
        text = bag.import_errors[str(bad)]
        assert reason in _one_line_error(text, bad.with_suffix(".json"), pointer)
        assert "OverflowError" not in text

    def test_any_other_exception_becomes_one_import_error_per_stub(self, tmp_path, monkeypatch):
        """An exception that is not ours (here Airflow's own, for a broken setting every minor's DAG
        reads when it is built) is one line naming the manifest, for each stub."""
        dags = dags_folder_with_examples(tmp_path / "dags", example_manifests())
        monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DISABLE_BUNDLE_VERSIONING", "maybe")
        bag = dag_bag(dags)
        dag_ids = [
            "pipeline_processing_example_job",
            "reporting_seeder_refresh_agency",
            "reporting_seeder_refresh_all",
        ]
        assert sorted(bag.import_errors) == [str(dags / f"{d}.py") for d in dag_ids]
        assert list(bag.dags) == []
        for dag_id in dag_ids:
            reason = _one_line_error(
                bag.import_errors[str(dags / f"{dag_id}.py")], dags / f"{dag_id}.json", "/"
            )
            assert reason.startswith("cannot build the DAG: AirflowConfigException: ")
            assert "disable_bundle_versioning" in reason


class TestCorpus:
    def test_every_bad_input_is_exactly_one_import_error_naming_its_pointer(self, synced):
        """Each case of the bad-input corpus, planted next to a good DAG (all in one DagBag): one import
        error for its stub, whose text names the manifest, the case's pointer and reason; good_a loads."""
        planted = {}
        for case, raw, pointer, text in CASES:
            folder = synced / "corpus" / case  # one folder each: every case keeps its own dag_id's name
            planted[case] = (_place(folder, f"{GOOD['dag_id']}.json", raw), pointer, text)
        bag = dag_bag(synced)
        assert list(bag.dags) == ["good_a"]
        assert sorted(bag.import_errors) == sorted(str(stub_path) for stub_path, _, _ in planted.values())
        failures = []
        for case, (stub_path, pointer, text) in planted.items():
            error = bag.import_errors[str(stub_path)]
            prefix = f"{stub_path.with_suffix('.json')}: {pointer}: "
            lines = [line.removeprefix("dagfactory_s3.errors.ManifestError: ") for line in error.splitlines()]
            internal = [
                f for f in ("dagfactory_s3/manifest/", "schedule.py", "k8s.py", "factory.py") if f in error
            ]
            if not any(line.startswith(prefix) and text in line for line in lines) or internal:
                failures.append(f"{case}: {error[-300:]}")
        assert not failures, "\n".join(failures)
