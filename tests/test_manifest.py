"""Manifest checks: every bad input is refused with file, JSON pointer and reason; good ones resolve."""

from __future__ import annotations

import json

import pytest

from dagfactory_s3 import manifest
from dagfactory_s3.errors import ManifestError
from dagfactory_s3.manifest.pod_fields import BASE_CONTAINER, FIELDS
from dagfactory_s3.schema import schema

from bad_inputs import API_SERVER_CASES, CASES, GOOD, PACKAGE
from conftest import all_examples


def test_corpus_is_large_and_unique():
    """The bad-input corpus has at least 200 distinct cases, 80 or more of them for the API server's rules."""
    assert len(CASES) >= 200 and len(API_SERVER_CASES) >= 80
    assert len({c[0] for c in CASES}) == len(CASES)
    assert len({c[1] for c in CASES}) == len(CASES)


def test_good_base_manifest_is_valid():
    """The corpus' base manifest itself passes, so each case fails for its own reason."""
    m = manifest.parse(json.dumps(GOOD).encode(), file="good.json", package=PACKAGE)
    assert [t.task_id for t in m.tasks] == ["extract", "load"]


@pytest.mark.parametrize(("case", "raw", "pointer", "text"), CASES, ids=[c[0] for c in CASES])
def test_bad_manifest_is_refused_with_pointer_and_reason(case, raw, pointer, text):
    """A bad manifest raises ManifestError whose lines are `file: pointer: reason`, the mistake said once
    (not by the schema and again by a rule)."""
    with pytest.raises(ManifestError) as info:
        manifest.parse(raw, file=f"{case}.json", package=PACKAGE)
    lines = str(info.value).splitlines()
    expected_prefix = f"{case}.json: {pointer}: "
    matching = [line for line in lines if line.startswith(expected_prefix)]
    assert len(matching) == 1, f"not one problem at {pointer}: {lines}"
    assert any(text in line for line in matching), f"{text!r} not in {matching}"
    assert "Traceback" not in str(info.value)


def test_all_problems_are_reported_at_once():
    """Several independent mistakes are reported together, sorted by pointer."""
    doc = json.loads(json.dumps(GOOD))
    doc["tasks"][0]["image"] = "x:latest"
    doc["tasks"][1]["depends_on"] = ["nope"]
    doc["schedule"] = "99 * * * *"
    with pytest.raises(ManifestError) as info:
        manifest.parse(json.dumps(doc).encode(), file="m.json", package=PACKAGE)
    pointers = [p.pointer for p in info.value.problems()]
    assert pointers == sorted(pointers) == ["/schedule", "/tasks/0/image", "/tasks/1/depends_on/0"]


def test_manifest_of_another_package_is_refused():
    """A manifest checked for package A but declaring package B is refused at /package."""
    with pytest.raises(
        ManifestError,
        match=r"m.json: /package: manifest belongs to package 'pipeline_processing', not 'reporting_seeder'",
    ):
        manifest.parse(json.dumps(GOOD).encode(), file="m.json", package="reporting_seeder")


def test_mutable_image_allowed_when_explicit():
    """`allow_mutable_image: true` accepts an untagged or :latest image."""
    doc = json.loads(json.dumps(GOOD))
    doc["tasks"][0].update(image="registry.example.com/pp:latest", allow_mutable_image=True)
    manifest.parse(json.dumps(doc).encode(), file="m.json")


def test_task_defaults_merge_into_tasks():
    """task_defaults fill unset fields; env/labels merge key by key; the task wins."""
    doc = json.loads(json.dumps(GOOD))
    doc["task_defaults"] = {
        "image": "r/x:1",
        "env": {"A": "1", "B": "1"},
        "retries": 2,
        "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}},
    }
    doc["tasks"][1].pop("image")
    doc["tasks"][0]["env"] = {"B": "2"}
    doc["tasks"][0]["resources"] = {"requests": {"memory": "1Gi"}}
    m = manifest.parse(json.dumps(doc).encode(), file="m.json")
    first, second = m.tasks
    assert first.fields["env"] == {"A": "1", "B": "2"}
    assert first.fields["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"memory": "1Gi"},
    }
    assert second.fields["image"] == "r/x:1" and second.fields["retries"] == 2
    assert second.fields["namespace"] == "etl-jobs" and second.fields["on_finish_action"] == "delete_pod"


def test_single_job_shorthand_is_one_task():
    """`job` is the single-task shorthand; its name is the task id."""
    doc = {k: v for k, v in GOOD.items() if k != "tasks"}
    doc["job"] = {"name": "run", "image": "r/x:1"}
    m = manifest.parse(json.dumps(doc).encode(), file="m.json")
    assert [(t.task_id, t.where) for t in m.tasks] == [("run", "/job")]


@pytest.mark.parametrize("path", all_examples(), ids=lambda p: p.name)
def test_examples_are_valid_and_named_by_dag_id(path):
    """Every shipped example is valid for its package and named <dag_id>.json."""
    package = path.parent.parent.name if path.parent.parent.parent.name == "packages" else None
    m = manifest.load(path, package=package)
    assert path.name == f"{m.dag_id}.json"


def test_missing_file_is_a_manifest_error(tmp_path):
    """A missing manifest file is reported like any other problem."""
    with pytest.raises(ManifestError, match=r"nope.json: /: manifest file does not exist"):
        manifest.load(tmp_path / "nope.json")


def test_every_modelled_pod_key_is_refused_in_pod_override():
    """The pod-field table is what the rules enforce: each pod spec key and each key of the task's own
    container that a manifest field models is refused in ``pod_override``, at its pointer, naming the
    field to use instead. And the table names every task field the operator receives, so a new pod field
    cannot skip it (those the factory handles by code alone are listed here)."""
    by_code = {"alerts", "reattach_on_restart", "allow_mutable_image"}
    assert {f.field for f in FIELDS} | by_code == set(schema()["$defs"]["task_fields"]["properties"])
    cases = [(f, "spec", key) for f in FIELDS for key in f.spec]
    cases += [(f, "container", key) for f in FIELDS for key in f.container]
    assert {f.field for f, _, _ in cases} >= {"service_account", "volumes", "image", "env"}
    for field, where, key in cases:
        doc = json.loads(json.dumps(GOOD))
        if where == "spec":
            doc["tasks"][0]["pod_override"] = {"spec": {key: {}}}
            pointer = f"/tasks/0/pod_override/spec/{key}"
        else:
            doc["tasks"][0]["pod_override"] = {"spec": {"containers": [{"name": BASE_CONTAINER, key: {}}]}}
            pointer = f"/tasks/0/pod_override/spec/containers/0/{key}"
        with pytest.raises(ManifestError) as info:
            manifest.parse(json.dumps(doc).encode(), file="m.json", package=PACKAGE)
        expected = f"m.json: {pointer}: use the manifest field {field.field!r} instead"
        assert expected in str(info.value).splitlines(), (key, str(info.value))
