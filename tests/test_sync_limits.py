"""The sidecar's bounds against a real moto S3: capped GETs, refusals remembered by ETag, no symlinks.

In-process reconciler (tests/test_sync.py's ``Sidecar``); the peak-memory test of the real binary is
in tests/test_sync_process.py.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from test_sync import ENV, Sidecar, World, manifest

from dagfactory_s3 import s3 as s3support
from dagfactory_s3.manifest import MAX_BYTES as MANIFEST_MAX_BYTES


@pytest.fixture
def world(s3, bucket) -> World:
    return World(s3, bucket)


def gets_of(s3, key: str) -> int:
    return sum(1 for r in s3.requests if r.kind == "GET" and r.path.endswith("/" + key))


def flooded(s3, timeout: float = 20) -> list[int]:
    """Bytes each flood response got out, once the proxy noticed the client hang up."""
    deadline = time.monotonic() + timeout
    while not s3.flooded and time.monotonic() < deadline:
        time.sleep(0.05)
    assert s3.flooded, "the flood response did not end: the client kept reading"
    return s3.flooded


def claiming(package: str, name: str, owner: str) -> bytes:
    """A manifest published under ``package`` that claims to belong to ``owner``."""
    doc = json.loads(manifest(package, name))
    doc["package"] = owner
    return json.dumps(doc).encode()


class TestCappedGets:
    def test_get_stops_reading_at_the_cap(self, s3, world):
        """A body streamed without a Content-Length is read only up to the cap (plus one chunk), then
        refused as too large; the server saw the client stop long before the 1 GiB it offered."""
        world.put("big.bin", b"x" * 1000)
        s3.fault = lambda request, index: "flood" if request.kind == "GET" else None
        client = s3support.client(retries=1)
        with pytest.raises(s3support.StorageError) as caught:
            s3support.get(client, world.bucket, "big.bin", max_bytes=4 * s3support.CHUNK_BYTES)
        assert caught.value.code == s3support.TOO_LARGE and "larger than the 4194304 bytes" in str(
            caught.value
        )
        assert flooded(s3)[0] < 64 << 20  # the rest of the GiB was never read

    def test_content_length_over_the_cap_is_refused_before_the_body(self, s3, world):
        """Content-Length above the cap: refused without reading the body."""
        world.put("big.bin", b"x" * (3 << 20))
        with pytest.raises(s3support.StorageError) as caught:
            s3support.get(s3support.client(retries=1), world.bucket, "big.bin", max_bytes=1 << 20)
        assert caught.value.code == s3support.TOO_LARGE and "(3145728 bytes)" in str(caught.value)

    def test_listing_that_says_too_large_means_no_get(self, s3, world, tmp_path):
        """A manifest the listing already shows above the limit is refused without a GET; its neighbour
        is served and the cycle is complete."""
        world.mirror("big", {"big_a.json": b" " * (MANIFEST_MAX_BYTES + 1)})
        world.mirror("good", {"good_a.json": manifest("good", "a")})
        side = Sidecar(world, tmp_path / "dags", mirror_unreleased=True)
        s3.clear()
        report = side.cycle()
        assert report.complete and "good/dags/good_a.json" in side.served()
        assert gets_of(s3, f"{ENV}/big/dags/big_a.json") == 0
        (refusal,) = [e for e in side.events("refuse") if e["package"] == "big"]
        assert refusal["kind"] == "content" and "larger than" in refusal["reason"]
        side.reconciler.close()

    def test_object_larger_than_its_listing_is_refused_and_not_fetched_again(self, s3, world, tmp_path):
        """An object that streams far more than the listing said (grown since, or a lying server) is
        refused as ``size`` after at most the cap; the next cycles do not GET it again until it changes,
        and the good package beside it is served, the cycle complete."""
        world.mirror("flood", {"flood_a.json": manifest("flood", "a")})
        world.mirror("good", {"good_a.json": manifest("good", "a")})
        key = f"{ENV}/flood/dags/flood_a.json"
        s3.fault = lambda request, index: "flood" if request.path.endswith(key) else None
        side = Sidecar(world, tmp_path / "dags", mirror_unreleased=True)
        report = side.cycle()
        assert report.complete and "good/dags/good_a.json" in side.served()
        assert not any(k.startswith("flood/") for k in side.served())
        (refusal,) = side.events("refuse")
        assert refusal["kind"] == "size" and refusal["key"] == key
        assert "larger than the 262144 bytes allowed" in refusal["reason"]
        assert gets_of(s3, key) == 1 and flooded(s3)[0] < 64 << 20
        for _ in range(2):
            assert side.cycle().complete
        assert gets_of(s3, key) == 1
        assert side.metric("dagsync_refused_gets_skipped_total") == 2
        assert side.events("error") == []  # a remembered refusal is a refusal, nothing else
        assert len(side.events("refuse")) == 1  # logged once per object version
        s3.fault = None
        world.mirror("flood", {"flood_a.json": manifest("flood", "a", description="fixed")})  # new ETag
        side.cycle()
        assert gets_of(s3, key) == 2 and "flood/dags/flood_a.json" in side.served()
        side.reconciler.close()

    def test_a_release_file_larger_than_recorded_keeps_the_release_whole(self, s3, world, tmp_path):
        """In a release, a file that streams more than its recorded size is not as recorded: nothing of
        that release is applied (the package waits, as for a publish in flight), the cycle is complete."""
        world.release("demo", {"demo_a.json": manifest("demo", "a"), "demo_b.json": manifest("demo", "b")})
        key = f"{ENV}/demo/dags/demo_a.json"
        s3.fault = lambda request, index: "flood" if request.path.endswith(key) else None
        side = Sidecar(world, tmp_path / "dags")
        report = side.cycle()
        assert report.complete and report.waiting == ["demo"] and side.served() == {}
        assert "larger than recorded" in side.events("waiting")[0]["reason"]
        assert flooded(s3)[0] < 64 << 20
        side.reconciler.close()

    def test_refused_content_is_not_fetched_again_until_its_etag_changes(self, s3, world, tmp_path):
        """A manifest refused for its content (it claims another package) costs one GET, not one per
        cycle; a new version of the object is fetched and judged again."""
        key = f"{ENV}/thief/dags/thief_a.json"
        world.mirror("thief", {"thief_a.json": claiming("thief", "a", "good")})
        side = Sidecar(world, tmp_path / "dags", mirror_unreleased=True)
        for _ in range(3):
            assert side.cycle().complete
        assert gets_of(s3, key) == 1
        assert side.metric("dagsync_refused_gets_skipped_total") == 2
        assert side.events("error") == []  # a remembered refusal is a refusal, nothing else
        assert side.metric("dagsync_objects_refused_total", reason="ownership") == 1
        world.mirror("thief", {"thief_a.json": claiming("thief", "a", "other")})
        side.cycle()
        assert gets_of(s3, key) == 2
        assert [e["reason"] for e in side.events("refuse")] == [
            "manifest claims package 'good' but is published under 'thief'",
            "manifest claims package 'other' but is published under 'thief'",
        ]
        side.reconciler.close()

    def test_a_large_python_file_next_to_a_manifest_is_refused_without_a_get(self, s3, world, tmp_path):
        """A .py whose multipart ETag cannot say whether it is the stub, but whose size can: no GET."""
        world.mirror("demo", {"demo_a.json": manifest("demo", "a")})
        key = f"{ENV}/demo/dags/demo_a.py"
        mpu = world.client.create_multipart_upload(Bucket=world.bucket, Key=key)
        part = world.client.upload_part(
            Bucket=world.bucket, Key=key, UploadId=mpu["UploadId"], PartNumber=1, Body=b"#" * (6 << 20)
        )
        world.client.complete_multipart_upload(
            Bucket=world.bucket,
            Key=key,
            UploadId=mpu["UploadId"],
            MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
        )
        side = Sidecar(world, tmp_path / "dags", mirror_unreleased=True)
        assert side.cycle().complete
        assert gets_of(s3, key) == 0
        (refusal,) = side.events("refuse")
        assert refusal["kind"] == "python" and refusal["key"] == key
        assert "demo/dags/demo_a.py" in side.served()  # the canonical stub, written by the sidecar
        side.reconciler.close()


# -- no writes through symbolic links ----------------------------------------------------------


def _plant(root: Path, where: str, outside: Path) -> Path:
    """Replace ``victim``'s ``where`` (relative to the dags folder) with a symlink to ``outside``."""
    path = root / where
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    target = outside / "secret.json" if where.endswith(".json") else outside
    if where.endswith((".json", ".airflowignore")):
        target = outside / Path(where).name
        target.write_bytes(b"outside")
    os.symlink(target, path)
    return path


SYMLINK_PLACES = [
    "victim",  # the package directory
    "victim/dags",  # its live dags/
    "victim/.dags-next",  # the staging directory
    "victim/.dags-old",  # the fallback swap's old copy
    "victim/.airflowignore",
    "victim/dags/victim_a.json",  # a file inside dags/
]


class TestNoWritesThroughSymlinks:
    @pytest.mark.parametrize("where", SYMLINK_PLACES)
    def test_a_planted_symlink_fails_only_its_package(self, world, tmp_path, where):
        """A symlink anywhere under the package is refused with its path (kind ``symlink``): nothing is
        written outside the dags folder, the package keeps what it has, the others update, the cycle is
        complete."""
        root, outside = tmp_path / "dags", tmp_path / "outside"
        root.mkdir()
        outside.mkdir()
        world.release("victim", {"victim_a.json": manifest("victim", "a")})
        world.release("good", {"good_a.json": manifest("good", "a")})
        side = Sidecar(world, root)
        assert side.cycle().complete
        planted = _plant(root, where, outside)
        before = {p.name: p.read_bytes() for p in outside.iterdir()}
        world.release("victim", {"victim_a.json": manifest("victim", "a", description="v2")})
        world.release("good", {"good_a.json": manifest("good", "a", description="v2")})
        report = side.cycle()
        assert report.complete
        assert json.loads(side.served()["good/dags/good_a.json"])["description"] == "v2"
        assert {p.name: p.read_bytes() for p in outside.iterdir()} == before  # nothing written outside
        (error,) = side.events("error")
        assert error["kind"] == "symlink" and error["package"] == "victim"
        assert str(planted) in error["error"] and "symbolic link" in error["error"]
        assert all(e.get("kind") != "internal" for e in side.events())
        assert side.metric("dagsync_errors_total", kind="symlink") == 1
        side.reconciler.close()

    def test_a_symlinked_state_directory_stops_writes_and_the_cycle_is_incomplete(self, world, tmp_path):
        """The sidecar's own state directory replaced by a link: nothing is written anywhere, the cycle
        is incomplete (configuration, not a package), and the error names the link."""
        root, outside = tmp_path / "dags", tmp_path / "outside"
        root.mkdir()
        outside.mkdir()
        side = Sidecar(world, root)
        side.cycle()
        shutil.rmtree(root / ".dagfactory-sync", ignore_errors=True)
        os.symlink(outside, root / ".dagfactory-sync")
        world.release("good", {"good_a.json": manifest("good", "a")})
        report = side.cycle()
        assert not report.complete and side.served() == {} and list(outside.iterdir()) == []
        (error,) = side.events("error")
        assert error["kind"] == "config" and ".dagfactory-sync is a symbolic link" in error["error"]
        side.reconciler.close()

    def test_start_up_cleanup_does_not_delete_through_a_symlinked_package(self, world, tmp_path):
        """Start-up cleanup of interrupted writes (temp files, staging directories) deletes nothing
        reached through a package symlink."""
        root, outside = tmp_path / "dags", tmp_path / "outside"
        for sub in ("dags", ".dags-next", ".dags-old"):
            (outside / sub).mkdir(parents=True)
            (outside / sub / ".precious.tmp").write_bytes(b"not ours")
        root.mkdir()
        os.symlink(outside, root / "victim")
        side = Sidecar(world, root)
        for sub in ("dags", ".dags-next", ".dags-old"):
            assert (outside / sub / ".precious.tmp").read_bytes() == b"not ours"
        side.reconciler.close()


class TestOnlyS3FailsTheCycle:
    @pytest.mark.parametrize("version_id", ["bogus!", "3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY"])
    def test_a_record_with_a_version_that_does_not_exist_fails_only_its_package(
        self, world, tmp_path, version_id
    ):
        """A well-typed record naming an object version S3 does not have (NoSuchVersion): that package's
        error, kind ``get``; the cycle is complete (``--once`` exits 0, ``/readyz`` unaffected)."""
        files = {"bad_a.json": manifest("bad", "a")}
        world.mirror("bad", files)
        doc = json.loads(world.record("bad", files).to_json())
        for entry in doc["files"].values():
            entry["version_id"] = version_id
        world.put(f"{ENV}/bad/metadata.json", json.dumps(doc).encode())
        world.release("good", {"good_a.json": manifest("good", "a")})
        side = Sidecar(world, tmp_path / "dags")
        report = side.cycle()
        assert report.complete and "good/dags/good_a.json" in side.served()
        assert not any(k.startswith("bad/") for k in side.served())
        (error,) = side.events("error")
        assert error["kind"] == "get" and error["package"] == "bad" and "NoSuchVersion" in error["error"]
        side.reconciler.close()
