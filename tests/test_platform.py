"""The platform policy file: read by validate/plan/publish (--policy) and by the factory at every parse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_publish import PP, RS, dags_dir, main, objects, publish_args

from dagfactory_s3 import manifest, platform
from dagfactory_s3.errors import ConfigError, ManifestError

from conftest import REBUILD, ROOT, all_examples

# What the examples name (Secrets, ConfigMaps, PVCs, queues, taints, assets ...), as the shipped policy grants it.
EXAMPLE_GRANTS = json.loads((ROOT / "deploy/airflow/dagfactory-policy.json").read_text())["grants"]

STRICT = {
    "namespaces": ["etl-jobs"],
    "service_accounts": ["etl-runner"],
    "volume_types": ["empty_dir", "secret", "config_map"],
    "image_registries": ["registry.example.com"],
}


def write_policy(tmp_path: Path, document: object) -> Path:
    """A policy file; one that names no ``grants`` grants what the examples name (the shipped policy's)."""
    if isinstance(document, dict) and "grants" not in document:
        document = {**document, "grants": EXAMPLE_GRANTS}
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    return path


class TestPolicyFile:
    def test_default_without_file(self):
        """No policy file: any namespace, account and registry; no host_path, no privileged, baseline caps."""
        assert platform.from_environment({}) == platform.DEFAULT
        assert "host_path" not in platform.DEFAULT.volume_types
        assert not platform.DEFAULT.allow_privileged
        assert "NET_BIND_SERVICE" in platform.DEFAULT.allowed_capabilities
        assert "SYS_ADMIN" not in platform.DEFAULT.allowed_capabilities

    def test_reads_every_field(self, tmp_path):
        path = write_policy(
            tmp_path, {**STRICT, "allow_privileged": True, "allowed_capabilities": ["NET_ADMIN"]}
        )
        policy = platform.from_environment({platform.POLICY_ENV: str(path)})
        assert policy.namespaces == {"etl-jobs"}
        assert policy.image_registries == ("registry.example.com",)
        assert policy.allow_privileged and policy.allowed_capabilities == {"NET_ADMIN"}
        assert policy.registry_allowed("registry.example.com/pp:1") and not policy.registry_allowed(
            "registry.example.com.evil.io/pp:1"
        )

    @pytest.mark.parametrize(
        ("document", "text"),
        [
            ("{not json", "/: policy is not valid JSON"),
            ([], "/: policy must be a JSON object"),
            ({"namespace": ["a"]}, "/namespace: unknown policy field"),
            ({"namespaces": "etl-jobs"}, "/namespaces: expected a list of namespace names"),
            ({"volume_types": ["hostPath"]}, "/volume_types: unknown volume type 'hostPath'"),
            ({"allow_privileged": "yes"}, "/allow_privileged: expected true or false"),
            ({"policy_version": 2}, "/policy_version: this dagfactory-s3 reads policy_version 1"),
        ],
    )
    def test_bad_policy_is_a_config_error_naming_file_and_pointer(self, tmp_path, document, text):
        path = tmp_path / "policy.json"
        path.write_text(document if isinstance(document, str) else json.dumps(document))
        with pytest.raises(ConfigError) as info:
            platform.load(str(path))
        assert str(info.value).startswith(f"{path}: {text}")

    def test_missing_file_fails_closed(self, tmp_path):
        """A configured policy that cannot be read is an error, never "no policy"."""
        with pytest.raises(ConfigError, match="cannot read the platform policy"):
            platform.from_environment({platform.POLICY_ENV: str(tmp_path / "absent.json")})


class TestManifestAgainstPolicy:
    def test_examples_pass_the_policy_the_deploy_kit_publishes(self):
        """deploy/airflow/dagfactory-policy.json (what the platform publishes to the bucket; the image no
        longer bakes it in) accepts every example."""
        from conftest import ROOT

        shipped = ROOT / "deploy/airflow/dagfactory-policy.json"
        dockerfile = (shipped.parent / "Dockerfile").read_text()
        assert "ENV" in dockerfile and "DAGFACTORY_POLICY=/" not in dockerfile  # served from the bucket
        policy = platform.load(str(shipped))
        assert policy.namespaces == {"etl-jobs"} and "host_path" not in policy.volume_types
        for path in all_examples():
            manifest.load(path, policy=policy)

    def test_example_passes_default_and_is_refused_by_strict_policy_with_pointers(self, tmp_path):
        raw = REBUILD.read_bytes()
        manifest.parse(raw, file="r.json")
        policy = platform.load(str(write_policy(tmp_path, STRICT)))
        with pytest.raises(ManifestError) as info:
            manifest.parse(raw, file="r.json", policy=policy)
        lines = str(info.value).splitlines()
        assert all(f"not allowed by the platform policy ({policy.file})" in line for line in lines)
        pointers = {line.split(": ")[1] for line in lines}
        assert pointers == {
            "/task_defaults/image",
            "/task_defaults/service_account",
            "/task_defaults/volumes/3/projected",
            "/task_defaults/volumes/4/ephemeral",
            "/task_defaults/volumes/5/persistent_volume_claim",
            "/tasks/0/init_containers/0/image",
        }

    def test_namespace_outside_policy(self, tmp_path):
        doc = json.loads(REBUILD.read_bytes())
        doc["tasks"][4]["namespace"] = "kube-system"
        policy = platform.load(str(write_policy(tmp_path, {"namespaces": ["etl-jobs"]})))
        with pytest.raises(ManifestError) as info:
            manifest.parse(json.dumps(doc).encode(), file="r.json", policy=policy)
        assert str(info.value) == (
            f"r.json: /tasks/4/namespace: namespace 'kube-system' is not allowed by the platform policy "
            f"({policy.file}); allowed: etl-jobs"
        )

    def test_platform_may_allow_host_path_and_privileged(self, tmp_path):
        doc = json.loads(REBUILD.read_bytes())
        sock = {"name": "sock", "host_path": {"path": "/run/x.sock", "type": "Socket"}}
        doc["task_defaults"]["volumes"].append(sock)
        doc["tasks"][4]["security_context"] = {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}}
        raw = json.dumps(doc).encode()
        with pytest.raises(ManifestError) as info:
            manifest.parse(raw, file="r.json")
        assert len(str(info.value).splitlines()) == 3  # host_path, privileged, SYS_ADMIN
        volumes = [*platform.VOLUME_TYPES]
        policy = platform.load(
            str(write_policy(tmp_path, {"volume_types": volumes, "allow_privileged": True}))
        )
        manifest.parse(raw, file="r.json", policy=policy)


class TestCommandsUseThePolicy:
    def test_validate_with_policy_flag_and_environment(self, tmp_path, capsys, monkeypatch):
        path = write_policy(tmp_path, STRICT)
        folder = str(REBUILD.parent)
        code, _, err = main(capsys, "validate", "--dag-path", folder, "--policy", str(path))
        assert code == 1 and "/task_defaults/service_account: service account 'reporting-seeder'" in err
        assert "Traceback" not in err
        assert main(capsys, "validate", "--dag-path", folder)[0] == 0
        monkeypatch.setenv(platform.POLICY_ENV, str(path))
        code, _, err = main(capsys, "validate", "--dag-path", folder)
        assert code == 1 and "not allowed by the platform policy" in err

    def test_bad_policy_file_is_exit_2_without_traceback(self, tmp_path, capsys):
        path = write_policy(tmp_path, {"namespace": []})
        code, _, err = main(capsys, "validate", "--dag-path", str(REBUILD.parent), "--policy", str(path))
        assert code == 2 and f"{path}: /namespace: unknown policy field" in err and "Traceback" not in err

    def test_publish_refused_by_policy_uploads_nothing(self, s3, bucket, examples_copy, capsys, tmp_path):
        assert main(capsys, *publish_args(bucket, PP, dags_dir(examples_copy, PP)))[0] == 0
        before = objects(s3, bucket)
        s3.clear()
        path = write_policy(tmp_path, STRICT)
        code, _, err = main(
            capsys, *publish_args(bucket, RS, dags_dir(examples_copy, RS), "--policy", str(path))
        )
        assert code == 1 and "not allowed by the platform policy" in err
        assert s3.count("PUT") == 0 and s3.count("DELETE") == 0
        assert objects(s3, bucket) == before


@pytest.mark.airflow
class TestFactoryUsesThePolicy:
    def test_parse_time_refusal_is_an_import_error_of_that_dag_only(self, tmp_path, monkeypatch):
        pytest.importorskip("airflow")
        from airflow_env import dag_bag, dags_folder_with_examples

        dags = dags_folder_with_examples(tmp_path / "dags", all_examples())
        monkeypatch.setenv(platform.POLICY_ENV, str(write_policy(tmp_path, {"volume_types": ["empty_dir"]})))
        bag = dag_bag(dags)
        stub = str(dags / "reporting_seeder_agency_rebuild.py")
        assert list(bag.import_errors) == [stub]
        assert (
            "/task_defaults/volumes/1/config_map: volume type 'config_map' is not allowed"
            in bag.import_errors[stub]
        )
        assert "reporting_seeder_refresh_all" in bag.dag_ids

    def test_unreadable_policy_fails_every_dag_closed(self, tmp_path, monkeypatch):
        pytest.importorskip("airflow")
        from airflow_env import dag_bag, dags_folder_with_examples

        dags = dags_folder_with_examples(tmp_path / "dags", all_examples())
        monkeypatch.setenv(platform.POLICY_ENV, str(tmp_path / "absent.json"))
        bag = dag_bag(dags)
        assert bag.dag_ids == [] and len(bag.import_errors) == len(all_examples())
        assert all("cannot read the platform policy" in text for text in bag.import_errors.values())


class TestPodOverrideSchema:
    def test_validate_checks_pod_override_against_the_kubernetes_schema(self, tmp_path, capsys):
        """With kubernetes-validate installed, validate refuses an override field of the wrong type or
        unknown to Kubernetes, at the field's pointer, before anything reaches Airflow."""
        pytest.importorskip("kubernetes_validate")
        for field, value, text in (
            ("enableServiceLinks", "no", "'no' is not of type 'boolean'"),
            ("dnsPolicyy", "None", "dnsPolicyy"),
        ):
            doc = json.loads(REBUILD.read_bytes())
            doc["tasks"][4]["pod_override"]["spec"][field] = value
            folder = tmp_path / field
            folder.mkdir()
            (folder / REBUILD.name).write_text(json.dumps(doc))
            code, _, err = main(capsys, "validate", "--dag-path", str(folder))
            assert code == 1 and "/tasks/4/pod_override/spec" in err and text in err, err
