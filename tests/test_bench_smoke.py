"""The scale bench (``make bench-scale``) at a small size: it runs end to end, as shipped, and its
targets hold there too. The 5,000-DAG figures are in docs/benchmarks.md, not in the test suite."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_the_scale_bench_runs_and_meets_its_targets_at_a_small_size():
    """3 packages of 5 DAGs: every row is measured and the no-op sidecar cycle, the sidecar's peak RSS,
    the no-op bundle refresh and the bundle's fresh-disk task start meet their targets."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale_bench", "--packages", "3", "--dags", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 13, done.stdout
    targets = done.stdout.rsplit("Targets", 1)[1]
    assert targets.count(": met") == 4 and "MISSED" not in targets, targets
    worker = next(line for line in rows if line.startswith("| worker pod start"))
    assert worker.split("|")[3].strip() == "4"  # requests: the DAG's three and the policy's pointer


def test_the_dag_processor_scale_bench_runs_at_a_small_size(tmp_path):
    """2 packages of 2 DAGs through the whole dag-processor half of ``make bench-scale``: the first parse
    beside hand-written files (every DAG registered, none an import error, all serializing as their
    hand-written twin), a long-running dag-processor's start-up and idle (no DAG version created at
    idle), and one change and one new DAG published and seen in Airflow's database."""
    out = tmp_path / "result.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.processor_scale", "--packages", "2", "--dags", "2",
            "--steady", "2", "--settle", "1", "--trials", "1", "--sync-interval", "1", "--refresh-interval", "1",
            "--json", str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    first = result["first_parse"]
    assert first["files"] == first["identical"] == 4
    for row in first["rows"].values():
        assert (row["dags"], row["import_errors"]) == (4, 0)
    assert result["steady"]["dag_versions_created"] == 0
    assert sorted(t["kind"] for t in result["trials"]) == ["change", "new"]
    assert result["processor_jobs"] == 1
    assert "| publish → visible |" in done.stdout
