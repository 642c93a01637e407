"""Run the publisher CLI as real processes, fast: a parent that imported it once forks one child per run.

Started as ``python tests/forkserver.py``; reads one JSON job per stdin line (``argv``, ``env``,
``log``), forks, prints ``{"pid": N}`` at once (so a test can signal the child), then
``{"exit": code}`` or ``{"signal": n}`` when the child ends. The children are ordinary processes of
the real CLI: signals, exit codes and S3 traffic are exactly what a CI runner would see, without
paying Python's and boto3's start-up for each of the hundreds of kill points the chaos tests try.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import dagfactory_s3.publisher.cli as cli  # imported once, before any fork


def main() -> None:
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: one run of the CLI
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.environ.clear()
            os.environ.update(job["env"])
            log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            code = 1
            try:
                code = cli.main(job["argv"])
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            print(json.dumps({"signal": os.WTERMSIG(status)}), flush=True)
        else:
            print(json.dumps({"exit": os.WEXITSTATUS(status)}), flush=True)


if __name__ == "__main__":
    main()
