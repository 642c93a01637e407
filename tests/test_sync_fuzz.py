"""Fuzz: a running ``airflow-dag-sync`` next to a good package, fed hostile packages all the while.

The real binary in daemon mode (its own loop, interval 0.2 s) against the moto server. Each round
replaces every fuzz package with a new hostile input -- random bytes, random JSON, a mutated valid
manifest served through a valid record, a mutated release record (0.1 layout or immutable content
objects), a well-typed record with wrong sizes or version ids, claims on the good package's DAG id --
and waits for two cycles that started after it. Throughout, a watcher checks that the good package's files are on disk,
byte for byte, at every instant; after each round the cycles were complete (what ``/readyz`` and
``--once`` go by); at the end every log line is JSON and none has ``kind: internal``.

Bounded for CI: ``DAGFACTORY_FUZZ_SECONDS`` (default 30) with the fixed ``DAGFACTORY_FUZZ_SEED``
(default 20261127). A longer run: ``DAGFACTORY_FUZZ_SECONDS=300 pytest tests/test_sync_fuzz.py -s``.
The test prints how many inputs it tried.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_sync import ENV, World, manifest
from test_sync_process import SYNC, events, http_get, sync_env, wait_for

from dagfactory_s3 import naming, stub
from dagfactory_s3.release import CONTENT_OBJECTS, FileEntry, Release

from s3server import free_port

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("DAGFACTORY_FUZZ_SECONDS", "30"))
SEED = int(os.environ.get("DAGFACTORY_FUZZ_SEED", "20261127"))
PACKAGES = [f"fz{i}" for i in range(6)]

EDGE_VALUES: list[Any] = [
    None,
    True,
    "",
    -1,
    0,
    2**63,
    10**400,
    1e308,
    -1e-320,
    float("nan"),
    float("inf"),
    "\ud800",
    "\u202e",
    "\x00",
    "x" * 20000,
    [],
    {},
    "../../etc/passwd",
    "good",
    "good_a",
    "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00+01:00",
    "99999999999999d",
    "0 0 31 2 *",
    "latest",
    "a" * 64,
]


def random_text(rng: random.Random, limit: int = 40) -> str:
    alphabet = 'abc_-./:@ 0\u00e9\u4e2d\U0001f600\ud800\u202e\x00\n\\"'
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, limit)))


def random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.35:
        return rng.choice([*EDGE_VALUES, random_text(rng), rng.randint(-(10**20), 10**20), rng.random()])
    if roll < 0.65:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {random_text(rng, 12): random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def mutate_doc(rng: random.Random, doc: Any, times: int) -> Any:
    """Apply ``times`` random edits (delete, replace, retype, add) at random places in a JSON document."""
    for _ in range(times):
        if not isinstance(doc, dict | list) or not doc:
            return random_json(rng)
        parent: Any = doc
        key: Any = rng.choice(list(parent)) if isinstance(parent, dict) else rng.randrange(len(parent))
        while isinstance(parent[key], dict | list) and parent[key] and rng.random() < 0.6:
            parent = parent[key]
            key = rng.choice(list(parent)) if isinstance(parent, dict) else rng.randrange(len(parent))
        op = rng.random()
        if op < 0.2 and isinstance(parent, dict):
            del parent[key]
        elif op < 0.35 and isinstance(parent, dict):
            parent[random_text(rng, 12)] = random_json(rng)
        elif op < 0.7:
            parent[key] = rng.choice(EDGE_VALUES)
        else:
            parent[key] = random_json(rng)
    return doc


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        roll = rng.random()
        pos = rng.randrange(len(out) + 1)
        if roll < 0.4 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif roll < 0.7:
            out[pos:pos] = rng.randbytes(rng.randint(1, 16))
        else:
            del out[pos : pos + rng.randint(1, 64)]
    return bytes(out)


def dumps(rng: random.Random, value: Any) -> bytes:
    text = json.dumps(value, indent=rng.choice([None, 2]))  # NaN/Infinity and \ud800 escapes included
    return text.encode("utf-8", "surrogatepass")


class Fuzzer:
    """Plants one hostile input per fuzz package, straight into moto (not through the proxy)."""

    def __init__(self, world: World, rng: random.Random) -> None:
        self.world, self.rng = world, rng
        self.tried: dict[str, int] = {}

    def clear(self) -> None:
        """Remove every fuzz package's objects (one listing, one batch delete)."""
        keys = [k for k in self.world.all_keys() if k.split("/")[1] in PACKAGES]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self.world.client.delete_objects(Bucket=self.world.bucket, Delete={"Objects": batch})

    def manifest_bytes(self, package: str, name: str) -> tuple[str, bytes]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.1:
            return "random_bytes_manifest", rng.randbytes(rng.randint(0, 2048))
        if roll < 0.2:
            return "random_json_manifest", dumps(rng, random_json(rng))
        if roll < 0.3:
            return "mutated_bytes_manifest", mutate_bytes(rng, manifest(package, name))
        doc = json.loads(manifest(package, name))
        if roll < 0.35:
            doc["dag_id"], doc["package"] = "good_a", "good"  # a claim on the good package
            return "claim_manifest", dumps(rng, doc)
        return "mutated_manifest", dumps(rng, mutate_doc(rng, doc, rng.randint(1, 4)))

    def record_doc(self, package: str, files: dict[str, bytes], content: bool) -> dict[str, Any]:
        entries = {f"dags/{n}": FileEntry(hashlib.sha256(d).hexdigest(), len(d)) for n, d in files.items()}
        rec = Release(
            package,
            ENV,
            f"r{self.rng.randrange(10**6)}",
            "2026-11-27T00:00:00Z",
            "fuzz",
            files=entries,
            content=CONTENT_OBJECTS if content else None,
        )
        return json.loads(rec.to_json())

    def plant(self, package: str) -> None:
        rng, world = self.rng, self.world
        name = f"{package}_{rng.choice(['a', 'b', 'etl', 'x' * 40])}"
        kind, data = self.manifest_bytes(package, name)
        files = {f"{name}.json": data}
        if rng.random() < 0.7:
            files[f"{name}.py"] = stub.render(f"{name}.json")
        elif rng.random() < 0.5:
            files[f"{name}.py"] = b"import os\nos.system('id')\n"
        content = rng.random() < 0.5
        for file_name, body in files.items():
            world.put(f"{ENV}/{package}/dags/{file_name}", body)
            if content:
                sha = hashlib.sha256(body).hexdigest()
                world.put(f"{ENV}/{package}/{naming.object_name(sha)}", body)
        record = json.dumps(self.record_doc(package, files, content)).encode()
        roll = rng.random()
        if roll < 0.55:
            pass  # a valid record: the manifest's content is what is being tried
        elif roll < 0.65:
            kind, record = "random_bytes_record", rng.randbytes(rng.randint(0, 1024))
        elif roll < 0.75:
            kind, record = "random_json_record", dumps(rng, random_json(rng))
        elif roll < 0.8:
            doc = mutate_doc(rng, self.record_doc(package, files, content), rng.randint(1, 3))
            kind, record = "mutated_record", dumps(rng, doc)
        elif roll < 0.9:  # a well-typed record whose S3 coordinates are wrong
            doc = self.record_doc(package, files, content)
            for entry in doc["files"].values():
                entry.update(
                    rng.choice(
                        [
                            {"version_id": rng.choice(["null", "bogus!", rng.randbytes(24).hex()])},
                            {"size": rng.randint(0, 10**9)},
                        ]
                    )
                )
            kind, record = "wrong_coordinates_record", dumps(rng, doc)
        else:
            kind, record = "mutated_bytes_record", mutate_bytes(rng, record)
        world.put(f"{ENV}/{package}/metadata.json", record)
        self.tried[kind] = self.tried.get(kind, 0) + 1


class GoodWatcher(threading.Thread):
    """Checks, as fast as it can, that the good package's files are there with their bytes."""

    def __init__(self, root: Path, expected: dict[str, bytes]) -> None:
        super().__init__(daemon=True)
        self.root, self.expected = root, expected
        self.stop = threading.Event()
        self.missing: list[str] = []
        self.scans = 0

    def run(self) -> None:
        while not self.stop.is_set():
            for rest, data in self.expected.items():
                try:
                    ok = (self.root / rest).read_bytes() == data
                except OSError:
                    ok = False
                if not ok:
                    self.missing.append(f"{rest} at scan {self.scans}")
            self.scans += 1
            time.sleep(0.005)


def cycles(port: int) -> float:
    text = http_get(port, "/metrics")[1]
    return sum(float(v) for v in re.findall(r'^dagsync_cycles_total\{status="\w+"\} (\S+)$', text, re.M))


def last_complete(port: int) -> float:
    """When the last complete cycle ended (S3 listed, every package judged): readiness, --once's exit."""
    text = http_get(port, "/metrics")[1]
    (value,) = re.findall(r"^dagsync_last_success_timestamp_seconds (\S+)$", text, re.M)
    return float(value)


def test_hostile_neighbours_never_cost_the_good_package(s3, bucket, tmp_path):
    """The good package is served at every instant, /readyz stays 200, no log line is ``kind: internal``."""
    world = World(s3, bucket)
    rng = random.Random(SEED)
    good = manifest("good", "a")
    world.release("good", {"good_a.json": good})
    dags = tmp_path / "dags"
    dags.mkdir()
    port = free_port()
    env = {k: v for k, v in sync_env(s3).items() if not k.startswith("DAGFACTORY_")}
    env.update(
        DAG_BUCKET=bucket,
        ENVIRONMENT=ENV,
        DAGS_FOLDER=str(dags),
        DAG_SYNC_INTERVAL="0.2",
        DAG_SYNC_MAX_BACKOFF="1",
        DAG_SYNC_METRICS_ADDR=f"127.0.0.1:{port}",
        DAG_SYNC_MIRROR_UNRELEASED="false",
    )
    log, err = tmp_path / "sync.log", tmp_path / "sync.err"
    fuzzer = Fuzzer(world, rng)
    rounds = 0
    with log.open("w") as out_file, err.open("w") as err_file:
        proc = subprocess.Popen([SYNC], env=env, stdout=out_file, stderr=err_file)
        watcher = GoodWatcher(
            dags, {"good/dags/good_a.json": good, "good/dags/good_a.py": stub.render("good_a.json")}
        )
        try:
            wait_for(lambda: http_get(port, "/readyz")[0] == 200, what="the first complete sync")
            watcher.start()
            deadline = time.monotonic() + SECONDS
            while time.monotonic() < deadline:
                fuzzer.clear()
                for package in PACKAGES:
                    fuzzer.plant(package)
                start = cycles(port)  # a cycle may be running: it may have listed before the planting
                wait_for(lambda start=start: cycles(port) >= start + 1, timeout=60, what="a cycle")
                settled = time.time()  # every cycle ending after this one started after the planting
                wait_for(lambda start=start: cycles(port) >= start + 3, timeout=60, what="two more cycles")
                assert proc.poll() is None, "the sidecar died"
                assert http_get(port, "/readyz")[0] == 200
                # hostile content never makes a cycle incomplete (what /readyz and --once go by)
                assert last_complete(port) > settled, f"round {rounds}: cycles after planting were incomplete"
                assert watcher.missing == [], watcher.missing[:5]
                rounds += 1
        finally:
            watcher.stop.set()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
    watcher.join()
    inputs = sum(fuzzer.tried.values())
    print(
        f"\nfuzz: seed {SEED}, {SECONDS:.0f} s, {rounds} rounds, {inputs} inputs tried {dict(sorted(fuzzer.tried.items()))}"
    )
    assert code == 0 and rounds >= 3 and watcher.scans > rounds
    assert watcher.missing == []
    text = log.read_text()
    lines = events(text)  # every line is JSON
    internal = [e for e in lines if e.get("kind") == "internal"]
    assert internal == [], internal[:3]
    assert "Traceback" not in err.read_text() + text
    # the fuzz reached the checks it was meant to reach, not only the record parser
    kinds = {e.get("kind") for e in lines if e["event"] in ("error", "refuse")}
    outcomes = Counter(
        f"{e['event']}:{e.get('kind', '')}" for e in lines if e["event"] in ("error", "refuse")
    )
    print(f"fuzz: sidecar outcomes {dict(sorted(outcomes.items()))}")
    unexpected = sorted({e["error"][:160] for e in lines if e.get("kind") == "package"})
    print("fuzz: unexpected exceptions (each confined to its package):", *unexpected[:10], sep="\n  ")
    assert {"record", "ownership"} <= kinds, kinds
    assert any(e["event"] == "invalid_manifest" for e in lines)
