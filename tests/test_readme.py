"""The README's tour, run literally: its bash blocks, in order, as one script, nothing set up behind the scenes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

# demo/ is a repository tool, not part of the wheel; a bare `pytest` does not put the root on sys.path.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from demo.s3 import stop

# What the tour uses of a reader's checkout; everything else it writes starts from an empty directory.
CHECKOUT = ("Makefile", "pyproject.toml", "constraints.txt", "demo", "examples")
# A fresh shell has none of the developer's AWS or publisher settings, and is not inside a make.
NOT_IN_A_FRESH_SHELL = ("AWS_", "DAG_", "ENVIRONMENT", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")


def tour_script() -> str:
    readme = (ROOT / "README.md").read_text()
    tour = readme[readme.index("## Five-minute tour") : readme.index("## Getting the package")]
    blocks = re.findall(r"```bash\n(.*?)```", tour, re.S)
    assert len(blocks) >= 3
    return "set -euo pipefail\n" + "\n".join(blocks)


def test_the_tour_runs_end_to_end(tmp_path: Path):
    """Every command of the tour exits 0 in a fresh shell: make s3, generate ... publish, plan, list, rollback, sync."""
    pytest.importorskip("airflow")  # the tour's render step builds pods with the operator's code
    for name in CHECKOUT:
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(NOT_IN_A_FRESH_SHELL)}
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow_home")
    # `make s3` depends on the venv's stamp; a stale one would reinstall the package from this directory.
    if subprocess.run(["make", "-q", ".venv/.installed"], cwd=tmp_path, env=env).returncode:
        pytest.fail("the venv is older than pyproject.toml or constraints.txt: run `make venv` first")
    try:
        result = subprocess.run(
            ["bash", "-c", tour_script()], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        stopped = not (tmp_path / ".s3").exists()
    finally:
        stop(tmp_path / ".s3")  # the tour's last line stops its S3; this is for a tour that failed midway
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "/job/image: " in out and ':v1.0.0" → ' in out  # plan's field diff of the sed edit
    assert "S3 matches the release record" in out and "rolled back pipeline_processing in" in out
    assert "validated 1 pods against Kubernetes" in result.stderr
    served = sorted(p.name for p in (tmp_path / "airflow_home" / "dags").rglob("pipeline_processing*.json"))
    assert served == ["pipeline_processing_example.json"]
    assert os.path.exists(tmp_path / "job-manifest.v1.json")
    assert stopped, "the tour's `make s3-stop` left .s3/ behind"
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,command="], capture_output=True, text=True).stdout
    assert not [line for line in ps.splitlines() if "moto.server" in line and str(tmp_path) in line], (
        "the tour's `make s3-stop` left its S3 server running"
    )
