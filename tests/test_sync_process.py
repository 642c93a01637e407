"""The real ``airflow-dag-sync`` binary as a process: init-container mode, daemon, signals, config."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_sync as shared
from test_sync import ENV, expected_examples, manifest

from conftest import ROOT
from s3server import aws_env, free_port

SYNC = str(Path(sys.executable).parent / "airflow-dag-sync")


@pytest.fixture
def world(s3, bucket) -> shared.World:
    return shared.World(s3, bucket)


@pytest.fixture
def dags(tmp_path, world) -> Iterator[Path]:
    """The dags folder, watched for the whole test (see test_sync.Watcher)."""
    with shared.watching(tmp_path / "dags", world) as watch:
        yield watch.root


def sync_env(s3, **extra: str) -> dict[str, str]:
    """The sidecar's environment; the tests' World mirrors packages without records, hence the opt-in."""
    env = {k: v for k, v in aws_env(s3.url).items() if not k.startswith("DAG_SYNC_")}
    env["DAG_SYNC_MIRROR_UNRELEASED"] = "true"
    env.update(extra)
    return env


def run_once(s3, world, dags: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNC, "--once", "--bucket", world.bucket, "--environment", ENV, "--dags-folder", str(dags), *args],
        env=sync_env(s3),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def served(dags: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(dags)): p.read_bytes()
        for p in sorted(dags.glob("*/dags/*"))
        if not p.name.startswith(".")
    }


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(predicate, timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_once_syncs_and_exits_zero(s3, world, dags):
    """Init-container mode: one complete sync, exit 0, every line of output is JSON."""
    world.examples()
    result = run_once(s3, world, dags)
    assert result.returncode == 0, result.stdout + result.stderr
    assert served(dags) == expected_examples()
    lines = events(result.stdout)
    assert lines[0]["event"] == "start" and lines[-1]["event"] == "cycle" and lines[-1]["status"] == "success"
    s3.clear()
    again = run_once(s3, world, dags)
    assert again.returncode == 0 and s3.count("GET") == 0 and s3.count("LIST") == 1


def test_once_exits_zero_next_to_broken_packages(s3, world, dags):
    """Init-container mode: broken neighbours (overflowing manifests, bad record types, random bytes as
    metadata.json, a negative size) are named in the log; the good package is served and the exit is 0."""
    reasons = shared.plant_bad_neighbours(world)
    result = run_once(s3, world, dags)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {"good/dags/good_a.json", "good/dags/good_a.py"} <= set(served(dags))
    lines = events(result.stdout)
    assert all(e.get("kind") != "internal" for e in lines)
    errors = {e["package"]: e["error"] for e in lines if e["event"] == "error"}
    assert sorted(errors) == sorted(reasons)
    assert all(reason in errors[package] for package, reason in reasons.items())
    invalid = sorted(e["key"] for e in lines if e["event"] == "invalid_manifest")
    assert invalid == [
        f"{ENV}/overflow/dags/overflow_date.json",
        f"{ENV}/overflow/dags/overflow_duration.json",
    ]


def test_once_exits_nonzero_when_s3_fails(s3, world, dags):
    """Init-container mode with S3 failing: exit 1, nothing written, the error rendered in JSON."""
    world.examples()
    s3.fault = lambda request, index: "503" if request.kind == "LIST" else None
    result = run_once(s3, world, dags)
    assert result.returncode == 1
    assert served(dags) == {}
    error = next(e for e in events(result.stdout) if e["event"] == "error")
    assert error["kind"] == "list" and error["level"] == "error" and "s3://" in error["error"]


def test_daemon_health_metrics_reload_and_sigterm(s3, world, dags):
    """Daemon: /readyz 503 until a complete sync, then 200; /metrics counts; changes land; SIGTERM exits 0."""
    world.examples()
    port = free_port()
    s3.fault = lambda request, index: "500" if request.kind == "LIST" else None
    env = sync_env(
        s3,
        DAG_BUCKET=world.bucket,
        ENVIRONMENT=ENV,
        DAGS_FOLDER=str(dags),
        DAG_SYNC_INTERVAL="0.3",
        DAG_SYNC_METRICS_ADDR=f"127.0.0.1:{port}",
        DAG_SYNC_MAX_BACKOFF="1",
    )
    proc = subprocess.Popen([SYNC], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(
            lambda: 'dagsync_cycles_total{status="error"} 1.0' in http_get(port, "/metrics")[1],
            what="a failed cycle",
        )
        assert http_get(port, "/healthz")[0] == 200
        assert http_get(port, "/readyz") == (503, "no complete sync yet\n")
        s3.fault = None
        wait_for(lambda: http_get(port, "/readyz")[0] == 200, what="/readyz")
        assert served(dags) == expected_examples()
        world.mirror("demo", {"demo_a.json": manifest("demo", "a")})
        wait_for(lambda: "demo/dags/demo_a.py" in served(dags), what="a new DAG")
        # The file lands before its cycle ends; the gauges are set when the cycle does.
        wait_for(lambda: "dagsync_dags_served 4.0" in http_get(port, "/metrics")[1], what="the served gauge")
        status, text = http_get(port, "/metrics")
        assert status == 200
        for needle in (
            'dagsync_cycles_total{status="success"}',
            'dagsync_cycles_total{status="error"}',
            "dagsync_cycle_duration_seconds_bucket",
            "dagsync_last_success_timestamp_seconds",
            'dagsync_release_info{package="reporting_seeder",release_id="r1"} 1.0',
            "dagsync_dags_served 4.0",
        ):
            assert needle in text, needle
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
    assert err == ""
    names = [e["event"] for e in events(out)]
    assert "ready" in names and names[-1] in ("stopping", "cycle")


def test_readyz_names_a_wrong_environment(s3, world, dags):
    """Nothing under the sidecar's environment: /readyz is still 200 once the (empty) sync is complete,
    and its body repeats the warning with the environments the bucket holds, until the prefix fills."""
    world.put("prod/x/dags/x_a.json", manifest("x", "a"))
    port = free_port()
    env = sync_env(
        s3,
        DAG_BUCKET=world.bucket,
        ENVIRONMENT=ENV,
        DAGS_FOLDER=str(dags),
        DAG_SYNC_INTERVAL="0.3",
        DAG_SYNC_METRICS_ADDR=f"127.0.0.1:{port}",
    )
    proc = subprocess.Popen([SYNC], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: http_get(port, "/readyz")[0] == 200, what="/readyz")
        assert http_get(port, "/readyz") == (
            200,
            f"ready\nwarning: nothing under s3://{world.bucket}/{ENV}/; check the environment setting; "
            "environments in the bucket: prod\n",
        )
        world.mirror("demo", {"demo_a.json": manifest("demo", "a")})
        wait_for(lambda: http_get(port, "/readyz") == (200, "ready\n"), what="the warning to clear")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        out, _ = proc.communicate()
    [warning] = [e for e in events(out) if e["event"] == "empty_environment"]
    assert warning["environments_in_bucket"] == ["prod"]


def test_sigkill_mid_download_then_restart(s3, world, dags):
    """SIGKILL while objects are downloading: nothing half-applied; a restart completes the sync."""
    files = {f"demo_{i:02}.json": manifest("demo", f"{i:02}") for i in range(30)}
    world.release("demo", files)
    world.mirror("plain", {"plain_a.json": manifest("plain", "a")})
    downloading = threading.Event()

    def stall(request, index):
        if request.kind == "GET" and "/dags/" in request.path:
            downloading.set()
            time.sleep(0.2)  # the proxy holds its lock: every download stalls here
        return None

    s3.fault = stall
    proc = subprocess.Popen(
        [SYNC, "--once", "--bucket", world.bucket, "--environment", ENV, "--dags-folder", str(dags)],
        env=sync_env(s3),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert downloading.wait(30)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    s3.fault = None
    assert not any(k.startswith("demo/") for k in served(dags))  # a release is all or nothing
    result = run_once(s3, world, dags)
    assert result.returncode == 0, result.stdout
    assert len(served(dags)) == 62
    s3.clear()
    assert run_once(s3, world, dags).returncode == 0 and s3.count("GET") == 0


def test_config_errors_and_misspelled_variables(s3, world, tmp_path):
    """A missing bucket or a bad value exits 2 naming the setting; an unknown DAG_SYNC_* var is warned."""
    (tmp_path / "d").mkdir()
    base = [SYNC, "--once", "--dags-folder", str(tmp_path / "d")]
    missing = subprocess.run(
        base, env=sync_env(s3, ENVIRONMENT=ENV), capture_output=True, text=True, timeout=30
    )
    assert missing.returncode == 2 and "DAG_BUCKET" in events(missing.stdout)[0]["error"]
    bad = subprocess.run(
        base,
        env=sync_env(s3, DAG_BUCKET=world.bucket, ENVIRONMENT=ENV, DAG_SYNC_INTERVAL="soon"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "DAG_SYNC_INTERVAL" in events(bad.stdout)[0]["error"]
    typo = subprocess.run(
        base,
        env=sync_env(s3, DAG_BUCKET=world.bucket, ENVIRONMENT=ENV, DAG_SYNC_INTERVALL="5"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert typo.returncode == 0
    warning = next(e for e in events(typo.stdout) if e["event"] == "config_warning")
    assert "DAG_SYNC_INTERVALL" in warning["warning"]
    # A renamed flag and variable keep working for one more minor release, with a warning.
    old_names = subprocess.run(
        [*base, "--metrics-port", "0"],
        env=sync_env(s3, DAG_BUCKET=world.bucket, ENVIRONMENT=ENV, DAG_SYNC_METRICS_PORT="9300"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert old_names.returncode == 0, old_names.stdout
    warned = [e["warning"] for e in events(old_names.stdout) if e["event"] == "config_warning"]
    assert any(w.startswith("--metrics-port is deprecated") and "--metrics-addr" in w for w in warned)
    assert any(w.startswith("DAG_SYNC_METRICS_PORT is deprecated") for w in warned)
    assert not any("unknown environment variable" in w for w in warned)
    endpoint = subprocess.run(
        base,
        env=sync_env(s3, DAG_BUCKET=world.bucket, ENVIRONMENT=ENV) | {"AWS_ENDPOINT_URL": "not a url"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert endpoint.returncode == 2 and "Traceback" not in endpoint.stderr, endpoint.stderr
    (error,) = [e for e in events(endpoint.stdout) if e["event"] == "error"]
    assert error["kind"] == "config" and error["error"].startswith("AWS_ENDPOINT_URL")


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_cli_describes_itself(flag):
    """--help lists every env twin; --version prints the version."""
    result = subprocess.run([SYNC, flag], capture_output=True, text=True, timeout=30, env={**os.environ})
    assert result.returncode == 0
    if flag == "--help":
        for name in (
            "DAG_BUCKET",
            "ENVIRONMENT",
            "DAG_SYNC_INTERVAL",
            "DAGS_FOLDER",
            "DAG_SYNC_METRICS_ADDR",
        ):
            assert name in result.stdout
        assert "examples:\n" in result.stdout and "airflow-dag-sync --once --bucket" in result.stdout


class TestDeployment:
    def test_helm_values_use_known_settings(self):
        """The Helm snippet sets only settings the binary knows, for init (--once) and sidecar containers."""
        import yaml

        from dagfactory_s3.settings import OPTIONS

        values = yaml.safe_load((ROOT / "sidecar" / "helm-values.yaml").read_text())
        known = {opt.env for opt in OPTIONS.values()} | {"AWS_REGION"}
        for component in ("dagProcessor", "workers", "triggerer"):
            (init,) = values[component]["extraInitContainers"]
            sides = values[component]["extraContainers"]
            assert init["args"] == ["--once"] and all("args" not in side for side in sides)
            for container in (init, *sides):
                assert {e["name"] for e in container["env"]} <= known
                assert container["securityContext"]["runAsNonRoot"] is True
                assert container["volumeMounts"][0]["mountPath"] == "/opt/airflow/dags"
            assert all(side["readinessProbe"]["httpGet"]["path"] == "/readyz" for side in sides)
            assert values[component]["extraVolumeMounts"][0]["readOnly"] is True
        # A KubernetesExecutor worker pod runs one task: its init container serves that DAG alone, named
        # by the dag_id annotation the executor puts on the pod (the downward API); no sidecar.
        (init,) = values["workers"]["extraInitContainers"]
        dag_id = next(e for e in init["env"] if e["name"] == "DAG_SYNC_DAG_ID")
        assert dag_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.annotations['dag_id']"
        assert values["workers"]["extraContainers"] == []

    def test_image_is_slim_non_root_and_execs_the_binary(self):
        """The Dockerfile runs as uid 50000 from python:3.11-slim; the entrypoint execs airflow-dag-sync."""
        dockerfile = (ROOT / "sidecar" / "Dockerfile").read_text()
        assert "FROM python:3.11-slim" in dockerfile and "USER 50000:0" in dockerfile
        assert "[sidecar]" in dockerfile and "airflow" not in dockerfile.replace(
            "airflow-dag-sync", ""
        ).replace("/opt/airflow", "").replace("Airflow", "").replace("airflow-sync", "")
        entrypoint = (ROOT / "sidecar" / "entrypoint.sh").read_text()
        assert 'exec airflow-dag-sync "$@"' in entrypoint
        assert os.access(ROOT / "sidecar" / "entrypoint.sh", os.X_OK)

    def test_readme_states_the_contract_first(self):
        """sidecar/README.md opens with the contract, before how to run or configure it."""
        readme = (ROOT / "sidecar" / "README.md").read_text()
        headings = [line for line in readme.splitlines() if line.startswith("## ")]
        assert headings[0] == "## The contract"
        for name in ("DAG_BUCKET", "ENVIRONMENT", "DAG_SYNC_INTERVAL", "DAGS_FOLDER"):
            assert f"`{name}`" in readme


# -- bounded memory and start-up checks ----------------------------------------------------------

HELM_MEMORY_LIMIT = 256 << 20  # sidecar/helm-values.yaml: limits: {memory: 256Mi}
PLANTED_BYTES = 320 << 20
# Runs argv[2:] and writes "<exit code> <peak RSS in KiB>" of it to argv[1]. The sidecar must not be
# started by the test process itself: subprocess forks with vfork, and Linux carries the high-water
# RSS of the memory a process had before exec into its ru_maxrss -- a child of a pytest that holds
# 400 MiB would report 400 MiB whatever it did. Started from this small launcher, the sidecar's peak
# includes only the launcher's ~11 MiB.
MEASURE = (
    "import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); _, status, usage = os.wait4(p.pid, 0); "
    "open(sys.argv[1], 'w').write(f'{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}')"
)


def helm_memory_limit() -> int:
    import yaml

    values = yaml.safe_load((ROOT / "sidecar" / "helm-values.yaml").read_text())
    (init,) = values["dagProcessor"]["extraInitContainers"]
    limit = init["resources"]["limits"]["memory"]
    assert limit.endswith("Mi")
    return int(limit[:-2]) << 20


def test_once_peak_memory_stays_under_the_helm_limit_next_to_huge_objects(s3, world, dags, tmp_path):
    """``--once`` next to a 320 MiB planted manifest (listed as such) and a small one that streams 1 GiB
    when fetched (bigger than listed, no Content-Length): both refused, the good package served, exit 0,
    and the process's peak RSS (its own ru_maxrss, from wait4) stays under the Helm limit of 256 MiB.

    Why 320 MiB and not 1 GiB planted: moto takes ~50 s to store 1 GiB here, and the size does not
    matter to what is proved. The planted object is larger than the whole limit, so a sidecar that
    held it (as before: one read of the body) would exceed 256 MiB by itself; and the streamed object
    offers a full GiB, of which the sidecar reads at most the 256 KiB manifest cap plus one 1 MiB chunk
    before it hangs up (the proxy reports how much got out).
    """
    assert helm_memory_limit() == HELM_MEMORY_LIMIT
    world.release("good", {"good_a.json": manifest("good", "a")})
    sparse = tmp_path / "sparse"
    with sparse.open("wb") as handle:
        handle.truncate(PLANTED_BYTES)
    world.client.upload_file(str(sparse), world.bucket, f"{ENV}/big/dags/big_a.json")
    world.mirror("flood", {"flood_a.json": manifest("flood", "a")})
    big, flood = f"{ENV}/big/dags/big_a.json", f"{ENV}/flood/dags/flood_a.json"
    s3.fault = lambda request, index: "flood" if request.path.endswith(flood) else None
    stdout, stderr, measured = tmp_path / "stdout", tmp_path / "stderr", tmp_path / "measured"
    with stdout.open("w") as out_file, stderr.open("w") as err_file:
        sidecar = [SYNC, "--once", "--bucket", world.bucket, "--environment", ENV, "--dags-folder", str(dags)]
        subprocess.run(
            [sys.executable, "-c", MEASURE, str(measured), *sidecar],
            env=sync_env(s3),
            stdout=out_file,
            stderr=err_file,
            check=True,
            timeout=300,
        )
    code, maxrss = map(int, measured.read_text().split())
    out, err = stdout.read_text(), stderr.read_text()
    assert code == 0, out + err
    peak = maxrss * 1024  # KiB on Linux
    print(
        f"peak RSS of airflow-dag-sync --once: {peak / 2**20:.1f} MiB (limit {HELM_MEMORY_LIMIT >> 20} MiB)"
    )
    assert peak < HELM_MEMORY_LIMIT
    assert {"good/dags/good_a.json", "good/dags/good_a.py"} <= set(served(dags))
    assert not any(k.startswith(("big/", "flood/")) for k in served(dags))
    refusals = {e["key"]: e for e in events(out) if e["event"] == "refuse"}
    assert refusals[big]["kind"] == "content" and "larger than" in refusals[big]["reason"]
    assert refusals[flood]["kind"] == "size" and "larger than" in refusals[flood]["reason"]
    gets = [r.path for r in s3.requests if r.kind == "GET"]
    assert not any(p.endswith(big) for p in gets)
    assert s3.flooded and s3.flooded[0] < 64 << 20


def _run_without_override(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run so that file permissions apply: as root, without the capabilities that bypass them."""
    if os.getuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "as root this test needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE"
        args = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *args]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)


class TestStartupCheck:
    """Before any S3 request: one actionable line, exit 2, no traceback."""

    def run(
        self, s3, world, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [SYNC, "--once", "--bucket", world.bucket, "--environment", ENV, *args]
        return subprocess.run(argv, env=env or sync_env(s3), capture_output=True, text=True, timeout=60)

    def error_of(self, result: subprocess.CompletedProcess[str]) -> str:
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        lines = events(result.stdout)
        (error,) = [e for e in lines if e["event"] == "error"]
        assert error["kind"] == "config" and "\n" not in error["error"]
        assert s3.count() == 0 if (s3 := self.s3) else True
        return error["error"]

    @pytest.fixture(autouse=True)
    def _keep(self, s3):
        self.s3 = s3

    def test_missing_dags_folder(self, s3, world, tmp_path):
        """A DAGS_FOLDER that does not exist is named, with the fix."""
        error = self.error_of(self.run(s3, world, "--dags-folder", str(tmp_path / "nope")))
        assert f"DAGS_FOLDER {tmp_path / 'nope'} does not exist" in error and "mount the dags volume" in error

    def test_unwritable_dags_folder(self, s3, world):
        """A DAGS_FOLDER this uid cannot write (an emptyDir without fsGroup) is named with the uid."""
        base = Path(tempfile.mkdtemp(prefix="dagsync-ro-"))
        try:
            dags = base / "dags"
            dags.mkdir()
            dags.chmod(0o555)
            argv = [
                SYNC,
                "--once",
                "--bucket",
                world.bucket,
                "--environment",
                ENV,
                "--dags-folder",
                str(dags),
            ]
            error = self.error_of(_run_without_override(argv, sync_env(s3)))
            assert f"DAGS_FOLDER {dags} is not writable by uid" in error and "fsGroup" in error
        finally:
            shutil.rmtree(base)

    def test_state_dir_on_another_filesystem(self, s3, world, tmp_path):
        """A state directory on another filesystem than the dags folder is refused."""
        other = Path("/dev/shm")
        if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
            pytest.fail("this test needs /dev/shm on its own filesystem (tmpfs)")
        state = Path(tempfile.mkdtemp(dir=other, prefix="dagsync-state-"))
        try:
            (tmp_path / "dags").mkdir()
            result = self.run(s3, world, "--dags-folder", str(tmp_path / "dags"), "--state-dir", str(state))
            assert "is on another filesystem than DAGS_FOLDER" in self.error_of(result)
        finally:
            shutil.rmtree(state)

    def test_symlinked_state_dir(self, s3, world, tmp_path):
        """The default state directory replaced by a symlink is refused, naming the link."""
        (tmp_path / "dags").mkdir()
        (tmp_path / "elsewhere").mkdir()
        os.symlink(tmp_path / "elsewhere", tmp_path / "dags" / ".dagfactory-sync")
        error = self.error_of(self.run(s3, world, "--dags-folder", str(tmp_path / "dags")))
        assert ".dagfactory-sync is a symbolic link" in error

    def test_bad_metrics_addr(self, s3, world, tmp_path):
        """DAG_SYNC_METRICS_ADDR that is not HOST:PORT is named."""
        (tmp_path / "dags").mkdir()
        env = sync_env(s3, DAG_SYNC_METRICS_ADDR="9102")
        error = self.error_of(self.run(s3, world, "--dags-folder", str(tmp_path / "dags"), env=env))
        assert "DAG_SYNC_METRICS_ADDR" in error and "HOST:PORT" in error

    def test_start_log_names_the_metrics_address(self, s3, world, tmp_path):
        """The daemon's start log names DAG_SYNC_METRICS_ADDR; the bound address follows."""
        (tmp_path / "dags").mkdir()
        port = free_port()
        env = sync_env(s3, DAG_SYNC_METRICS_ADDR=f"127.0.0.1:{port}", DAG_SYNC_INTERVAL="30")
        argv = [SYNC, "--bucket", world.bucket, "--environment", ENV, "--dags-folder", str(tmp_path / "dags")]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: http_get(port, "/readyz")[0] == 200, what="/readyz")
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        lines = events(out)
        start = next(e for e in lines if e["event"] == "start")
        assert start["metrics_addr"] == f"127.0.0.1:{port}"
        assert next(e for e in lines if e["event"] == "listening")["metrics_addr"] == f"127.0.0.1:{port}"
