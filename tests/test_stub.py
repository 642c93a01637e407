"""Stubs: generated, byte-for-byte canonical, and shaped for Airflow's parser."""

from __future__ import annotations

import pytest

from dagfactory_s3 import stub
from dagfactory_s3.errors import ConfigError

from conftest import all_examples


@pytest.mark.parametrize("path", all_examples(), ids=lambda p: p.name)
def test_stub_matches_golden_file(path, golden):
    """The stub of each example equals its golden file, byte for byte."""
    golden(f"stubs/{path.stem}.py", stub.render(path.name))


@pytest.mark.parametrize("path", all_examples(), ids=lambda p: p.name)
def test_committed_example_stubs_are_canonical(path):
    """The stubs committed next to the examples are exactly what generate writes."""
    assert path.with_suffix(".py").read_bytes() == stub.render(path.name)


def test_regeneration_is_byte_identical():
    """Rendering twice gives the same bytes; the stub depends only on the manifest file name."""
    assert stub.render("pkg_a.json") == stub.render("pkg_a.json")
    assert stub.render("pkg_a.json") != stub.render("pkg_b.json")


def test_stub_names_its_sibling_manifest_and_loader_api():
    """The stub loads the sibling <name>.json through loader API 1."""
    text = stub.render("pkg_a.json").decode()
    assert 'load_dag(__file__, "pkg_a.json", api=1)' in text
    assert "loader API 1" in text


def test_is_canonical_rejects_any_change():
    """Changing, adding or dropping a single byte makes a stub non-canonical."""
    good = stub.stub_for("pkg_a.py")
    assert stub.is_canonical("pkg_a.py", good)
    assert not stub.is_canonical("pkg_a.py", good + b"\n")
    assert not stub.is_canonical("pkg_a.py", good[:-1])
    assert not stub.is_canonical("pkg_a.py", good.replace(b"api=1", b"api=2"))
    assert not stub.is_canonical("pkg_b.py", good)
    assert not stub.is_canonical("pkg_a.txt", good)


@pytest.mark.parametrize("name", ["../x.json", "a b.json", "x.py", ".hidden.json", 'q".json', "x.json\n"])
def test_unsafe_manifest_names_are_refused(name):
    """Names that could escape the directory or the string literal are refused."""
    with pytest.raises(ConfigError):
        stub.render(name)


@pytest.mark.airflow
@pytest.mark.compat
class TestAirflowParserContract:
    """The stub is shaped for the dag-processor of every supported minor (needs the [airflow] extra)."""

    @pytest.fixture(autouse=True)
    def _airflow(self):
        pytest.importorskip("airflow")

    def test_safe_mode_heuristic_finds_the_stub(self, tmp_path):
        """Airflow's safe-mode heuristic considers the stub a DAG file."""
        from airflow.utils.file import might_contain_dag_via_default_heuristic

        path = tmp_path / "pkg_a.py"
        path.write_bytes(stub.render("pkg_a.json"))
        assert might_contain_dag_via_default_heuristic(str(path))

    def test_dag_processor_pre_imports_the_kubernetes_operator(self, tmp_path):
        """The stub's top-level airflow import is one the dag-processor pre-imports once."""
        from airflow.utils.file import iter_airflow_imports

        path = tmp_path / "pkg_a.py"
        path.write_bytes(stub.render("pkg_a.json"))
        assert "airflow.providers.cncf.kubernetes.operators.pod" in set(iter_airflow_imports(str(path)))

    def test_version_inflation_checker_finds_nothing(self, tmp_path, monkeypatch):
        """Airflow's dag_version_inflation check (level=error) has no finding on the stub; on a minor
        without the check, Airflow has neither the checker nor its setting (so nothing to pass)."""
        from airflow.configuration import conf

        try:
            from airflow.utils.dag_version_inflation_checker import check_dag_file_stability
        except ImportError:
            assert not conf.has_option("dag_processor", "dag_version_inflation_check_level")
            return
        monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_VERSION_INFLATION_CHECK_LEVEL", "error")
        path = tmp_path / "pkg_a.py"
        path.write_bytes(stub.render("pkg_a.json"))
        result = check_dag_file_stability(str(path))
        assert result.check_level.value == "error"
        assert result.warnings == {}
