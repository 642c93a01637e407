"""Pods stay in their sandbox: what the Kubernetes baseline Pod Security Standard forbids, and the pod
fields the platform owns, are refused by the same rules in CI (the base install's parse) and at parse in
Airflow (a real DagBag), unless the platform policy allows privileged pods.
"""

from __future__ import annotations

import copy
import json

import pytest

from dagfactory_s3 import manifest, stub
from dagfactory_s3.errors import ManifestError
from dagfactory_s3.platform import parse as parse_policy

BASE = {
    "schema_version": 1,
    "package": "team_a",
    "dag_id": "team_a_job",
    "schedule": None,
    "start_date": "2024-01-01",
    "job": {"name": "run", "image": "registry.example.com/a/run:1.0"},
}
SIDE = {"name": "side", "image": "registry.example.com/a/side:1.0"}


def _override(spec: dict) -> dict:
    doc = copy.deepcopy(BASE)
    doc["job"]["pod_override"] = {"spec": spec}
    return doc


def _side(**fields) -> dict:
    return _override({"containers": [{"name": "base"}, {**SIDE, **fields}]})


def _job(**fields) -> dict:
    doc = copy.deepcopy(BASE)
    doc["job"].update(fields)
    return doc


_SPEC = "/job/pod_override/spec"
_CTX = f"{_SPEC}/containers/1/securityContext"
# (name, manifest, pointer, words of the reason)
CASES = [
    ("host-network-integer", _override({"hostNetwork": 1}), f"{_SPEC}/hostNetwork", "must be true or false"),
    ("host-pid-string", _override({"hostPID": "true"}), f"{_SPEC}/hostPID", "must be true or false"),
    ("host-ipc-true", _override({"hostIPC": True}), f"{_SPEC}/hostIPC", "host namespaces are not allowed"),
    (
        "runtime-class",
        _override({"runtimeClassName": "unsandboxed"}),
        f"{_SPEC}/runtimeClassName",
        "container runtime",
    ),
    ("scheduler-name", _override({"schedulerName": "other"}), f"{_SPEC}/schedulerName", "places the pod"),
    (
        "ephemeral-containers",
        _override({"ephemeralContainers": [{"name": "dbg", "image": "evil.example.com/x:1"}]}),
        f"{_SPEC}/ephemeralContainers",
        "ephemeral containers",
    ),
    ("node-name", _override({"nodeName": "control-plane-1"}), f"{_SPEC}/nodeName", "placed by the scheduler"),
    (
        "host-port",
        _side(ports=[{"containerPort": 8080, "hostPort": 80}]),
        f"{_SPEC}/containers/1/ports/0/hostPort",
        "a host port",
    ),
    (
        "selinux-spc",
        _side(securityContext={"seLinuxOptions": {"type": "spc_t"}}),
        f"{_CTX}/seLinuxOptions/type",
        "spc_t",
    ),
    (
        "selinux-user",
        _side(securityContext={"seLinuxOptions": {"user": "system_u"}}),
        f"{_CTX}/seLinuxOptions/user",
        "SELinux user",
    ),
    (
        "seccomp-unconfined",
        _side(securityContext={"seccompProfile": {"type": "Unconfined"}}),
        f"{_CTX}/seccompProfile/type",
        "Unconfined seccomp",
    ),
    (
        "apparmor-unconfined",
        _side(securityContext={"appArmorProfile": {"type": "Unconfined"}}),
        f"{_CTX}/appArmorProfile/type",
        "Unconfined appArmor",
    ),
    (
        "proc-mount",
        _side(securityContext={"procMount": "Unmasked"}),
        f"{_CTX}/procMount",
        "procMount 'Unmasked'",
    ),
    (
        "root-escalation-sidecar",
        _side(securityContext={"runAsUser": 0, "allowPrivilegeEscalation": True}),
        f"{_CTX}/allowPrivilegeEscalation",
        "root with privilege escalation",
    ),
    (
        "privileged-sidecar",
        _side(securityContext={"privileged": True}),
        f"{_CTX}/privileged",
        "privileged containers",
    ),
    (
        "bidirectional-mount",
        _side(volumeMounts=[{"name": "v", "mountPath": "/x", "mountPropagation": "Bidirectional"}]),
        f"{_SPEC}/containers/1/volumeMounts/0/mountPropagation",
        "Bidirectional",
    ),
    (
        "task-seccomp-unconfined",
        _job(security_context={"seccomp_profile": {"type": "Unconfined"}}),
        "/job/security_context/seccomp_profile/type",
        "Unconfined seccomp",
    ),
    ("start-date-year-one", {**BASE, "start_date": "0001-01-01"}, "/start_date", "before 1970-01-01"),
]


@pytest.mark.parametrize(("name", "doc", "pointer", "reason"), CASES, ids=[c[0] for c in CASES])
def test_ci_refuses_what_breaks_the_sandbox(name, doc, pointer, reason):
    """The base install's parse (what validate runs) refuses it at its pointer, without a policy file."""
    with pytest.raises(ManifestError) as caught:
        manifest.parse(json.dumps(doc).encode(), file="m.json")
    lines = str(caught.value).splitlines()
    assert any(line.startswith(f"m.json: {pointer}: ") and reason in line for line in lines), lines


def test_a_policy_that_allows_privileged_pods_allows_the_escapes():
    """The platform decides: allow_privileged lifts the sandbox rules (not the type checks)."""
    policy = parse_policy(b'{"allow_privileged": true}', "p.json")
    for name, doc, _pointer, reason in CASES:
        if "must be true or false" in reason or name in ("node-name", "start-date-year-one"):
            continue
        manifest.parse(json.dumps(doc).encode(), file="m.json", policy=policy)


@pytest.mark.airflow
def test_the_parse_in_airflow_refuses_each_one(tmp_path):
    """Every case planted in one dags folder: a real DagBag records each as its stub's import error,
    at the same pointer, and builds none of them."""
    pytest.importorskip("airflow", reason="needs the [airflow] extra")
    from airflow_env import dag_bag

    for i, (_name, doc, _pointer, _reason) in enumerate(CASES):
        dag_id = f"team_a_case{i:02d}"
        (tmp_path / f"{dag_id}.json").write_text(json.dumps({**doc, "dag_id": dag_id}))
        (tmp_path / f"{dag_id}.py").write_bytes(stub.render(f"{dag_id}.json"))
    bag = dag_bag(tmp_path)
    assert not bag.dags
    for i, (name, _doc, pointer, reason) in enumerate(CASES):
        error = bag.import_errors[str(tmp_path / f"team_a_case{i:02d}.py")]
        assert f"team_a_case{i:02d}.json: {pointer}: " in error and reason in error, (name, error[-400:])


# -- what a manifest may reach is granted per package --------------------------------------------------

TWO_TEAMS = {
    "notifiers": {
        "team-a-pager": {"kind": "smtp", "to": ["a-oncall@example.com"]},
        "team-b-pager": {"kind": "smtp", "to": ["b-oncall@example.com"]},
        "platform-email": {"kind": "smtp", "to": ["platform@example.com"]},
    },
    "grants": {
        "*": {"queues": ["default"], "notifiers": ["platform-email"]},
        "team_a": {
            "secrets": ["shared-ca"],
            "asset_uris": ["s3://lake/team_a/"],
            "tolerations": ["dedicated"],
        },
    },
}


def _grant_case(**fields) -> dict:
    return _job(**fields)


_PROJECTED_B = {"name": "p", "projected": {"sources": [{"secret": {"name": "team-b-token"}}]}}
_OVERRIDE_ENV = {"name": "side", "image": "registry.example.com/a/side:1.0"}
# (name, manifest, pointer, what the refusal names)
GRANT_CASES = [
    (
        "service-account",
        _grant_case(service_account="team-b-runner"),
        "/job/service_account",
        "service account 'team-b-runner'",
    ),
    (
        "env-secret",
        _grant_case(env={"PW": {"secret": {"name": "team-b-db", "key": "password"}}}),
        "/job/env/PW/secret/name",
        "Secret 'team-b-db'",
    ),
    (
        "env-config-map",
        _grant_case(env={"C": {"config_map": {"name": "team-b-config", "key": "k"}}}),
        "/job/env/C/config_map/name",
        "ConfigMap 'team-b-config'",
    ),
    (
        "env-from-secret",
        _grant_case(env_from=[{"secret": "team-b-db"}]),
        "/job/env_from/0/secret",
        "Secret 'team-b-db'",
    ),
    (
        "volume-secret",
        _grant_case(volumes=[{"name": "s", "secret": {"secret_name": "team-b-tls"}}]),
        "/job/volumes/0/secret/secret_name",
        "Secret 'team-b-tls'",
    ),
    (
        "projected-secret",
        _grant_case(volumes=[_PROJECTED_B]),
        "/job/volumes/0/projected/sources/0/secret/name",
        "Secret 'team-b-token'",
    ),
    (
        "pvc",
        _grant_case(volumes=[{"name": "d", "persistent_volume_claim": {"claim_name": "team-b-data"}}]),
        "/job/volumes/0/persistent_volume_claim/claim_name",
        "PersistentVolumeClaim 'team-b-data'",
    ),
    (
        "image-pull-secret",
        _grant_case(image_pull_secrets=["team-b-registry"]),
        "/job/image_pull_secrets/0",
        "image pull Secret",
    ),
    ("pool", _grant_case(pool="team_b_pool"), "/job/pool", "pool 'team_b_pool'"),
    ("queue", _grant_case(queue="gpu"), "/job/queue", "queue 'gpu'"),
    (
        "priority-class",
        _grant_case(priority_class_name="team-b-urgent"),
        "/job/priority_class_name",
        "priority class 'team-b-urgent'",
    ),
    (
        "system-priority-class",
        _grant_case(priority_class_name="system-node-critical"),
        "/job/priority_class_name",
        "Kubernetes' own",
    ),
    (
        "control-plane-toleration",
        _grant_case(tolerations=[{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]),
        "/job/tolerations/0/key",
        "toleration of taint 'node-role.kubernetes.io/control-plane'",
    ),
    (
        "tolerate-everything",
        _grant_case(tolerations=[{"operator": "Exists"}]),
        "/job/tolerations/0/key",
        "taint '*'",
    ),
    (
        "other-teams-asset",
        _grant_case(outlets=["s3://lake/team_b/orders/"]),
        "/job/outlets/0",
        "outlet asset 's3://lake/team_b/orders/'",
    ),
    (
        "other-teams-notifier",
        _grant_case(alerts={"on_failure": ["team-b-pager"]}),
        "/job/alerts/on_failure/0",
        "notifier 'team-b-pager'",
    ),
    (
        "override-env-secret",
        _override(
            {
                "containers": [
                    {"name": "base"},
                    {
                        **_OVERRIDE_ENV,
                        "env": [
                            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "team-b-db", "key": "k"}}}
                        ],
                    },
                ]
            }
        ),
        "/job/pod_override/spec/containers/1/env/0/valueFrom/secretKeyRef/name",
        "Secret 'team-b-db'",
    ),
    (
        "override-env-from",
        _override(
            {
                "containers": [
                    {"name": "base"},
                    {**_OVERRIDE_ENV, "envFrom": [{"configMapRef": {"name": "team-b-config"}}]},
                ]
            }
        ),
        "/job/pod_override/spec/containers/1/envFrom/0/configMapRef/name",
        "ConfigMap 'team-b-config'",
    ),
]


def _two_team_policy():
    return parse_policy(json.dumps(TWO_TEAMS).encode(), "policy.json")


@pytest.mark.parametrize(("name", "doc", "pointer", "reason"), GRANT_CASES, ids=[c[0] for c in GRANT_CASES])
def test_another_teams_names_are_refused(name, doc, pointer, reason):
    """With the platform's policy, a name that is neither the package's own nor granted is refused at
    its pointer, naming the grant that would allow it."""
    with pytest.raises(ManifestError) as caught:
        manifest.parse(json.dumps(doc).encode(), file="m.json", policy=_two_team_policy())
    lines = str(caught.value).splitlines()
    assert any(line.startswith(f"m.json: {pointer}: ") and reason in line for line in lines), lines


def test_own_and_granted_names_pass():
    """The package's own names (team-a-..., team_a_...), grants to it and to every package."""
    doc = _job(
        service_account="team-a",
        env={
            "PW": {"secret": {"name": "team-a-db", "key": "pw"}},
            "CA": {"secret": {"name": "shared-ca", "key": "ca"}},
        },
        env_from=[{"config_map": "team-a-settings"}],
        volumes=[{"name": "d", "persistent_volume_claim": {"claim_name": "team-a-data"}}],
        image_pull_secrets=["team-a-registry"],
        pool="team_a_pool",
        queue="default",
        priority_class_name="team-a-batch",
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "etl", "effect": "NoSchedule"}],
        outlets=["s3://lake/team_a/orders/"],
        alerts={"on_failure": ["team-a-pager", "platform-email"]},
    )
    assert (
        manifest.parse(json.dumps(doc).encode(), file="m.json", policy=_two_team_policy()).dag_id
        == "team_a_job"
    )


def test_without_a_policy_file_names_are_not_checked_but_system_classes_are():
    """CI without the platform's policy cannot know the grants (it says nothing of them); Kubernetes'
    own priority classes are refused everywhere."""
    for name, doc, _pointer, _reason in GRANT_CASES:
        if name not in ("system-priority-class", "other-teams-notifier"):
            manifest.parse(json.dumps(doc).encode(), file="m.json")
    with pytest.raises(ManifestError, match="Kubernetes' own"):
        manifest.parse(
            json.dumps(_job(priority_class_name="system-cluster-critical")).encode(), file="m.json"
        )


@pytest.mark.airflow
def test_the_parse_in_airflow_refuses_other_teams_names(tmp_path, monkeypatch):
    """The factory reads the image's policy (DAGFACTORY_POLICY): the same refusals are import errors."""
    pytest.importorskip("airflow", reason="needs the [airflow] extra")
    from airflow_env import dag_bag

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(TWO_TEAMS))
    monkeypatch.setenv("DAGFACTORY_POLICY", str(policy))
    dags = tmp_path / "dags"
    dags.mkdir()
    for i, (_name, doc, _pointer, _reason) in enumerate(GRANT_CASES):
        dag_id = f"team_a_grant{i:02d}"
        (dags / f"{dag_id}.json").write_text(json.dumps({**doc, "dag_id": dag_id}))
        (dags / f"{dag_id}.py").write_bytes(stub.render(f"{dag_id}.json"))
    bag = dag_bag(dags)
    assert not bag.dags
    for i, (name, _doc, pointer, reason) in enumerate(GRANT_CASES):
        error = bag.import_errors[str(dags / f"team_a_grant{i:02d}.py")]
        assert f"team_a_grant{i:02d}.json: {pointer}: " in error and reason in error, (name, error[-400:])


# -- one owner per DAG id ----------------------------------------------------------------------------


def _package_dir(tmp_path, package: str, *names: str):
    folder = tmp_path / package
    folder.mkdir(parents=True)
    for name in names:
        dag_id = f"{package}_{name}"
        doc = {**BASE, "package": package, "dag_id": dag_id}
        (folder / f"{dag_id}.json").write_text(json.dumps(doc))
        (folder / f"{dag_id}.py").write_bytes(stub.render(f"{dag_id}.json"))
    return folder


def test_ci_settles_which_package_owns_a_dag_id(s3, bucket, tmp_path, capsys):
    """Packages team and team_b may both name team_b_load: publishing it from team is refused while
    team_b exists (the longest package name owns it, as the sidecar and the bundle decide)."""
    from dagfactory_s3.publisher import cli

    def publish(package: str, folder) -> tuple[int, str]:
        argv = ["publish", "--bucket", bucket, "--environment", "dev", "--package-name", package]
        code = cli.main([*argv, "--dag-path", str(folder)])
        return code, capsys.readouterr().err

    assert publish("team_b", _package_dir(tmp_path, "team_b", "other"))[0] == 0
    code, err = publish("team", _package_dir(tmp_path, "team", "b_load", "daily"))
    assert code != 0
    assert "dag_id 'team_b_load' belongs to package 'team_b' (the longest package name it starts with)" in err
    assert "Traceback" not in err
    assert publish("team", _package_dir(tmp_path / "ok", "team", "daily"))[0] == 0


def test_list_of_every_package_survives_one_bad_record(s3, bucket, tmp_path, capsys):
    """A package whose record names a history entry whose object is missing: `list --all-packages
    --history` still lists every other package, and names that package's problem on its own line."""
    from dagfactory_s3.publisher import cli

    def publish(package: str, folder) -> None:
        argv = ["publish", "--bucket", bucket, "--environment", "dev", "--package-name", package]
        assert cli.main([*argv, "--dag-path", str(folder)]) == 0, capsys.readouterr().err

    publish("good", _package_dir(tmp_path, "good", "a"))
    publish("evil", _package_dir(tmp_path / "1", "evil", "a"))
    publish("evil", _package_dir(tmp_path / "2", "evil", "a", "b"))
    capsys.readouterr()
    import boto3

    client = boto3.client("s3", endpoint_url=s3.upstream)
    key = "dev/evil/metadata.json"
    record = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    entry = record["history"][0]
    entry.pop("files", None), entry.pop("dags", None)
    entry["stored"] = True  # its history object was never written
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(record).encode())
    argv = [
        "list",
        "--bucket",
        bucket,
        "--environment",
        "dev",
        "--all-packages",
        "--history",
        "--output",
        "json",
    ]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    listed = {p["package"]: p for p in json.loads(out)["packages"]}
    assert listed["good"]["release_id"] and listed["good"]["consistent"]
    assert (
        listed["evil"]["release_id"] is None and "is not in dev/evil/_releases/" in listed["evil"]["problem"]
    )
    assert code == 0 and "Traceback" not in err
