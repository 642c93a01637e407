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
