#!/bin/sh
# Entry point of the airflow-dag-sync image. Arguments go to airflow-dag-sync, so one image is both
# the long-running sidecar (no arguments) and the init container (--once). Configuration errors are
# reported by the binary itself, as one JSON line, exit code 2.
# exec: Python becomes PID 1 and handles SIGTERM itself (ends after the current cycle, exit 0).
set -eu
exec airflow-dag-sync "$@"
