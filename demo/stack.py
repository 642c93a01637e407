"""The demo stack as real processes: an S3 endpoint, the publisher CLI, the sync sidecar and Airflow.

Shared by ``python -m demo`` and ``tests/test_e2e.py``, so the test exercises exactly what the demo
shows. Nothing here imports Airflow: Airflow runs as its own processes (``airflow db migrate``,
``airflow dag-processor``, ``airflow api-server``) and is observed the way an operator would, through
its metadata database (read-only) and its REST API.

Every child runs in its own session, so a Ctrl-C in the terminal reaches only the demo, which then
stops each child by its process group, SIGTERM first and SIGKILL after a grace period.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
import secrets
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "packages"
# The deploy kit's platform policy: the platform publishes it to the bucket (`policy publish`), the
# sidecar serves it beside the packages, the factory parses under it and the publishes check against it.
POLICY = ROOT / "deploy" / "airflow" / "dagfactory-policy.json"
BIN = Path(sys.executable).parent
BUCKET = "etl-airflow-dags-demo"
ENVIRONMENT = "demo"
DEMO_USER = "admin"

T = TypeVar("T")

__all__ = [
    "BUCKET",
    "ENVIRONMENT",
    "EXAMPLES",
    "POLICY",
    "DagInfo",
    "MetadataDB",
    "Proc",
    "Published",
    "Settings",
    "Stack",
    "Trial",
    "airflow_settings",
    "aws_env",
    "free_port",
    "percentile",
    "wait_for",
]


# -- settings ----------------------------------------------------------------------------------


def airflow_settings(
    home: Path,
    dags: Path,
    *,
    refresh_interval: int,
    min_file_process_interval: int,
    min_serialized_dag_update_interval: int,
    api_port: int | None = None,
) -> dict[str, str]:
    """The Airflow 3 settings docs/deploy.md recommends, as environment variables.

    Production uses the same keys with longer intervals (deploy/helm/values.yaml); the demo and the
    end-to-end tests shorten ``refresh_interval`` so a new file is discovered in seconds, and keep
    ``min_file_process_interval`` long to prove that changes are picked up by mtime, not by polling.
    """
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        # How often the dags folder is listed: new and deleted DAG files are noticed within this.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(refresh_interval),
        # Unchanged files are re-parsed only this often; changed ones at once (modified_time order).
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(min_file_process_interval),
        "AIRFLOW__DAG_PROCESSOR__FILE_PARSING_SORT_MODE": "modified_time",
        # A DAG whose serialized form changes from parse to parse is an import error, not a new version.
        "AIRFLOW__DAG_PROCESSOR__DAG_VERSION_INFLATION_CHECK_LEVEL": "error",
        # A parse that finds a *changed* DAG within this many seconds of its previous write is dropped
        # (and, with a long min_file_process_interval, not retried for minutes): keep it well below
        # the sync interval. See docs/deploy.md.
        "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": str(min_serialized_dag_update_interval),
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "2",
        "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "60",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{DEMO_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # No Kubernetes cluster here: a scheduler may create runs, but their pods must never start.
        # The default pool (created by `db migrate`) gets no slots, so task instances stay scheduled.
        "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": "0",
    }
    if api_port is not None:
        env.update(AIRFLOW__API__HOST="127.0.0.1", AIRFLOW__API__PORT=str(api_port))
    return env


@dataclass(frozen=True)
class Settings:
    """Knobs of one stack. ``api_port`` None runs no api-server (the tests need none)."""

    sync_interval: float = 5.0
    refresh_interval: int = 5
    min_file_process_interval: int = 300
    min_serialized_dag_update_interval: int = 0
    api_port: int | None = None
    mirror_unreleased: bool = False  # the sidecar's migration opt-in (packages without a release record)


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when nothing listens on it, else a free port chosen by the kernel."""
    if preferred:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def aws_env(endpoint: str) -> dict[str, str]:
    """The standard AWS chain pointed at ``endpoint``: what a CI job or the sidecar would see."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW"))}
    env.update(
        AWS_ACCESS_KEY_ID="demo",
        AWS_SECRET_ACCESS_KEY="demo",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


# -- processes ---------------------------------------------------------------------------------


class Proc:
    """A child process in its own session, its output in ``log``."""

    def __init__(
        self, name: str, argv: list[str], *, env: Mapping[str, str], log: Path, cwd: Path | None = None
    ) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                argv,
                env=dict(env),
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started = time.monotonic()
        self.stopped = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise StackError(f"{self.name} exited with code {self.popen.returncode}", self)

    def signal(self, signum: int) -> None:
        # The child leads its own process group (start_new_session): this reaches it and the
        # processes it forked (parsing processes, uvicorn workers) and nothing else. Once stopped,
        # the group id may be reused by an unrelated process: never signal it again.
        if self.stopped:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def stop(self, grace: float = 20.0) -> None:
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(10)
        # Forked children outlive a leader that exited first; they are still in its group.
        self.signal(signal.SIGKILL)
        self.stopped = True

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class StackError(RuntimeError):
    """A process of the stack failed or a wait timed out; carries the process whose log explains it."""

    def __init__(self, message: str, proc: Proc | None = None) -> None:
        super().__init__(message)
        self.proc = proc


def wait_for(
    what: str,
    check: Callable[[], T | None],
    *,
    timeout: float,
    poll: float = 0.2,
    progress: Callable[[float], None] | None = None,
) -> T:
    """Call ``check`` until it returns something truthy, and return that; StackError after ``timeout``."""
    start = time.monotonic()
    while True:
        value = check()
        if value:
            return value
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")
        if progress:
            progress(elapsed)
        time.sleep(poll)


def http_get(url: str, *, token: str | None = None, timeout: float = 5) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


# -- what Airflow has registered ---------------------------------------------------------------

_MANIFEST_SHA = re.compile(r"manifest sha256: `([0-9a-f]{64})`")


@dataclass(frozen=True)
class DagInfo:
    """One row of Airflow's ``dag`` table with its latest serialized form, as the UI would show it."""

    dag_id: str
    schedule: str | None
    stale: bool
    relative_fileloc: str | None
    last_parsed_time: str | None
    dag_hash: str | None
    serialized_updated: str | None
    versions: int
    tasks: tuple[tuple[str, str], ...]  # (task_id, image)
    manifest_sha256: str | None  # from the provenance the factory writes into doc_md

    @property
    def images(self) -> list[str]:
        return sorted({image for _, image in self.tasks})


class MetadataDB:
    """Read-only queries on Airflow's SQLite metadata database (what the UI and REST API serve)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        if not self.path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []  # `airflow db migrate` has not created it yet
            raise
        finally:
            conn.close()

    def dags(self, only: str | None = None) -> dict[str, DagInfo]:
        """Every DAG Airflow knows, or only the DAG ``only`` (one query of one row: a trial's wait polls
        it ten times a second, and decoding every serialized DAG at 5,000 DAGs takes seconds)."""
        where = "where d.dag_id = ?" if only else ""
        params = (only,) if only else ()
        versions = dict(
            self.rows(
                f"select dag_id, count(*) from dag_version {where.replace('d.', '')} group by dag_id", params
            )
        )
        out = {}
        for dag_id, schedule, stale, rel, parsed, dag_hash, updated, data, compressed in self.rows(
            f"""
            select d.dag_id, d.timetable_summary, d.is_stale, d.relative_fileloc, d.last_parsed_time,
                   s.dag_hash, s.last_updated, s.data, s.data_compressed
            from dag d left join serialized_dag s on s.id = (
                select id from serialized_dag where dag_id = d.dag_id order by created_at desc limit 1)
            {where}
            """,
            params,
        ):
            tasks: tuple[tuple[str, str], ...] = ()
            manifest_sha = None
            document = _serialized(data, compressed)
            if document:
                dag = document.get("dag", {})
                tasks = tuple(
                    (t["__var"].get("task_id", "?"), str(t["__var"].get("image", "")))
                    for t in dag.get("tasks", [])
                    if isinstance(t, dict) and "__var" in t
                )
                match = _MANIFEST_SHA.search(dag.get("doc_md") or "")
                manifest_sha = match.group(1) if match else None
            out[dag_id] = DagInfo(
                dag_id=dag_id,
                schedule=schedule,
                stale=bool(stale),
                relative_fileloc=rel,
                last_parsed_time=parsed,
                dag_hash=dag_hash,
                serialized_updated=updated,
                versions=versions.get(dag_id, 0),
                tasks=tasks,
                manifest_sha256=manifest_sha,
            )
        return out

    def active(self) -> dict[str, DagInfo]:
        """DAGs Airflow serves: not stale and serialized."""
        return {k: v for k, v in self.dags().items() if not v.stale and v.dag_hash}

    def import_errors(self) -> list[tuple[str, str]]:
        return [
            (f, s) for f, s in self.rows("select filename, stacktrace from import_error order by filename")
        ]

    def runs(self) -> list[tuple[str, str, str, str]]:
        """(dag_id, run_id, run_type, state) of every DAG run, oldest first."""
        return self.rows("select dag_id, run_id, run_type, state from dag_run order by id")

    def paused(self) -> dict[str, bool]:
        return {dag_id: bool(p) for dag_id, p in self.rows("select dag_id, is_paused from dag")}

    def processor_jobs(self) -> list[tuple[int, str, str]]:
        """Every dag-processor job Airflow recorded: a restart would add a row."""
        return self.rows("select id, state, hostname from job where job_type = 'DagProcessorJob' order by id")


def _serialized(data: str | None, compressed: bytes | None) -> dict[str, Any] | None:
    try:
        if data:
            return json.loads(data)
        if compressed:
            return json.loads(zlib.decompress(compressed))
    except (ValueError, zlib.error):
        return None
    return None


# -- publishing and measuring ------------------------------------------------------------------


@dataclass
class Published:
    """One run of ``airflow-dag-publisher publish``: its command line, wall time and JSON result."""

    argv: list[str]
    seconds: float
    result: dict[str, Any]

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))

    @property
    def release_id(self) -> str | None:
        return self.result.get("release_id")


@dataclass
class Trial:
    """publish -> visible for one DAG: seconds from the start of the publish command to each stage."""

    kind: str  # new | change | delete
    dag_id: str
    published: float  # the publish command returned (S3 holds the release)
    on_disk: float  # the sidecar wrote (or removed) the files in the dags folder
    visible: float  # Airflow's metadata DB serves the new state (what the UI shows)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


# -- the stack ---------------------------------------------------------------------------------


@dataclass
class Stack:
    """The whole demo under ``workdir``: S3 endpoint, sidecar, Airflow; started step by step."""

    workdir: Path
    settings: Settings = field(default_factory=Settings)
    bucket: str = BUCKET
    environment: str = ENVIRONMENT
    procs: dict[str, Proc] = field(default_factory=dict)
    s3_url: str = ""
    metrics_url: str = ""

    def __post_init__(self) -> None:
        self.workdir = self.workdir.absolute()
        self.dags = self.workdir / "dags"
        self.home = self.workdir / "airflow"
        self.logs = self.workdir / "logs"
        self.packages = self.workdir / "packages"
        self.db = MetadataDB(self.home / "airflow.db")
        for directory in (self.dags, self.home, self.logs, self.packages):
            directory.mkdir(parents=True, exist_ok=True)
        # Whatever happens to the caller (an exception in a test fixture, a bug), the children go too.
        atexit.register(self.stop)

    # environment for each kind of process

    def aws_env(self) -> dict[str, str]:
        return aws_env(self.s3_url)

    def airflow_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
        env.update(
            airflow_settings(
                self.home,
                self.dags,
                refresh_interval=self.settings.refresh_interval,
                min_file_process_interval=self.settings.min_file_process_interval,
                min_serialized_dag_update_interval=self.settings.min_serialized_dag_update_interval,
                api_port=self.settings.api_port,
            )
        )
        # Airflow starts helpers by name (`airflow ...`); make sure it finds this venv's.
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> Proc:
        proc = Proc(name, argv, env=env, log=self.logs / f"{name}.log", cwd=self.workdir)
        self.procs[name] = proc
        self.save_pids()
        return proc

    # S3

    def start_s3(self, timeout: float = 60) -> None:
        port = free_port()
        self.s3_url = f"http://127.0.0.1:{port}"
        proc = self._spawn(
            "s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], os.environ
        )

        def up() -> bool:
            proc.check_alive()
            return http_get(self.s3_url + "/moto-api/", timeout=1)[0] == 200

        wait_for("the S3 endpoint (moto server)", up, timeout=timeout)
        import boto3  # a base dependency of dagfactory-s3; imported late so `--help` stays fast

        s3 = boto3.session.Session(
            aws_access_key_id="demo", aws_secret_access_key="demo", region_name="us-east-1"
        ).client("s3", endpoint_url=self.s3_url)
        s3.create_bucket(Bucket=self.bucket)
        # The bucket settings docs/deploy.md asks for: versioning (rollback, audit) and no public access.
        s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_public_access_block(
            Bucket=self.bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )

    def s3_client(self) -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id="demo", aws_secret_access_key="demo", region_name="us-east-1"
        ).client("s3", endpoint_url=self.s3_url)

    # the publisher, as package CI runs it

    def copy_examples(self) -> None:
        import shutil

        for src in sorted(EXAMPLES.iterdir()):
            if (src / "airflow_dags").is_dir():
                shutil.copytree(src / "airflow_dags", self.package_dir(src.name), dirs_exist_ok=True)

    def package_dir(self, package: str) -> Path:
        return self.packages / package / "airflow_dags"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``airflow-dag-publisher ARGS`` as a user or CI job runs it."""
        argv = [str(BIN / "airflow-dag-publisher"), *args]
        result = subprocess.run(
            argv, env=self.aws_env(), capture_output=True, text=True, timeout=300, cwd=self.workdir
        )
        if check and result.returncode != 0:
            raise StackError(f"{shlex.join(argv)} failed ({result.returncode}):\n{result.stderr.strip()}")
        return result

    def published_sha256(self, package: str, dag_id: str) -> str:
        """The sha256 of ``dag_id``'s manifest in the package's current release record."""
        key = f"{self.environment}/{package}/metadata.json"
        record = json.loads(self.s3_client().get_object(Bucket=self.bucket, Key=key)["Body"].read())
        return record["files"][f"dags/{dag_id}.json"]["sha256"]

    def publish_argv(self, package: str) -> list[str]:
        return [
            "publish",
            "--bucket",
            self.bucket,
            "--environment",
            self.environment,
            "--package-name",
            package,
            "--dag-path",
            str(self.package_dir(package)),
        ]

    def publish_policy(self) -> tuple[list[str], str]:
        """The platform's step: publish the deploy kit's policy as the environment's (what CI checks
        against and the sidecar serves to Airflow); the command and the policy id."""
        argv = ["policy", "publish", "--bucket", self.bucket, "--environment", self.environment]
        argv += ["--file", str(POLICY)]
        result = self.cli(*argv, "--output", "json")
        return ["airflow-dag-publisher", *argv], json.loads(result.stdout)["policy_id"]

    def publish(self, package: str, *extra: str) -> Published:
        argv = [*self.publish_argv(package), *extra, "--output", "json"]
        start = time.monotonic()
        result = self.cli(*argv)
        seconds = time.monotonic() - start
        try:
            data = json.loads(result.stdout)
        except ValueError:
            raise StackError(f"publish printed no JSON:\n{result.stdout}\n{result.stderr}") from None
        return Published(["airflow-dag-publisher", *argv[:-2]], seconds, data)

    # the sidecar

    def start_sync(self, timeout: float = 60, *, queue_url: str | None = None) -> None:
        """The sidecar; with ``queue_url`` it takes S3 events from that queue (push delivery) and
        keeps its default full-reconcile interval for a queue."""
        port = free_port()
        self.metrics_url = f"http://127.0.0.1:{port}"
        env = self.aws_env()
        # The seed's configuration names, exactly as the Helm values set them.
        env.update(
            DAG_BUCKET=self.bucket,
            ENVIRONMENT=self.environment,
            DAGS_FOLDER=str(self.dags),
            DAG_SYNC_METRICS_ADDR=f"127.0.0.1:{port}",
            DAG_SYNC_MIRROR_UNRELEASED=str(self.settings.mirror_unreleased).lower(),
        )
        if queue_url:
            env["DAG_SYNC_QUEUE_URL"] = queue_url
        else:
            env["DAG_SYNC_INTERVAL"] = str(self.settings.sync_interval)
        proc = self._spawn("sync", [str(BIN / "airflow-dag-sync")], env)

        def ready() -> bool:
            proc.check_alive()
            return http_get(self.metrics_url + "/readyz", timeout=1)[0] == 200

        wait_for("the sync sidecar's first complete sync (/readyz)", ready, timeout=timeout)

    # Airflow

    def start_migrate(self) -> Proc:
        return self._spawn("airflow-db-migrate", [str(BIN / "airflow"), "db", "migrate"], self.airflow_env())

    def wait_migrate(self, proc: Proc, timeout: float = 300) -> None:
        try:
            code = proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise StackError("airflow db migrate did not finish", proc) from None
        if code != 0:
            raise StackError(f"airflow db migrate failed ({code})", proc)

    def write_password(self) -> str:
        """The simple auth manager's password file, generated here so the demo can print the login."""
        path = self.home / "passwords.json"
        if path.exists():
            with contextlib.suppress(ValueError, KeyError):
                return json.loads(path.read_text())[DEMO_USER]
        password = secrets.token_urlsafe(12)
        path.write_text(json.dumps({DEMO_USER: password}) + "\n")
        path.chmod(0o600)
        return password

    def start_dag_processor(self) -> Proc:
        return self._spawn(
            "airflow-dag-processor", [str(BIN / "airflow"), "dag-processor"], self.airflow_env()
        )

    def start_scheduler(self) -> Proc:
        return self._spawn("airflow-scheduler", [str(BIN / "airflow"), "scheduler"], self.airflow_env())

    def start_api_server(self) -> Proc:
        assert self.settings.api_port is not None
        argv = [
            str(BIN / "airflow"),
            "api-server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.settings.api_port),
        ]
        return self._spawn("airflow-api-server", argv, self.airflow_env())

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    def api_healthy(self) -> bool:
        return http_get(self.api_url + "/api/v2/monitor/health", timeout=2)[0] == 200

    def api_token(self, password: str) -> str | None:
        body = json.dumps({"username": DEMO_USER, "password": password}).encode()
        request = urllib.request.Request(
            self.api_url + "/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())["access_token"]
        except (OSError, ValueError, KeyError):
            return None

    def api_dag_ids(self, token: str) -> set[str] | None:
        """DAG ids the REST API lists (what the UI shows), or None when it does not answer."""
        code, body = http_get(self.api_url + "/api/v2/dags?limit=100", token=token)
        if code != 200:
            return None
        return {d["dag_id"] for d in json.loads(body)["dags"] if not d.get("is_stale")}

    # checks used while waiting

    def check_alive(self) -> None:
        for proc in self.procs.values():
            if proc.name != "airflow-db-migrate":
                proc.check_alive()

    def manifest_path(self, package: str, dag_id: str) -> Path:
        return self.dags / package / "dags" / f"{dag_id}.json"

    def measure(
        self,
        kind: str,
        package: str,
        dag_id: str,
        *,
        timeout: float = 120,
        progress: Callable[[str, float], None] | None = None,
    ) -> Trial:
        """Publish ``package`` as it is in its directory now, then time each stage for ``dag_id``.

        new/change: visible when Airflow serves the DAG built from exactly the published manifest (the
        source with the publisher's provenance stamp; its sha256 is in the provenance the factory
        writes); delete: when Airflow marks the DAG stale.
        """
        start = time.monotonic()
        published = self.publish(package)
        t_published = time.monotonic() - start
        if not published.changed:
            raise StackError(f"publishing {package} changed nothing; expected a {kind} of {dag_id}")
        want = self.published_sha256(package, dag_id) if kind != "delete" else None
        local = self.manifest_path(package, dag_id)
        stub = local.with_suffix(".py")

        def on_disk() -> bool:
            self.check_alive()
            if kind == "delete":
                return not local.exists() and not stub.exists()
            return sha256_file(local) == want and stub.exists()

        def tick(stage: str) -> Callable[[float], None] | None:
            return (lambda _e: progress(stage, time.monotonic() - start)) if progress else None

        wait_for(
            f"the sidecar to {'remove' if kind == 'delete' else 'write'} {local}",
            on_disk,
            timeout=timeout,
            poll=0.05,
            progress=tick("syncing"),
        )
        t_disk = time.monotonic() - start

        def visible() -> bool:
            self.check_alive()
            info = self.db.dags(dag_id).get(dag_id)
            if kind == "delete":
                return info is None or info.stale
            return info is not None and not info.stale and info.manifest_sha256 == want

        wait_for(
            f"Airflow to {'deactivate' if kind == 'delete' else 'serve'} {dag_id}",
            visible,
            timeout=timeout,
            poll=0.1,
            progress=tick("parsing"),
        )
        return Trial(kind, dag_id, t_published, t_disk, time.monotonic() - start)

    # lifecycle

    def save_pids(self) -> None:
        record = {
            name: {"pid": p.pid, "argv0": p.argv[0] if p.name != "s3" else "moto.server"}
            for name, p in self.procs.items()
            if p.alive()
        }
        (self.workdir / "pids.json").write_text(json.dumps(record, indent=2) + "\n")

    def stop(self) -> None:
        """Stop every process this stack started, Airflow first, S3 last; all in parallel."""
        order = [p for n, p in self.procs.items() if n.startswith("airflow")]
        order += [p for n, p in self.procs.items() if not n.startswith("airflow")]
        for proc in order:
            if proc.alive():
                proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in order:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
        for proc in order:
            proc.stop(grace=0.1)
        with contextlib.suppress(FileNotFoundError):
            (self.workdir / "pids.json").unlink()


def reap_previous(workdir: Path) -> list[str]:
    """Stop the processes a previous demo in ``workdir`` left running (killed without cleanup).

    Only the pids it recorded, and only when the process still runs the recorded program.
    """
    record_path = workdir / "pids.json"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return []
    matched: list[tuple[str, int]] = []
    for name, entry in record.items():
        pid, marker = int(entry["pid"]), str(entry["argv0"])
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline or Path(marker).name in cmdline:
            matched.append((name, pid))
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for _, pid in matched:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signum)
        if matched and signum == signal.SIGTERM:
            time.sleep(5)
    record_path.unlink(missing_ok=True)
    return [f"{name} (pid {pid})" for name, pid in matched]
