"""The examples: each loads in a real Airflow DagBag under the policy the deploy kit ships (the file the
image and the demo's Airflow read), and together they use every field of the manifest schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dagfactory_s3 import manifest, platform, schema

from conftest import ROOT

POLICY = ROOT / "deploy" / "airflow" / "dagfactory-policy.json"
EXAMPLES = ROOT / "examples"
SOURCES = sorted(EXAMPLES.rglob("*.json"))
ALERTS = EXAMPLES / "features" / "alerts" / "pipeline_processing_orders_export.json"

# Schema fields no example uses, and why.
NOT_IN_EXAMPLES = {
    # Stamped by the publisher on what it uploads; validate, plan and publish refuse a source with it.
    "provenance",
    # Accepts an image without a pinned tag: an escape hatch the docs advise against, and examples are
    # what people copy.
    "allow_mutable_image",
}


def served(source: Path, policy: platform.Policy) -> list[tuple[str, manifest.Manifest]]:
    """(group, manifest) of what Airflow gets from ``source``: itself, or one per environment as
    ``publish --environment`` resolves it. A group's DAG ids are unique; the same id in two groups is
    the same job in two places (a package and the environments tour, dev and prod)."""
    checked = manifest.load(source, policy=policy)
    group = str(source.parent.relative_to(EXAMPLES)).replace("/", "-")
    environments = sorted(checked.data.get("environments", {}))
    if not environments:
        return [(group, checked)]
    return [(f"{group}-{env}", manifest.publishable(checked, env)) for env in environments]


def dags_folders(tmp_path: Path) -> dict[Path, set[str]]:
    """Each group's dags folder (the served manifests next to their committed stubs) -> its DAG ids."""
    policy = platform.load(str(POLICY))
    folders: dict[Path, set[str]] = {}
    for source in SOURCES:
        for group, checked in served(source, policy):
            folder = tmp_path / group
            folder.mkdir(exist_ok=True)
            (folder / source.name).write_bytes(checked.raw)
            shutil.copy(source.with_suffix(".py"), folder / source.with_suffix(".py").name)
            folders.setdefault(folder, set()).add(checked.dag_id)
    return folders


def _deadline_alerts_missing() -> bool:
    """Whether this Airflow lacks what the factory builds a ``deadline`` from (Airflow 3.0 does)."""
    try:
        from airflow.sdk import DeadlineAlert, DeadlineReference, SyncCallback  # noqa: F401
    except ImportError:
        return True
    return False


@pytest.fixture
def shipped_policy(monkeypatch):
    """The factory reads the policy the image ships, as the demo's Airflow does."""
    pytest.importorskip("airflow")
    monkeypatch.setenv(platform.POLICY_ENV, str(POLICY))


@pytest.mark.airflow
@pytest.mark.compat
@pytest.mark.usefixtures("shipped_policy")
class TestInAirflow:
    def test_every_example_loads_without_import_errors(self, tmp_path):
        """Every example manifest (each environment of one with environments) is a DAG in a real DagBag
        under the shipped policy; on an Airflow without deadline alerts (3.0) the alerts example is the
        one documented import error."""
        from airflow_env import dag_bag

        folders = dags_folders(tmp_path)
        for folder, dag_ids in folders.items():
            bag = dag_bag(folder)
            errors = dict(bag.import_errors)
            if _deadline_alerts_missing() and folder.name == "features-alerts":
                error = errors.pop(str(folder / ALERTS.with_suffix(".py").name))
                assert "/deadline: deadline alerts need Airflow 3.1 or later" in error
                dag_ids = dag_ids - {ALERTS.stem}
            assert errors == {}, folder.name
            assert set(bag.dag_ids) == dag_ids, folder.name

    def test_a_notifier_the_policy_lacks_is_an_import_error(self, tmp_path):
        """An example naming a notifier the shipped policy does not define fails its stub, naming it."""
        from airflow_env import dag_bag

        doc = json.loads(ALERTS.read_bytes())
        doc["alerts"]["on_failure"] = ["team-pager"]
        (tmp_path / ALERTS.name).write_text(json.dumps(doc))
        shutil.copy(ALERTS.with_suffix(".py"), tmp_path / ALERTS.with_suffix(".py").name)
        bag = dag_bag(tmp_path)
        assert bag.dags == {}
        error = bag.import_errors[str(tmp_path / ALERTS.with_suffix(".py").name)]
        assert (
            f"{tmp_path / ALERTS.name}: /alerts/on_failure/0: unknown notifier 'team-pager'; "
            f"the platform policy ({POLICY}) defines: oncall-email"
        ) in error


# Not in the compat cells: Airflow 3.0 has no deadline alerts, so there the example's DAG is the import
# error TestInAirflow expects.
@pytest.mark.airflow
@pytest.mark.usefixtures("shipped_policy")
class TestAlertsExample:
    def test_alerts_example_builds_the_policys_notifiers(self, tmp_path):
        """The alerts example's DAG and tasks call the policy's oncall-email (an SMTP notifier) on
        failure, success and retry."""
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        from airflow_env import dag_bag

        folder = next(f for f in dags_folders(tmp_path) if f.name == "features-alerts")
        dag = dag_bag(folder).dags[ALERTS.stem]
        (notifier,) = dag.on_failure_callback
        assert isinstance(notifier, SmtpNotifier) and notifier.to == ["data-oncall@example.com"]
        export, check = dag.get_task("export_orders"), dag.get_task("check_counts")
        assert [type(n) for n in export.on_retry_callback + check.on_success_callback] == [SmtpNotifier] * 2
        assert dag.deadline


def _properties(spec: dict, defs: dict) -> set[str]:
    """The property names of ``spec``, through its ``$ref`` chain (a task is task_fields plus its own)."""
    names = set(spec.get("properties", {}))
    ref = spec.get("$ref", "")
    if ref.startswith("#/$defs/"):
        names |= _properties(defs[ref.removeprefix("#/$defs/")], defs)
    return names


class TestCoverage:
    def test_every_schema_field_appears_in_an_example(self):
        """Each top-level and task-level property of the schema is used by some example manifest
        (task-level: in task_defaults, job or a task), but for NOT_IN_EXAMPLES."""
        spec = schema.schema()
        top = spec["properties"]
        tasks = _properties(top["task_defaults"], spec["$defs"])
        tasks |= _properties(top["job"], spec["$defs"]) | _properties(top["tasks"]["items"], spec["$defs"])
        assert set(top) | tasks >= NOT_IN_EXAMPLES, "an exclusion names a field the schema no longer has"
        used: set[str] = set()
        for source in SOURCES:
            doc = json.loads(source.read_bytes())
            used |= set(doc)
            for fields in [doc.get("task_defaults", {}), doc.get("job", {}), *doc.get("tasks", [])]:
                used |= set(fields)
        missing = (set(top) | tasks) - used - NOT_IN_EXAMPLES
        assert not missing, f"no example under examples/ uses {sorted(missing)}; add it to one"

    def test_examples_readme_lists_every_example(self):
        """examples/README.md links every example manifest, so a reader finds each feature's example."""
        readme = (EXAMPLES / "README.md").read_text()
        unlisted = [p.name for p in SOURCES if p.relative_to(EXAMPLES).as_posix() not in readme]
        assert not unlisted
