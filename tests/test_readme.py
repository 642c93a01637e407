"""The README's tour, run literally: its bash blocks, in order, as one script against a moto server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from conftest import ROOT
from s3server import aws_env


def tour_script() -> str:
    readme = (ROOT / "README.md").read_text()
    tour = readme[readme.index("## Five-minute tour") : readme.index("## Getting the package")]
    blocks = re.findall(r"```bash\n(.*?)```", tour, re.S)
    assert len(blocks) >= 3
    return "set -euo pipefail\n" + "\n".join(blocks)


def test_the_tour_runs_end_to_end(s3, tmp_path: Path):
    """Every command of the tour exits 0 in a fresh directory: generate ... publish, plan, list, rollback, sync."""
    pytest.importorskip("airflow")  # the tour's render step builds pods with the operator's code
    boto3.client("s3", endpoint_url=s3.upstream).create_bucket(Bucket="etl-airflow-dags-dev")
    # The directory a reader is in after `make`: the repository's examples and its .venv.
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env = {k: v for k, v in aws_env(s3.url).items() if not k.startswith(("DAG_", "ENVIRONMENT"))}
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow_home")
    result = subprocess.run(
        ["bash", "-c", tour_script()], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "/job/image: " in out and ':v1.0.0" → ' in out  # plan's field diff of the sed edit
    assert "S3 matches the release record" in out and "rolled back pipeline_processing in" in out
    assert "validated 1 pods against Kubernetes" in result.stderr
    served = sorted(p.name for p in (tmp_path / "airflow_home" / "dags").rglob("pipeline_processing*.json"))
    assert served == ["pipeline_processing_example.json"]
    assert os.path.exists(tmp_path / "job-manifest.v1.json")
