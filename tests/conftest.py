"""Shared fixtures: an isolated Airflow home, the moto S3 server, a counting proxy in front of it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

import timing
from s3server import MotoServer, Proxy, aws_env

# tests/test_timing.py runs pytest on small test files of its own.
pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "packages"
GOLDEN = Path(__file__).resolve().parent / "golden"

# Airflow reads its configuration when first imported: point it at a throw-away home before any test
# module imports it, and keep the examples and the unit-test DB out of the way.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="dagfactory-s3-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_AIRFLOW_HOME / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under `make test-compat` a skipped test fails the run: a cell proves, it never passes by omission."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    # (Not a DAGFACTORY_S3_ name: the CLIs warn about unknown variables with their prefixes.)
    if os.environ.get("COMPAT_FORBID_SKIPS") and skipped and session.exitstatus == 0:
        names = ", ".join(sorted({getattr(r, "nodeid", "?") or "?" for r in skipped})[:10])
        session.config.get_terminal_writer().line(
            f"compat: {len(skipped)} skipped test(s) fail the cell: {names}", red=True
        )
        session.exitstatus = 1


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden", action="store_true", help="rewrite tests/golden/ from the current code"
    )
    timing.addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    timing.configure(config)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests (marked ``slow``) first: the workers take them while the many short ones are
    left to even out the end, so neither worker finishes alone with a 30-60 s test (docs/testing.md)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# Each report carries the time its test spent per kind of fixture; a test over the limit fails.
pytest_runtest_makereport = timing.runtest_makereport


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """Compare bytes with tests/golden/<name>; --regen-golden rewrites the file instead."""
    regen = request.config.getoption("--regen-golden")

    def check(name: str, actual: bytes) -> None:
        path = GOLDEN / name
        if regen:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(actual)
        assert path.exists(), f"missing golden file {path}; run pytest --regen-golden and review the diff"
        assert actual == path.read_bytes(), (
            f"{path} differs; if intended, run pytest --regen-golden and review"
        )

    return check


def unstamped(data: bytes) -> bytes:
    """A published manifest without the publisher's provenance stamp: the bytes the package wrote.
    Bytes without a stamp (not stamped, not whole, not a manifest) are returned as they are."""
    from dagfactory_s3 import manifest

    try:
        return manifest.unstamp(data, json.loads(data)[manifest.PROVENANCE])
    except (ValueError, KeyError, TypeError):
        return data


def example_manifests() -> list[Path]:
    """The manifests of the example packages (what the demo and the end-to-end tests publish)."""
    return sorted(EXAMPLES.glob("*/airflow_dags/*.json"))


# The feature tour, kept out of the packages (whose published sets the sync and publish tests count):
# one manifest using every task-level field, and one scheduled on assets the packages' tasks produce.
FEATURES_DIR = ROOT / "examples" / "features" / "airflow_dags"
REBUILD = FEATURES_DIR / "reporting_seeder_agency_rebuild.json"
ORDERS_REPORT = FEATURES_DIR / "reporting_seeder_orders_report.json"
FEATURES = [REBUILD, ORDERS_REPORT]


def all_examples() -> list[Path]:
    return [*example_manifests(), *FEATURES]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    with timing.kind("moto server start"):
        server.start()
    yield server
    server.stop()


@pytest.fixture
def s3(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxy]:
    """A fresh moto state behind a counting proxy; AWS_* env points at the proxy for this test."""
    if moto_server.proc is None or moto_server.proc.poll() is not None:
        with timing.kind("moto server start"):
            moto_server.start()
    with timing.kind("moto reset"):
        moto_server.reset()
    proxy = Proxy(moto_server.url)
    for key, value in aws_env(proxy.url).items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    yield proxy
    proxy.close()


@pytest.fixture
def bucket(s3: Proxy) -> str:
    """An empty bucket on the moto server (created directly, not through the proxy's counters)."""
    name = "etl-airflow-dags-test"
    boto3.client("s3", endpoint_url=s3.upstream).create_bucket(Bucket=name)
    return name


@pytest.fixture
def examples_copy(tmp_path: Path) -> Path:
    """A writable copy of examples/packages."""
    dest = tmp_path / "packages"
    shutil.copytree(EXAMPLES, dest)
    return dest
