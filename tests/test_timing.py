"""The suite's own budget guard (tests/timing.py): a test over the limit fails, the report adds up."""

from __future__ import annotations

CONFTEST = """
import timing

def pytest_addoption(parser):
    timing.addoption(parser)

def pytest_configure(config):
    timing.configure(config)

pytest_runtest_makereport = timing.runtest_makereport
"""

TESTS = """
import subprocess, sys, time

import pytest

import timing

@pytest.fixture(scope="module")
def slow_setup():
    with timing.kind("nap"):
        time.sleep(0.4)

def test_over_the_limit(slow_setup):
    time.sleep(0.4)  # with its module fixture's 0.4 s, over a 0.6 s limit

def test_under_the_limit():
    subprocess.run([sys.executable, "-c", "pass"], check=True)
"""


def test_a_test_over_the_limit_fails_and_the_report_shows_where_time_went(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_x=TESTS)
    result = pytester.runpytest_inprocess(
        "--max-test-seconds=0.6", "--timing-report", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2, errors=1)  # the slow test's teardown report carries the failure
    out = result.stdout.str()
    assert "test_x.py::test_over_the_limit took " in out and "over the 0.6 s limit" in out
    assert "per kind of fixture" in out
    (nap,) = [line for line in out.splitlines() if line.endswith("  nap")]
    assert 0.4 <= float(nap.split()[0]) < 2 and int(nap.split()[1]) == 1
    assert any(line.endswith("Python subprocess (other)") for line in out.splitlines())
    assert "wall time: " in out and "for 2 tests on 1 worker(s)" in out


def test_no_limit_with_zero(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_x=TESTS)
    result = pytester.runpytest_inprocess("--max-test-seconds=0", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
