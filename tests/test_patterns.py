"""A param's pattern runs in bounded time everywhere (dagfactory_s3.manifest.patterns): patterns that can
backtrack without bound are refused before anything evaluates them, so one package's regex cannot
stall validate, the sidecar, the bundle or Airflow's trigger form.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dagfactory_s3 import manifest
from dagfactory_s3.errors import ManifestError
from dagfactory_s3.manifest.patterns import backtracking

from conftest import ROOT

REFUSED = [
    (r"^(a+)+$", "a repeat inside a repeat"),
    (r"^(a*)*$", "can match nothing"),
    (r"^(a|aa)+$", "alternatives that can start with the same character"),
    (r"^(a|b|ab)*c$", "alternatives that can start with the same character"),
    (r"^(a?)+$", "can match nothing"),
    (r"^(\w+\s?)*$", "a repeat inside a repeat"),
    (r"^([a-z0-9]+)*@", "a repeat inside a repeat"),
    (r"^(x+x+)+y$", "a repeat inside a repeat"),
    (r"^(a{1,10}){1,10}$", "a repeat inside a repeat"),
    (r"^(a+|b)+$", "a repeat inside a repeat"),
    (r"^\d+\d+$", "two repeats in a row"),
    (r"^.*x.*$", "two repeats in a row"),
    (r"^(a+)(a+)$", "two repeats in a row"),
    (r"^(.*a){12}$", "two repeats in a row"),
    (r"^\S+\S+$", "two repeats in a row"),
    (r"^(a)\1$", "backreference"),
    (r"^(?=a)a$", "lookaround"),
    (r"^(?!b)a$", "lookaround"),
    (r"[a-z]+$", "does not start with '^'"),
    (r"(a+)+$", "does not start with '^'"),
]
ACCEPTED = [
    r"^[a-z]+$",
    r"^[a-z][a-z0-9_]*$",
    r"^\d{4}-\d{2}-\d{2}$",
    r"^(north|south|east|west)$",
    r"^[A-Z]{2,3}-\d+$",
    r"^v\d+\.\d+\.\d+$",
    r"^\d{1,3}(\.\d{1,3}){3}$",
    r"^[a-z]+(,[a-z]+)*$",
    r"^([a-z]+,)*[a-z]+$",
    r"^[^@\s]+@[^@\s]+$",
    r"^[^,]+(,[^,]+)*$",
    r"^s3://[a-z0-9.-]+/.*$",
    r"^(ab|ac)+$",
    r"^\S+$",
]


@pytest.mark.parametrize(("pattern", "reason"), REFUSED)
def test_a_pattern_that_can_backtrack_is_refused(pattern, reason):
    why = backtracking(pattern)
    assert why is not None and reason in why


@pytest.mark.parametrize("pattern", ACCEPTED)
def test_the_usual_patterns_are_accepted(pattern):
    assert backtracking(pattern) is None


def test_accepted_patterns_decide_long_hostile_values():
    """Each accepted pattern decides 20,000-character hostile values in one search (a pattern that
    backtracks would not return for hours on them); run in a subprocess so a stall fails the test."""
    code = (
        "import re, sys\n"
        "values = ['a' * 20000 + '!', '1' * 20000 + '!', 'a,' * 10000 + '!', 'ab' * 10000 + '!', 'a@' * 10000 + ' ']\n"
        "for pattern in sys.argv[1:]:\n"
        "    rx = re.compile(pattern)\n"
        "    for value in values:\n"
        "        rx.search(value)\n"
        "print('decided', len(sys.argv) - 1)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *ACCEPTED], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == f"decided {len(ACCEPTED)}", result.stderr


def _doc(pattern: str, default: str) -> dict:
    return {
        "schema_version": 1,
        "package": "evil",
        "dag_id": "evil_stall",
        "schedule": None,
        "start_date": "2024-01-01",
        "params": {"p": {"type": "string", "pattern": pattern, "default": default}},
        "job": {"name": "run", "image": "registry.example.com/e/run:1.0"},
    }


def test_the_manifest_rule_refuses_before_evaluating(tmp_path):
    """The classic ``^(a+)+$`` with a 30-character default would take minutes to evaluate; the rule
    names the pointer and returns at once (a subprocess bounded by a guard far above the no-stall cost)."""
    raw = json.dumps(_doc(r"^(a+)+$", "a" * 40 + "!")).encode()
    with pytest.raises(ManifestError, match=r"/params/p/pattern: pattern can take unbounded time"):
        manifest.parse(raw, file="m.json")
    path = tmp_path / "evil_stall.json"
    path.write_bytes(raw)
    result = subprocess.run(
        [sys.executable, "-m", "dagfactory_s3.publisher.cli", "validate", "--dag-file", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 1 and "/params/p/pattern: pattern can take unbounded time" in result.stderr
