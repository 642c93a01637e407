"""Limits are measured on the bytes readers get: the manifest resolved for each environment and
stamped by the publisher, and numbers every tool can hold. validate and plan refuse the same way,
with the pointer, never with a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dagfactory_s3 import manifest
from dagfactory_s3.errors import ManifestError
from dagfactory_s3.manifest.provenance import MAX_STAMP_BYTES

from conftest import ROOT

BASE = {
    "schema_version": 1,
    "package": "team_a",
    "dag_id": "team_a_big",
    "schedule": None,
    "start_date": "2024-01-01",
    "job": {"name": "run", "image": "registry.example.com/a/run:1.0"},
}


def _sized(size: int) -> bytes:
    """A manifest of exactly ``size`` bytes (trailing whitespace pads it)."""
    raw = json.dumps(BASE, indent=2).encode()
    return raw + b" " * (size - len(raw))


def test_a_source_that_the_stamp_takes_over_the_limit_is_refused():
    """16 bytes under 256 KiB used to publish, then go unserved: the stamp is counted in CI."""
    raw = _sized(manifest.MAX_BYTES - 16)
    manifest.parse(raw, file="m.json")  # a reader of stamped bytes takes it as it is
    with pytest.raises(ManifestError) as caught:
        manifest.parse(raw, file="m.json", source=True)
    assert str(caught.value).startswith(
        "m.json: /: the manifest is 262128 bytes; with the publisher's provenance stamp"
    )
    manifest.parse(_sized(manifest.MAX_BYTES - MAX_STAMP_BYTES), file="m.json", source=True)


def test_a_manifest_too_costly_to_check_is_refused_before_anything_else():
    """6,700 environments under 256 KiB: checking each environment whole took seconds; the manifest is
    refused at its root, in one problem, before any of it is checked (the schema's own cap on
    environments, and every overlay's problems, are not evaluated)."""
    doc = dict(BASE, environments={f"e{i}": {"job": {"env": {"A": "b"}}} for i in range(6700)})
    raw = json.dumps(doc).encode()
    assert len(raw) < manifest.MAX_BYTES
    with pytest.raises(ManifestError) as caught:
        manifest.parse(raw, file="m.json")
    (problem,) = caught.value.problems()
    assert (
        problem.pointer == "" and f"more than the {manifest.MAX_EVALUATED_VALUES} allowed" in problem.message
    )
    assert "(26810 in the manifest, 6700 environments)" in problem.message
    within = dict(BASE, environments={f"e{i}": {"job": {"env": {"A": "b"}}} for i in range(20)})
    manifest.parse(json.dumps(within).encode(), file="m.json", source=True)  # a large legitimate one passes


def test_an_environment_that_grows_past_the_limit_is_named():
    """A compact source whose prod resolution (indented, with its overlay) passes the limit: refused at
    the environment, before publish would fail."""
    env = {f"K{i}": "v" * 1295 for i in range(200)}
    overlay = {"prod": {"task_defaults": {"env": {"P": "1"}}}}
    doc = {**BASE, "job": {**BASE["job"], "env": env}, "environments": overlay}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    assert len(raw) < manifest.MAX_BYTES
    with pytest.raises(ManifestError) as caught:
        manifest.parse(raw, file="m.json", source=True)
    assert "m.json: /environments/prod: published for environment 'prod', the manifest is" in str(
        caught.value
    )


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_a_huge_integer_is_a_problem_not_a_traceback(tmp_path, command):
    """A 400-digit integer crashed plan in orjson; every command names it at its pointer."""
    doc = {**BASE, "max_active_runs": int("9" * 400)}
    (tmp_path / "team_a_big.json").write_text(json.dumps(doc))
    argv = [command, "--package-name", "team_a", "--dag-path", str(tmp_path)]
    if command == "plan":  # offline: the platform policy from a file, so no request before the check
        argv += ["--bucket", "no-such-bucket", "--environment", "dev"]
        argv += ["--policy", str(ROOT / "deploy/airflow/dagfactory-policy.json")]
    result = subprocess.run(
        [sys.executable, "-m", "dagfactory_s3.publisher.cli", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert "/max_active_runs: integer 99999999999999999999... (400 digits) is out of range" in result.stderr
