"""Real S3 for tests: a moto server process on 127.0.0.1, and a counting, fault-injecting HTTP proxy.

The proxy sits between our code and moto so tests can count real requests (GET/PUT/LIST ...) and
make S3 misbehave (500s, dropped connections, bodies cut short) without patching boto3. The same
server answers SQS (JSON protocol: ``POST /`` with an ``X-Amz-Target`` header), counted by operation.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """``python -m moto.server`` in a child process; stop()/start() simulate an S3 outage."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto server did not start")

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).read()


@dataclass
class Request:
    method: str
    path: str
    query: str
    target: str = ""  # X-Amz-Target: the operation of a JSON-protocol request (SQS), else ""

    @property
    def s3(self) -> bool:
        return not self.target

    @property
    def kind(self) -> str:
        """GET/PUT/DELETE/HEAD/POST, with a bucket-level GET reported as LIST; an SQS request as
        ``sqs:<Operation>`` (``sqs:ReceiveMessage``)."""
        if self.target:
            service, _, operation = self.target.partition(".")
            return f"{service.removeprefix('Amazon').lower()}:{operation}"
        parts = [p for p in self.path.split("/") if p]
        if self.method == "GET" and len(parts) <= 1:
            return "LIST"
        return self.method


# A fault rule sees each request (and how many came before it) and returns None to pass it on,
# or one of "500", "503", "drop" (close the connection), "truncate" (send half the response body),
# "flood" (send the real body, then zeros up to FLOOD_BYTES, chunked: no Content-Length tells the size).
Fault = Callable[[Request, int], str | None]
FLOOD_BYTES = 1 << 30


@dataclass
class Proxy:
    upstream: str
    requests: list[Request] = field(default_factory=list)
    fault: Fault | None = None
    flooded: list[int] = field(default_factory=list)  # bytes each "flood" response got out
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        proxy = self
        target = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) != length:  # the client died mid-body: S3 never stores a short PUT
                    raise ConnectionAbortedError("request body cut short")
                return body

            def _handle(self) -> None:
                path, _, query = self.path.partition("?")
                request = Request(self.command, path, query, self.headers.get("X-Amz-Target", ""))
                try:
                    body = self._body()
                except (ConnectionError, ValueError):
                    self.close_connection = True
                    return
                with proxy._lock:
                    index = len(proxy.requests)
                    proxy.requests.append(request)
                    action = proxy.fault(request, index) if proxy.fault else None
                if action == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if action in ("500", "503"):
                    payload = f"<Error><Code>InternalError</Code><Message>injected {action}</Message></Error>".encode()
                    self.send_response(int(action))
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("transfer-encoding", "content-length")
                }
                headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (http.client.HTTPException, OSError):  # moto reset or stopped under a long poll
                    self.close_connection = True
                    return
                finally:
                    conn.close()
                if action == "flood":
                    self._flood(resp, data)
                    return
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in (
                        "transfer-encoding",
                        "connection",
                        "content-length",
                        "date",
                        "server",
                    ):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if action == "truncate" and len(data) > 1:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _flood(self, resp: http.client.HTTPResponse, data: bytes) -> None:
                """An object that is far larger than its listing said, streamed without a Content-Length."""
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in (
                        "transfer-encoding",
                        "connection",
                        "content-length",
                        "date",
                        "server",
                    ):
                        self.send_header(k, v)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                filler, sent = b"\0" * (1 << 20), 0
                try:
                    for chunk in (data, *(filler for _ in range(FLOOD_BYTES >> 20))):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        sent += len(chunk)
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client stopped reading: what a capped GET does
                    pass
                proxy.flooded.append(sent)
                self.close_connection = True

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        # A short poll: close() (every test's teardown) waits for the loop to notice the shutdown.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def count(self, kind: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if kind is None or r.kind == kind)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
        self.fault = None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def aws_env(endpoint: str) -> dict[str, str]:
    """Environment for a subprocess (CLI, sidecar) talking to ``endpoint`` through the standard chain."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env
