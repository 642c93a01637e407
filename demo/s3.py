"""``make s3``: a local S3 for the README's tour, with no AWS account.

``python -m demo.s3`` starts a moto server on 127.0.0.1 in the background, creates the tour's bucket
and writes the shell lines that point the standard AWS chain at it (endpoint, dummy credentials,
region) to ``.s3/env``, next to the server's pid and log. ``. .s3/env`` then serves every command of
the tour, in one shell. ``python -m demo.s3 --stop`` (``make s3-stop``) stops it; the server keeps
everything in memory, so stopping it forgets every release.

``.s3/`` is relative to the working directory: the tour sources ``.s3/env`` from where it ran
``make s3``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from demo.stack import Proc, StackError, free_port, http_get, wait_for

BUCKET = "etl-airflow-dags-dev"  # the tour's DAG_BUCKET
STATE = Path(".s3")
# moto accepts any key; botocore still signs every request, so the chain must find one.
DUMMY_KEY = "testing"
REGION = "us-east-1"


def running(state: Path) -> int | None:
    """The pid recorded in ``state``, when that process is still a moto server (a pid can be reused)."""
    try:
        pid = int((state / "pid").read_text())
    except (OSError, ValueError):
        return None
    # -ww: the whole command line; ps cuts it at 80 columns without a terminal, and a long venv path
    # pushed "moto.server" past the cut, so a running server looked gone and was never stopped.
    ps = subprocess.run(["ps", "-ww", "-o", "command=", "-p", str(pid)], capture_output=True, text=True)
    return pid if "moto.server" in ps.stdout else None  # a zombie shows as "[python] <defunct>"


def start(state: Path, timeout: float = 60) -> str:
    """Start the server with the bucket, unless ``state`` records one still running; return its env lines."""
    if running(state):
        return (state / "env").read_text()
    shutil.rmtree(state, ignore_errors=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    # Its own session and no inherited pipes: it outlives this process and the shell's pipelines.
    proc = Proc("s3", argv, env=os.environ, log=state / "moto.log")
    (state / "pid").write_text(f"{proc.pid}\n")

    def up() -> bool:
        proc.check_alive()
        return http_get(url + "/moto-api/", timeout=1)[0] == 200

    try:
        wait_for("the S3 endpoint (moto server)", up, timeout=timeout)
        import boto3  # a base dependency; imported late so `--stop` stays fast

        boto3.session.Session(
            aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY, region_name=REGION
        ).client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
    except BaseException:
        proc.stop(grace=5)
        raise
    env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }
    text = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
    (state / "env").write_text(text)
    return text


def stop(state: Path, grace: float = 10) -> bool:
    """Stop the server ``state`` records (SIGTERM, then SIGKILL) and remove ``state``; False if none ran."""
    pid = running(state)
    if pid:
        # The server leads its own process group (Proc starts it in a new session).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while running(state) and time.monotonic() < deadline:
            time.sleep(0.1)
        if running(state):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    shutil.rmtree(state, ignore_errors=True)
    return pid is not None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.s3",
        description="Start a local S3 (moto, on 127.0.0.1) with the bucket of the README's tour, in "
        "the background; its AWS_* exports go to .s3/env.",
    )
    parser.add_argument("--stop", action="store_true", help="stop the server and remove .s3/")
    args = parser.parse_args(argv)
    if args.stop:
        print("local S3 stopped" if stop(STATE) else "no local S3 was running")
        return 0
    already = running(STATE)
    try:
        env = start(STATE)
    except StackError as exc:
        print(f"local S3: {exc}; see {STATE / 'moto.log'}", file=sys.stderr)
        return 1
    pid = running(STATE)
    print(
        f"local S3 {'already running' if already else 'started'} (moto, pid {pid}, log {STATE / 'moto.log'}) "
        f"with the bucket s3://{BUCKET}; in memory only. Its settings, in {STATE / 'env'}:"
    )
    print(env, end="")
    print(f"Run `. {STATE / 'env'}` in your shell to use it; `make s3-stop` stops it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
