"""What the sidecar tells operators: one JSON line per event, Prometheus metrics, health endpoints.

Metrics are few and named by outcome (git-sync style), in a registry of our own so importing this
module registers nothing globally. ``/readyz`` is 503 until the first complete sync: an init
container or a readiness gate can wait on it before the dag-processor starts parsing. Its body also
carries the log's standing warning (an environment with nothing in it), whatever the status code.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["HealthServer", "Log", "Metrics"]


class Log:
    """JSON lines on stdout: ``{"ts", "level", "event", ...}``; thread-safe, one write per line.
    ``listeners`` are told each event and its fields after it is written."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []

    def __call__(self, event: str, *, level: str = "info", **fields: Any) -> None:
        record = {
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "level": level,
            "event": event,
        }
        record.update({k: v for k, v in fields.items() if v is not None})
        try:
            line = orjson.dumps(record, default=str).decode() + "\n"
        except TypeError:  # a lone surrogate quoted from hostile content: the stdlib escapes it
            line = json.dumps(record, default=str) + "\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()
        for listener in self.listeners:
            listener(event, fields)


class Metrics:
    """The sidecar's Prometheus metrics, in their own registry."""

    def __init__(self, *, queue: bool = False) -> None:
        self.registry = r = CollectorRegistry()
        self.cycles = Counter(
            "dagsync_cycles", "Reconcile cycles by outcome (success, noop, error)", ["status"], registry=r
        )
        self.duration = Histogram(
            "dagsync_cycle_duration_seconds",
            "Duration of one reconcile cycle",
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.listed = Gauge(
            "dagsync_objects_listed", "Objects under <env>/ in the last complete listing", registry=r
        )
        self.list_requests = Counter("dagsync_list_requests", "ListObjectsV2 pages requested", registry=r)
        self.downloaded = Counter("dagsync_objects_downloaded", "Objects downloaded (GET)", registry=r)
        self.written = Counter(
            "dagsync_files_written", "Files written to the dags folder", ["action"], registry=r
        )
        self.deleted = Counter("dagsync_files_deleted", "Files deleted from the dags folder", registry=r)
        self.refused = Counter(
            "dagsync_objects_refused",
            "Objects refused (counted once per object version)",
            ["reason"],
            registry=r,
        )
        self.refusals_remembered = Counter(
            "dagsync_refused_gets_skipped",
            "GETs not made because the object was refused before at the same ETag",
            registry=r,
        )
        self.refused_now = Gauge(
            "dagsync_objects_refused_current", "Objects refused in the last cycle", registry=r
        )
        self.errors = Counter("dagsync_errors", "Errors by kind", ["kind"], registry=r)
        self.last_success = Gauge(
            "dagsync_last_success_timestamp_seconds", "Unix time of the last complete sync", registry=r
        )
        self.dags = Gauge("dagsync_dags_served", "DAG manifests served in the dags folder", registry=r)
        self.release = Gauge(
            "dagsync_release_info",
            "Applied release per package (value 1)",
            ["package", "release_id"],
            registry=r,
        )
        self.in_flight = Gauge(
            "dagsync_packages_waiting",
            "Packages whose recorded release is not complete in S3 yet",
            registry=r,
        )
        self.ready = Gauge("dagsync_ready", "1 after the first complete sync", registry=r)
        self.policy = Gauge(
            "dagsync_policy_info",
            "The platform policy served in _platform/ (value 1)",
            ["policy_id"],
            registry=r,
        )
        self.policy_refused = Counter(
            "dagsync_policy_refused",
            "Platform policies not served: unreadable, not as their pointer records, or not a policy "
            "(counted once per pointer version and reason)",
            registry=r,
        )
        # Push delivery's metrics exist only with a queue (a sidecar without one shows no queue down).
        q = r if queue else None
        self.queue_messages = Counter(
            "dagsync_queue_messages",
            "Queue messages received, by result: acted (named a package or the policy), ignored (no "
            "commit point), dropped_foreign, dropped_malformed, dropped_test",
            ["result"],
            registry=q,
        )
        self.queue_up = Gauge(
            "dagsync_queue_up",
            "1 while the queue answers, 0 while the sidecar falls back to polling",
            registry=q,
        )
        self._releases: dict[str, str] = {}
        self._policy: str | None = None

    def set_release(self, package: str, release_id: str | None) -> None:
        old = self._releases.get(package)
        if old == release_id:
            return
        if old is not None:
            self.release.remove(package, old)
        if release_id is None:
            self._releases.pop(package, None)
        else:
            self._releases[package] = release_id
            self.release.labels(package, release_id).set(1)

    def set_policy(self, policy_id: str | None) -> None:
        if self._policy is not None and self._policy != policy_id:
            self.policy.remove(self._policy)
        self._policy = policy_id
        if policy_id is not None:
            self.policy.labels(policy_id).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HealthServer:
    """``/metrics``, ``/healthz`` (the loop is alive) and ``/readyz`` (a complete sync happened, and
    the standing ``warning``, if any, on a line of its own)."""

    def __init__(self, port: int, metrics: Metrics, *, stale_after: float, host: str = "0.0.0.0") -> None:
        self.metrics = metrics
        self.stale_after = stale_after
        self.ready = False
        self.warning: str | None = None
        self.heartbeat = time.monotonic()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/metrics":
                    self._send(200, metrics.render(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    alive = time.monotonic() - server.heartbeat < server.stale_after
                    self._send(200 if alive else 503, b"ok\n" if alive else b"sync loop stalled\n")
                elif path == "/readyz":
                    body = "ready\n" if server.ready else "no complete sync yet\n"
                    warning = server.warning
                    if warning:
                        body += f"warning: {warning}\n"
                    self._send(200 if server.ready else 503, body.encode())
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        # A 0.1 s poll (not 0.5): stop() on SIGTERM returns as soon as the loop notices the shutdown.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.1,), name="dagsync-http", daemon=True
        )

    def hear(self, event: str, fields: dict[str, Any]) -> None:
        """A :class:`Log` listener: an empty environment's warning stands until a cycle lists objects."""
        if event == "empty_environment":
            there = ", ".join(fields.get("environments_in_bucket") or ()) or "none"
            self.warning = f"{fields.get('note')}; environments in the bucket: {there}"
        elif event == "cycle" and fields.get("listed"):
            self.warning = None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
