"""Where the suite's time goes, and the guard that keeps it inside its budget (docs/testing.md).

* ``kind("dag-processor run")``: a context manager (and ``timed`` a decorator) the test helpers wrap
  their expensive steps in (an Airflow DB migrate, a dag-processor run, a moto start, a CLI
  subprocess, a chaos kill point ...). What a test spent in each kind travels with its reports (as
  ``user_properties``, which pytest-xdist sends from its workers to the controller).
* ``--timing-report`` (``make test-durations``) prints the 30 slowest tests and the time per test
  file and per kind.
* Every run prints its wall time, and a test whose setup, call and teardown together take longer
  than ``--max-test-seconds`` (90 by default, 0: no limit) fails at its teardown: a slow test moves to
  ``make test-all`` or gets faster, it never quietly grows the budget.
"""

from __future__ import annotations

import functools
import os
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest

PREFIX = "timing:"
WALL_BUDGET = 12 * 60  # seconds: `make test` on the 2-core reference machine (docs/testing.md)

_lock = threading.Lock()
_spent: dict[str, float] = defaultdict(float)  # kind -> seconds, since the last report of this process
_depth = threading.local()


@contextmanager
def kind(name: str) -> Iterator[None]:
    """Count the time of the block against ``name`` for the test that runs it. Kinds do not nest: a
    block inside another one's counts for the outer kind only, so the kinds add up to at most the whole."""
    depth = getattr(_depth, "n", 0)
    _depth.n = depth + 1
    start = time.monotonic()
    try:
        yield
    finally:
        _depth.n = depth
        if depth == 0:
            with _lock:
                _spent[name] += time.monotonic() - start


F = TypeVar("F", bound=Callable[..., Any])


def timed(name: str) -> Callable[[F], F]:
    def wrap(func: F) -> F:
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with kind(name):
                return func(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


def subprocess_kind(argv: Any) -> str:
    """The kind of a ``subprocess.run`` by what it runs (an explicit ``kind`` around it wins)."""
    words = [str(a) for a in argv] if isinstance(argv, list | tuple) else str(argv).split()
    names = [os.path.basename(w) for w in words[:4]]
    text = " ".join(words[:6])
    if "dagfactory_s3.publisher.cli" in text or "airflow-dag-publisher" in names:
        return "publisher CLI subprocess"
    if "airflow-dag-sync" in names:
        return "sidecar CLI subprocess"
    if "pip" in names or "venv" in names:
        return "pip / venv build"
    if "airflow" in names:
        return "Airflow CLI subprocess"
    if names and names[0].startswith("python"):
        return "Python subprocess (other)"
    return f"other subprocess ({names[0] if names else '?'})"


def _timed_run(run: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(run)
    def inner(*args: Any, **kwargs: Any) -> Any:
        with kind(subprocess_kind(args[0] if args else kwargs.get("args", ()))):
            return run(*args, **kwargs)

    return inner


def _drain() -> list[tuple[str, float]]:
    with _lock:
        items = [(PREFIX + k, round(v, 3)) for k, v in _spent.items()]
        _spent.clear()
    return items


def addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("timing", "where the suite's time goes (tests/timing.py)")
    group.addoption(
        "--timing-report",
        action="store_true",
        help="print the 30 slowest tests and the time per test file and per kind of fixture",
    )
    group.addoption(
        "--max-test-seconds",
        type=float,
        default=90.0,
        help="fail a test whose setup+call+teardown takes longer (default 90; 0: no limit)",
    )


_TOTAL = pytest.StashKey[float]()


@pytest.hookimpl(hookwrapper=True)
def runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    report.user_properties.extend(_drain())
    total = item.stash.get(_TOTAL, 0.0) + call.duration
    item.stash[_TOTAL] = total
    limit = item.config.getoption("--max-test-seconds")
    if call.when == "teardown" and limit and total > limit and report.passed:
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} took {total:.0f} s (setup + call + teardown), over the {limit:g} s limit "
            "of one test (--max-test-seconds): make it faster or move it to `make test-all` (docs/testing.md)"
        )


class Collector:
    """On the controller (or a run without xdist): every report's duration and kinds."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.tests: dict[str, float] = defaultdict(float)
        self.kinds: dict[str, float] = defaultdict(float)
        self.kind_tests: dict[str, set[str]] = defaultdict(set)
        self.start = time.monotonic()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.tests[report.nodeid] += report.duration
        for key, value in report.user_properties:
            if isinstance(key, str) and key.startswith(PREFIX):
                self.kinds[key[len(PREFIX) :]] += value
                self.kind_tests[key[len(PREFIX) :]].add(report.nodeid)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        write = terminalreporter.write_line
        wall = time.monotonic() - self.start
        workers = getattr(self.config.option, "numprocesses", None) or 1
        if self.config.getoption("--timing-report"):
            self.report(write, wall, workers)
        over = " -- over it" if wall > WALL_BUDGET else ""
        write(
            f"wall time: {wall:.0f} s for {len(self.tests)} tests on {workers} worker(s) "
            f"(`make test`'s budget: {WALL_BUDGET} s){over}"
        )

    def report(self, write: Callable[[str], None], wall: float, workers: int) -> None:
        busy = sum(self.tests.values())
        write("")
        write(f"== timing: {len(self.tests)} tests, {busy:.0f} s of test time, {wall:.0f} s wall ==")
        write("30 slowest tests (setup + call + teardown, s):")
        for nodeid, seconds in sorted(self.tests.items(), key=lambda kv: -kv[1])[:30]:
            write(f"  {seconds:8.1f}  {nodeid}")
        files: dict[str, list[float]] = defaultdict(list)
        for nodeid, seconds in self.tests.items():
            files[nodeid.split("::")[0]].append(seconds)
        write("per test file (s, tests):")
        for name, times in sorted(files.items(), key=lambda kv: -sum(kv[1])):
            write(f"  {sum(times):8.1f}  {len(times):5d}  {name}")
        write("per kind of fixture (s, tests that used it; the rest of a test's time is its own):")
        for name, seconds in sorted(self.kinds.items(), key=lambda kv: -kv[1]):
            write(f"  {seconds:8.1f}  {len(self.kind_tests[name]):5d}  {name}")
        write(f"  {busy - sum(self.kinds.values()):8.1f}      -  (not in any kind)")


def configure(config: pytest.Config) -> None:
    # Every subprocess.run a test (or the code under test) makes is counted by what it runs.
    if not getattr(subprocess.run, "__wrapped__", None):
        subprocess.run = _timed_run(subprocess.run)
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        config.pluginmanager.register(Collector(config), "timing-collector")
