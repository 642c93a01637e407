"""The deployment kit: every YAML parses, Kubernetes objects validate, and the files agree with each other.

What can run here does: the example CI workflow's validate and publish steps run against the example
packages and a moto S3, the pre-commit hook runs as pre-commit would call it, the generated IAM
policies go through moto's IAM policy validator, the bucket template through cfn-lint, and its push
delivery resources, created on the moto server as the template states them, carry S3 events to
every consumer's queue.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import kubernetes_validate
import pytest
import yaml
from moto import mock_aws
from test_policy_ci import put_policy

from dagfactory_s3 import settings
from dagfactory_s3.serve import events

from conftest import EXAMPLES, ROOT
from s3server import Proxy, aws_env

BIN = Path(sys.executable).parent
AIRFLOW_CONFIG = Path(__import__("airflow").__file__).parent / "config_templates" / "config.yml"
SKIP_DIRS = {".git", ".venv", ".demo", ".pytest_cache", ".ruff_cache", "node_modules", "out", "build", "dist"}
K8S_VERSION = kubernetes_validate.utils.latest_version()


def _repo_yaml_files() -> list[Path]:
    found = []
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts[:-1]):
            continue
        if path.suffix in (".yaml", ".yml") and path.is_file():
            found.append(path)
    return found


YAML_FILES = _repo_yaml_files()


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def _documents(path: Path) -> list[Any]:
    with open(path) as handle:
        return [d for d in yaml.safe_load_all(handle) if d is not None]


def _k8s_objects() -> list[tuple[str, dict]]:
    out = []
    for path in YAML_FILES:
        for i, doc in enumerate(_documents(path)):
            if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
                out.append((f"{path.relative_to(ROOT)}#{i}", doc))
    return out


def _merge(base: Any, override: Any) -> Any:
    """Helm's merge of -f value files: maps key by key (the later file wins), anything else replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def _helm_values() -> dict[str, Any]:
    return _merge(
        yaml.safe_load((ROOT / "sidecar" / "helm-values.yaml").read_text()),
        yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text()),
    )


def _airflow_options() -> dict[str, set[str]]:
    config = yaml.safe_load(AIRFLOW_CONFIG.read_text())
    return {section: set(body.get("options", {})) for section, body in config.items()}


def _constraint(name: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(f"{name.lower()}=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{name} is not pinned in constraints.txt")


# -- every YAML, every Kubernetes object ------------------------------------------------------


def test_the_kit_is_in_the_repository():
    """The files docs/deploy.md points at exist (a broken link would otherwise go unnoticed)."""
    for rel in (
        "deploy/airflow/Dockerfile",
        "deploy/helm/values.yaml",
        "deploy/k8s/etl-jobs.yaml",
        "deploy/s3/dag-bucket.cfn.yaml",
        "deploy/iam/package-ci-trust.json",
        "deploy/iam/airflow-irsa-trust.json",
        "examples/ci/github-actions.yml",
        ".pre-commit-hooks.yaml",
        "sidecar/helm-values.yaml",
        "docs/deploy.md",
        "docs/operations.md",
    ):
        assert (ROOT / rel).is_file(), rel
    linked = set(re.findall(r"\]\(\.\./([^)#]+)\)", (ROOT / "docs" / "deploy.md").read_text()))
    assert linked, "docs/deploy.md links no kit file"
    for rel in linked:
        assert (ROOT / rel).exists(), f"docs/deploy.md links a missing file: {rel}"


@pytest.mark.parametrize("path", YAML_FILES, ids=_ids(YAML_FILES))
def test_every_yaml_file_parses(path: Path):
    """Every YAML file in the repository (Helm values, Kubernetes specs, workflows, goldens) parses."""
    assert _documents(path), f"{path} holds no document"


K8S_OBJECTS = _k8s_objects()


@pytest.mark.parametrize(("where", "obj"), K8S_OBJECTS, ids=[w for w, _ in K8S_OBJECTS])
def test_every_kubernetes_object_validates_strictly(where: str, obj: dict):
    """Every Kubernetes object in the repository is valid for the newest Kubernetes, unknown fields refused."""
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_the_kit_holds_kubernetes_objects():
    """The RBAC for job pods is among the validated objects (the parametrized test is not vacuous)."""
    kinds = {(o["kind"], o["metadata"]["name"]) for w, o in K8S_OBJECTS if w.startswith("deploy/")}
    assert {
        ("Namespace", "etl-jobs"),
        ("Role", "airflow-job-launcher"),
        ("RoleBinding", "airflow-job-launcher"),
    } <= kinds


# -- Helm values: the chart's pods, with the sidecar --------------------------------------------


def _pod(values: dict, component: str, image: str) -> dict:
    part = values[component]
    main = {"name": component.lower(), "image": image, "volumeMounts": part.get("extraVolumeMounts", [])}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"airflow-{component.lower()}"},
        "spec": {
            "serviceAccountName": f"airflow-{component.lower()}",
            "initContainers": part.get("extraInitContainers", []),
            "containers": [main, *part.get("extraContainers", [])],
            "volumes": part.get("extraVolumes", []),
        },
    }


@pytest.mark.parametrize("component", ["dagProcessor", "workers", "triggerer"])
def test_helm_values_give_every_dag_reader_a_valid_pod_with_the_sync(component: str):
    """Merged values (sidecar, then deploy): each pod that reads DAGs validates and gets a complete folder first."""
    values = _helm_values()
    image = f"{values['images']['airflow']['repository']}:{values['images']['airflow']['tag']}"
    pod = _pod(values, component, image)
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    dags_folder = values["config"]["core"]["dags_folder"]
    init = pod["spec"]["initContainers"]
    assert [c["args"] for c in init] == [["--once"]], "the dags folder must be complete before Airflow starts"
    if component == "workers":  # a task pod: its task's DAG alone, named by the pod's dag_id annotation
        assert "DAG_SYNC_DAG_ID" in {e["name"] for e in init[0]["env"]}
    for container in init + pod["spec"]["containers"][1:]:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["DAGS_FOLDER"] == dags_folder
        assert {m["mountPath"] for m in container["volumeMounts"]} == {dags_folder}
    main_mounts = pod["spec"]["containers"][0]["volumeMounts"]
    assert [(m["mountPath"], m.get("readOnly")) for m in main_mounts] == [(dags_folder, True)]
    role = values[component]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role.endswith(":role/airflow-dags-read-prod")


def test_helm_values_keep_the_sidecar_out_of_kubernetes_executor_task_pods():
    """A task pod must end with its task: with the KubernetesExecutor workers get the init container only."""
    values = _helm_values()
    assert values["executor"] == "KubernetesExecutor"
    assert values["workers"]["extraContainers"] == []
    assert [c["name"] for c in values["dagProcessor"]["extraContainers"]] == ["dag-sync"]


QUEUE_CONFIGMAP = "airflow-dag-sync-queues"


def test_helm_values_give_each_long_running_sidecar_a_queue_of_its_own():
    """Push delivery: the dag-processor's and the triggerer's sidecars read DAG_SYNC_QUEUE_URL (the
    sidecar's setting) from their own key of an optional ConfigMap, one replica each; no init container
    reads a queue, and no sidecar pins DAG_SYNC_INTERVAL (which would keep 30 s full reconciles)."""
    assert settings.OPTIONS["queue_url"].env == "DAG_SYNC_QUEUE_URL"
    values = _helm_values()
    keys = {}
    for component in ("dagProcessor", "triggerer"):
        assert values[component]["replicas"] == 1, "a second replica would share the queue"
        [sidecar] = values[component]["extraContainers"]
        [queue] = [e for e in sidecar["env"] if e["name"] == "DAG_SYNC_QUEUE_URL"]
        ref = queue["valueFrom"]["configMapKeyRef"]
        assert ref["name"] == QUEUE_CONFIGMAP and ref["optional"] is True  # no ConfigMap: polling as before
        keys[component] = ref["key"]
        assert "DAG_SYNC_INTERVAL" not in {e["name"] for e in sidecar["env"]}
    assert keys == {"dagProcessor": "dag-processor", "triggerer": "triggerer"}
    for component in ("dagProcessor", "triggerer", "workers"):
        for init in values[component]["extraInitContainers"]:
            assert "DAG_SYNC_QUEUE_URL" not in {e["name"] for e in init["env"]}, component
    doc = (ROOT / "docs" / "deploy.md").read_text()
    for key in keys.values():
        assert f"--from-literal={key}=" in doc, f"docs/deploy.md does not create the ConfigMap key {key}"
    assert f"configmap {QUEUE_CONFIGMAP}" in doc


def test_helm_config_options_exist_in_the_installed_airflow():
    """Every [section] option the Helm values set exists in Airflow 3.3's config.yml, and the versions agree."""
    options = _airflow_options()
    values = _helm_values()
    for section, body in values["config"].items():
        for key in body:
            assert key in options.get(section, set()), (
                f"[{section}] {key} is not an Airflow {_constraint('apache-airflow')} option"
            )
    import airflow

    assert values["airflowVersion"] == airflow.__version__ == _constraint("apache-airflow")
    assert values["images"]["airflow"]["tag"] == f"{airflow.__version__}-{_project_version()}"


def test_demo_and_test_settings_exist_in_the_installed_airflow():
    """The AIRFLOW__SECTION__KEY variables the demo, the e2e tests and airflow_env.py set are real options."""
    sys.path.insert(0, str(ROOT))
    try:
        from demo.stack import airflow_settings
    finally:
        sys.path.remove(str(ROOT))
    from airflow_env import airflow_env

    options = _airflow_options()
    names = set(
        airflow_settings(
            Path("/h"),
            Path("/d"),
            refresh_interval=5,
            min_file_process_interval=300,
            min_serialized_dag_update_interval=1,
            api_port=8080,
        )
    )
    names |= set(airflow_env(Path("/h"), Path("/d")))
    checked = 0
    for name in sorted(names):
        if name.startswith("AIRFLOW__"):
            section, key = name[len("AIRFLOW__") :].lower().split("__", 1)
            assert key in options.get(section, set()), f"{name} is not an Airflow option"
            checked += 1
    assert checked >= 10


def test_deploy_doc_states_every_setting_the_helm_values_use():
    """docs/deploy.md has a row `[section] option` | `value` for each Helm config option, same value."""
    doc = (ROOT / "docs" / "deploy.md").read_text()
    rows = dict(re.findall(r"^\| `\[(\w+\] \w+)` \| `([^`]*)` \|", doc, flags=re.M))
    values = _helm_values()["config"]
    for section, body in values.items():
        for key, value in body.items():
            assert rows.get(f"{section}] {key}") == str(value), (
                f"docs/deploy.md: [{section}] {key} should be `{value}`"
            )


def _project_version() -> str:
    text = (ROOT / "dagfactory_s3" / "__init__.py").read_text()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


def test_airflow_image_installs_the_tested_versions():
    """The Dockerfile pins Airflow and installs dagfactory-s3[airflow] under constraints.txt, versions matching."""
    dockerfile = (ROOT / "deploy" / "airflow" / "Dockerfile").read_text()
    assert f"ARG AIRFLOW_VERSION={_constraint('apache-airflow')}" in dockerfile
    python = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python == ">=3.10" and "ARG PYTHON_VERSION=3.11" in dockerfile
    assert "ARG CONSTRAINTS=constraints.txt" in dockerfile
    assert "COPY --chown=airflow:0 ${CONSTRAINTS} /tmp/constraints.txt" in dockerfile
    install = dockerfile[dockerfile.index("RUN pip install") :]
    assert "-c /tmp/constraints.txt" in install
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install
    assert "[airflow]" in install
    assert "FROM apache/airflow:slim-${AIRFLOW_VERSION}-python${PYTHON_VERSION}" in dockerfile


# -- S3 bucket and IAM --------------------------------------------------------------------------


def test_bucket_template_passes_cfn_lint():
    """The CloudFormation template of the DAG bucket is valid for CloudFormation's resource specification."""
    cfn_lint = BIN / "cfn-lint"
    assert cfn_lint.exists(), "cfn-lint is missing (it comes with moto[server] in the dev extra)"
    result = subprocess.run(
        [str(cfn_lint), str(ROOT / "deploy" / "s3" / "dag-bucket.cfn.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bucket_template_is_versioned_private_and_tls_only():
    """Versioning on, all four public-access blocks, ACLs off, MD5-preserving encryption, insecure transport denied."""
    template = yaml.safe_load((ROOT / "deploy" / "s3" / "dag-bucket.cfn.yaml").read_text())
    bucket = template["Resources"]["DagBucket"]
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse == {"SSEAlgorithm": "AES256"}
    [statement] = template["Resources"]["DagBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }


QUEUE_ARNS = (
    "--queue-arn",
    "arn:aws:sqs:us-east-1:123456789012:airflow-dag-bucket-DagProcessorSyncQueue-1A2B3C",
    "--queue-arn",
    "arn:aws:sqs:us-east-1:123456789012:airflow-dag-bucket-TriggererSyncQueue-4D5E6F",
)


def _template() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "deploy" / "s3" / "dag-bucket.cfn.yaml").read_text())


PUSH_CONSUMERS = {
    "sidecar": {"DagProcessorSyncQueue", "TriggererSyncQueue"},
    "bundle": {"DagProcessorBundleQueue"},
}


def _of_type(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_bucket_template_without_push_delivery_is_todays_stack():
    """PushDelivery defaults to none, and then only the bucket and its policy exist: every push resource
    and output is conditional, the notification and the ordering reference vanish (AWS::NoValue)."""
    template = _template()
    assert template["Parameters"]["PushDelivery"]["Default"] == "none"
    assert set(template["Parameters"]["PushDelivery"]["AllowedValues"]) == {"none", *PUSH_CONSUMERS}
    unconditional = {name for name, r in template["Resources"].items() if "Condition" not in r}
    assert unconditional == {"DagBucket", "DagBucketPolicy"}
    bucket = template["Resources"]["DagBucket"]
    for conditional in (
        bucket["Properties"]["NotificationConfiguration"],
        bucket["Metadata"]["PushTopicPolicy"],
    ):
        condition, _, otherwise = conditional["Fn::If"]
        assert condition == "PushOn" and otherwise == {"Ref": "AWS::NoValue"}
    assert {n for n, o in template["Outputs"].items() if "Condition" not in o} == {"BucketName", "BucketArn"}


def test_bucket_template_publishes_the_environments_events_to_the_topic_only_from_this_bucket():
    """Created and removed objects under <PushEnvironment>/ go to the topic, which only this bucket of
    this account may publish to; the topic policy names the bucket by name (a Ref would be circular)
    and the bucket waits for it (S3 checks the destination when the notification is set)."""
    template = _template()
    bucket = template["Resources"]["DagBucket"]
    assert bucket["Metadata"]["PushTopicPolicy"]["Fn::If"][1] == {"Ref": "DagEventsTopicPolicy"}
    configurations = bucket["Properties"]["NotificationConfiguration"]["Fn::If"][1]["TopicConfigurations"]
    assert sorted(c["Event"] for c in configurations) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    for c in configurations:
        assert c["Topic"] == {"Ref": "DagEventsTopic"}
        assert c["Filter"]["S3Key"]["Rules"] == [
            {"Name": "prefix", "Value": {"Fn::Sub": "${PushEnvironment}/"}}
        ]
    env_pattern = template["Parameters"]["PushEnvironment"]["AllowedPattern"]
    assert all(re.fullmatch(env_pattern, e) for e in ("dev", "prod", "team_a-staging"))
    policy = template["Resources"]["DagEventsTopicPolicy"]
    assert policy["Properties"]["Topics"] == [{"Ref": "DagEventsTopic"}]
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == (
        "Allow",
        {"Service": "s3.amazonaws.com"},
        "sns:Publish",
    )
    assert statement["Condition"] == {
        "ArnLike": {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"}},
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    }
    assert '"DagBucket"' not in json.dumps(policy) and "${DagBucket" not in json.dumps(policy)


def test_every_push_queue_has_a_dead_letter_queue_a_topic_only_policy_and_a_raw_subscription():
    """One queue per consumer of each mode, each: redrive to its own dead-letter queue after 5 receives,
    visibility 120 s, 1 day retention, SSE; a policy letting only the topic send; a raw-delivery SQS
    subscription; its URL and ARN as outputs."""
    template = _template()
    resources = template["Resources"]
    queues = _of_type(template, "AWS::SQS::Queue")
    consumers = {n: q for n, q in queues.items() if "RedrivePolicy" in q["Properties"]}
    assert {
        mode: {n for n in consumers if consumers[n]["Condition"] == f"Push{mode.title()}"}
        for mode in PUSH_CONSUMERS
    } == PUSH_CONSUMERS
    dead_letters = set(queues) - set(consumers)
    policies = _of_type(template, "AWS::SQS::QueuePolicy").values()
    subscriptions = _of_type(template, "AWS::SNS::Subscription").values()
    for name, queue in consumers.items():
        props = queue["Properties"]
        dlq = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"]
        assert (
            dlq[1] == "Arn"
            and dlq[0] in dead_letters
            and resources[dlq[0]]["Condition"] == queue["Condition"]
        )
        assert props["RedrivePolicy"]["maxReceiveCount"] == 5
        assert props["VisibilityTimeout"] == 120 and props["MessageRetentionPeriod"] == 86400
        assert (
            props["SqsManagedSseEnabled"] is True
            and resources[dlq[0]]["Properties"]["SqsManagedSseEnabled"] is True
        )
        assert resources[dlq[0]]["Properties"]["MessageRetentionPeriod"] > props["MessageRetentionPeriod"]
        [policy] = [p for p in policies if p["Properties"]["Queues"] == [{"Ref": name}]]
        [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
        assert (statement["Effect"], statement["Principal"], statement["Action"]) == (
            "Allow",
            {"Service": "sns.amazonaws.com"},
            "sqs:SendMessage",
        )
        assert statement["Resource"] == {"Fn::GetAtt": [name, "Arn"]}
        assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "DagEventsTopic"}}}
        [subscription] = [
            s for s in subscriptions if s["Properties"]["Endpoint"] == {"Fn::GetAtt": [name, "Arn"]}
        ]
        assert subscription["Properties"] == {
            "TopicArn": {"Ref": "DagEventsTopic"},
            "Protocol": "sqs",
            "Endpoint": {"Fn::GetAtt": [name, "Arn"]},
            "RawMessageDelivery": True,
        }
        assert (
            subscription["DependsOn"]
            == f"{name}Policy"
            == next(n for n, r in resources.items() if r is policy)
        )
        outputs = template["Outputs"]
        assert outputs[f"{name}Url"]["Value"] == {"Ref": name}
        assert outputs[f"{name}Arn"]["Value"] == {"Fn::GetAtt": [name, "Arn"]}
    assert len(policies) == len(subscriptions) == len(consumers) == len(dead_letters)


# -- the push-delivery resources on the moto server -----------------------------------------------

_NO_VALUE = object()


class _Stack:
    """The template's push-delivery resources created on the moto server as CloudFormation would (moto's
    own CloudFormation lacks topic and queue policies, subscriptions and bucket notifications): each
    intrinsic the template uses is resolved, each resource made by the API call that means the same."""

    def __init__(self, parameters: dict[str, str], account: str = "123456789012") -> None:
        self.template = _template()
        self.parameters = {k: str(v.get("Default")) for k, v in self.template["Parameters"].items()}
        self.parameters |= parameters | {"AWS::AccountId": account, "AWS::Partition": "aws"}
        self.physical: dict[str, dict[str, str]] = {}  # logical id -> {"Ref": ..., "Arn": ...}

    def condition(self, name: str) -> bool:
        return self.resolve(self.template["Conditions"][name])

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in map(self.resolve, node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            [(fn, arg)] = node.items()
            if fn == "Ref":
                if arg == "AWS::NoValue":
                    return _NO_VALUE
                return self.parameters[arg] if arg in self.parameters else self.physical[arg]["Ref"]
            if fn == "Fn::GetAtt":
                return self.physical[arg[0]][arg[1]]
            if fn == "Fn::Sub":
                return re.sub(r"\$\{([^}]+)\}", lambda m: self.resolve({"Ref": m.group(1)}), arg)
            if fn == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if fn == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
            if fn == "Fn::Not":
                return not self.resolve(arg[0])
        out = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not _NO_VALUE}

    def resources(self, kind: str) -> Iterator[tuple[str, dict]]:
        """The resources of ``kind`` this stack creates, each resolved when its turn comes (a queue's
        redrive policy names its dead-letter queue, created first)."""
        chosen = [
            (name, r)
            for name, r in self.template["Resources"].items()
            if r["Type"] == kind and ("Condition" not in r or self.condition(r["Condition"]))
        ]
        for name, r in sorted(chosen, key=lambda item: "RedrivePolicy" in item[1].get("Properties", {})):
            yield name, self.resolve(r.get("Properties", {}))

    def create(self) -> dict[str, str]:
        """Create the resources in dependency order; the stack's outputs."""
        s3, sns, sqs = boto3.client("s3"), boto3.client("sns"), boto3.client("sqs")
        for name, _ in self.resources("AWS::SNS::Topic"):
            arn = sns.create_topic(Name=name)["TopicArn"]
            self.physical[name] = {"Ref": arn}
        for _, props in self.resources("AWS::SNS::TopicPolicy"):
            for topic in props["Topics"]:
                sns.set_topic_attributes(
                    TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(props["PolicyDocument"])
                )
        for name, props in self.resources("AWS::SQS::Queue"):
            attributes = {
                k: json.dumps(v) if isinstance(v, dict) else str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in props.items()
            }
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            self.physical[name] = {"Ref": url, "Arn": arn}
        for _, props in self.resources("AWS::SQS::QueuePolicy"):
            for url in props["Queues"]:
                sqs.set_queue_attributes(
                    QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
                )
        for _, props in self.resources("AWS::SNS::Subscription"):
            sns.subscribe(
                TopicArn=props["TopicArn"],
                Protocol=props["Protocol"],
                Endpoint=props["Endpoint"],
                Attributes={"RawMessageDelivery": str(props["RawMessageDelivery"]).lower()},
            )
        [(name, props)] = list(self.resources("AWS::S3::Bucket"))
        s3.create_bucket(Bucket=props["BucketName"])
        self.physical[name] = {"Ref": props["BucketName"], "Arn": f"arn:aws:s3:::{props['BucketName']}"}
        notification = props.get("NotificationConfiguration", {})
        s3.put_bucket_notification_configuration(
            Bucket=props["BucketName"],
            NotificationConfiguration={
                "TopicConfigurations": [
                    {
                        "TopicArn": c["Topic"],
                        "Events": [c["Event"]],
                        "Filter": {"Key": {"FilterRules": c["Filter"]["S3Key"]["Rules"]}},
                    }
                    for c in notification.get("TopicConfigurations", [])
                ]
            },
        )
        return {
            name: self.resolve(output["Value"])
            for name, output in self.template["Outputs"].items()
            if "Condition" not in output or self.condition(output["Condition"])
        }


@pytest.mark.parametrize("mode", sorted(PUSH_CONSUMERS))
def test_push_delivery_stack_carries_a_publish_to_every_consumers_queue(s3: Proxy, mode: str, capsys):
    """On the moto server, the stack's resources for PushDelivery=<mode>: a release record written and
    deleted under the environment reaches each consumer's queue once, raw, and names the package; other
    environments' objects reach no queue; the output ARNs are what `iam-policy --queue-arn` takes."""
    from dagfactory_s3.publisher import cli

    bucket, environment = "etl-airflow-dags-test", "prod"
    outputs = _Stack({"BucketName": bucket, "PushDelivery": mode, "PushEnvironment": environment}).create()
    urls = {k[: -len("Url")]: v for k, v in outputs.items() if k.endswith("QueueUrl")}
    assert set(urls) == PUSH_CONSUMERS[mode]
    client = boto3.client("s3")
    client.put_object(Bucket=bucket, Key="dev/reporting_seeder/metadata.json", Body=b"{}")
    client.put_object(Bucket=bucket, Key=f"{environment}/reporting_seeder/metadata.json", Body=b"{}")
    client.delete_object(Bucket=bucket, Key=f"{environment}/reporting_seeder/metadata.json")
    sqs = boto3.client("sqs")
    for consumer, url in urls.items():
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
        bodies = [json.loads(m["Body"]) for m in messages]  # raw: no SNS envelope
        assert all(b.get("Event") == "s3:TestEvent" or "Records" in b for b in bodies), bodies
        records = [r for b in bodies for r in b.get("Records", [])]
        assert sorted(r["eventName"].split(":")[0] for r in records) == ["ObjectCreated", "ObjectRemoved"], (
            consumer
        )
        # S3's test event when the notification was set is dropped as such; each record names the package
        batches = [events.parse(m["Body"], bucket, environment) for m in messages]
        assert all(b.packages == {"reporting_seeder"} or set(b.dropped) == {"test"} for b in batches), batches
        assert len([b for b in batches if b.packages]) == len(records)  # one message per object event
    arns = [outputs[f"{consumer}Arn"] for consumer in urls]
    queue_flags = [flag for arn in arns for flag in ("--queue-arn", arn)]
    target = ["--bucket", bucket, "--environment", environment, "--package-name", "reporting_seeder"]
    code = cli.main(["iam-policy", *target, *queue_flags])
    out, err = capsys.readouterr()
    assert code == 0, err
    [statement] = [
        s for s in json.loads(out)["airflow_read_only_role"]["Statement"] if s["Sid"] == "ReceiveDagEvents"
    ]
    assert statement["Resource"] == sorted(arns)


@pytest.mark.parametrize(
    "extra",
    [(), ("--promote-from", "dev", "--promote-from", "staging"), QUEUE_ARNS, ("--bundle-index", *QUEUE_ARNS)],
    ids=["plain", "promote", "queues", "bundle-index"],
)
@pytest.mark.parametrize("package", sorted(p.name for p in EXAMPLES.iterdir()))
def test_generated_iam_policies_are_accepted_by_iam(package: str, extra: tuple[str, ...]):
    """`iam-policy` output (plain, with promotion sources, with push-delivery queues, with the bundle's
    version indexes) attaches to roles
    with the kit's trust policies (moto validates policy documents)."""
    result = subprocess.run(
        [
            str(BIN / "airflow-dag-publisher"),
            "iam-policy",
            "--bucket",
            "etl-airflow-dags-prod",
            "--environment",
            "prod",
            "--package-name",
            package,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    policies = json.loads(result.stdout)
    trusts = {"package_ci_role": "package-ci-trust.json", "airflow_read_only_role": "airflow-irsa-trust.json"}
    assert set(policies) == set(trusts)
    env = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        with mock_aws():
            iam = boto3.client("iam")
            for role, trust_file in trusts.items():
                trust = json.loads((ROOT / "deploy" / "iam" / trust_file).read_text())
                assert [s["Action"] for s in trust["Statement"]] == ["sts:AssumeRoleWithWebIdentity"]
                iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
                iam.put_role_policy(
                    RoleName=role, PolicyName="dags", PolicyDocument=json.dumps(policies[role])
                )
    writes = [
        s
        for s in policies["airflow_read_only_role"]["Statement"]
        if s["Effect"] == "Allow" and any(a.startswith(("s3:Put", "s3:Delete")) for a in _actions(s))
    ]
    if "--bundle-index" in extra:  # its one write: the bundle's version indexes, nothing else
        assert [s["Resource"] for s in writes] == ["arn:aws:s3:::etl-airflow-dags-prod/_bundle/prod/*"]
        [deny] = [s for s in policies["airflow_read_only_role"]["Statement"] if s["Effect"] == "Deny"]
        assert deny["NotResource"] == writes[0]["Resource"] and "s3:PutObject" in deny["Action"]
    else:
        assert writes == [], "Airflow's role must be read-only"


def _actions(statement: dict) -> list[str]:
    actions = statement.get("Action", [])
    return [actions] if isinstance(actions, str) else list(actions)


# -- the example CI workflow --------------------------------------------------------------------


def _workflow() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "examples" / "ci" / "github-actions.yml").read_text())


def _step(job: dict, step_id: str) -> dict:
    return next(s for s in job["steps"] if s.get("id") == step_id)


def test_workflow_validates_pull_requests_publishes_merges_to_dev_and_promotes_on_approval():
    """PRs run validate (no credentials); only a push to main runs publish (dev), after validate, with
    OIDC; promote (prod, a protected environment) follows publish and ships the release it published."""
    wf = _workflow()
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert set(triggers) == {"pull_request", "push"} and triggers["push"]["branches"] == ["main"]
    validate, publish, promote = wf["jobs"]["validate"], wf["jobs"]["publish"], wf["jobs"]["promote"]
    assert "if" not in validate and "permissions" not in validate  # read-only token, no AWS
    assert "airflow-dag-publisher validate" in _step(validate, "validate")["run"]
    assert publish["needs"] == "validate" and promote["needs"] == "publish"
    assert publish["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert (publish["environment"], publish["env"]["ENVIRONMENT"], promote["environment"]) == (
        "dev",
        "dev",
        "prod",
    )
    assert promote["env"]["DEV_RELEASE"] == "${{ needs.publish.outputs.release_id }}"
    assert publish["outputs"]["release_id"] == "${{ steps.publish.outputs.release_id }}"
    roles = []
    for job in (publish, promote):
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        [aws] = [
            s for s in job["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
        ]
        roles.append(aws["with"]["role-to-assume"].rsplit("-", 1)[1])
        assert job["concurrency"]["cancel-in-progress"] is False
        assert job["concurrency"]["group"].endswith(f"-{job['environment']}")
    assert roles == ["dev", "prod"]
    assert "airflow-dag-publisher publish" in _step(publish, "publish")["run"]
    assert '--release "$DEV_RELEASE"' in _step(promote, "promote")["run"]
    assert "concurrency" not in wf  # per job: a promote awaiting approval never holds back dev
    for job in wf["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), (
                f"step {step.get('name')}: use env vars in scripts, not expressions"
            )


def _run_step(step: dict, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", step["run"]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _ci_env(wf: dict, job: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAG_", "AIRFLOW"))}
    env.update({k: str(v) for k, v in wf["env"].items()})
    env.update(
        {k: str(v) for k, v in (wf["jobs"][job].get("env", {}) if job else {}).items() if "${{" not in str(v)}
    )
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env.update(extra)
    return env


@pytest.fixture
def package_repo(tmp_path: Path) -> Path:
    """A package repository laid out as the workflow expects: airflow_dags/ at its root."""
    shutil.copytree(EXAMPLES / "pipeline_processing" / "airflow_dags", tmp_path / "airflow_dags")
    return tmp_path


def test_workflow_validate_steps_pass_on_a_good_package_and_fail_on_a_bad_one(package_repo: Path):
    """The validate job's scripts, run as written, accept the example package and reject a broken manifest."""
    wf = _workflow()
    env = _ci_env(wf)
    for step_id in ("validate", "stubs"):
        result = _run_step(_step(wf["jobs"]["validate"], step_id), package_repo, env)
        assert result.returncode == 0, result.stdout + result.stderr
    manifest = package_repo / "airflow_dags" / "pipeline_processing_example_job.json"
    manifest.write_text(manifest.read_text().replace(":v1.0.0", ":latest"))
    result = _run_step(_step(wf["jobs"]["validate"], "validate"), package_repo, env)
    assert result.returncode == 1
    assert "/job/image: image tag 'latest'" in result.stderr


def test_workflow_publish_and_promote_steps_run_against_s3(package_repo: Path, bucket: str, s3: Proxy):
    """The publish job's scripts, run as written against moto, publish to dev and hand the release id
    on; the promote job's ship that release to prod; each job's list shows it. Both check against
    their environment's published platform policy and refuse to run without one."""
    wf = _workflow()
    aws = {k: v for k, v in aws_env(s3.url).items() if k.startswith("AWS_")}
    github = dict(GITHUB_REF_NAME="main", GITHUB_RUN_NUMBER="7", GITHUB_SHA="0" * 40)
    output = package_repo / "github_output"
    output.touch()
    env = _ci_env(wf, "publish", **aws, **github, DAG_BUCKET=bucket, GITHUB_OUTPUT=str(output))
    shipped = (ROOT / "deploy/airflow/dagfactory-policy.json").read_bytes()
    result = _run_step(_step(wf["jobs"]["publish"], "publish"), package_repo, env)
    assert result.returncode == 2 and "error: no platform policy" in result.stderr  # the job requires one
    dev_policy = put_policy(s3, bucket, "dev", shipped)
    result = _run_step(_step(wf["jobs"]["publish"], "publish"), package_repo, env)
    assert result.returncode == 0, result.stdout + result.stderr
    published = json.loads((package_repo / "publish.json").read_text())
    assert published["ok"] and published["package"] == "pipeline_processing" and published["release_id"]
    assert published["policy"] == dev_policy
    assert output.read_text() == f"release_id={published['release_id']}\n"
    client = boto3.client("s3", endpoint_url=s3.upstream)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {
        "dev/pipeline_processing/metadata.json",
        "dev/pipeline_processing/dags/pipeline_processing_example_job.py",
        "dev/pipeline_processing/dags/pipeline_processing_example_job.json",
    } <= keys
    assert not [k for k in keys if k.startswith("prod/")]

    def record(environment: str) -> dict:
        key = f"{environment}/pipeline_processing/metadata.json"
        return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())

    assert record("dev")["git_sha"] == "0" * 40 and record("dev")["package_version"] == "main-7"
    listed = _run_step(_step(wf["jobs"]["publish"], "list"), package_repo, env)
    assert listed.returncode == 0, listed.stderr
    assert "pipeline_processing_example_job" in listed.stdout

    # promote runs with no checkout: an empty working directory
    elsewhere = package_repo / "promote"
    elsewhere.mkdir()
    env = _ci_env(wf, "promote", **aws, DAG_BUCKET=bucket, DEV_RELEASE=published["release_id"])
    prod_policy = put_policy(s3, bucket, "prod", shipped)
    result = _run_step(_step(wf["jobs"]["promote"], "promote"), elsewhere, env)
    assert result.returncode == 0, result.stdout + result.stderr
    promoted = json.loads((elsewhere / "promote.json").read_text())
    assert promoted["ok"] and promoted["release_id"] != published["release_id"]
    assert promoted["policy"] == prod_policy
    prod = record("prod")
    assert prod["promoted_from"] == {"environment": "dev", "release_id": published["release_id"]}
    assert (prod["git_sha"], prod["package_version"]) == ("0" * 40, "main-7")
    listed = _run_step(_step(wf["jobs"]["promote"], "list"), elsewhere, env)
    assert listed.returncode == 0, listed.stderr
    assert "pipeline_processing_example_job" in listed.stdout


# -- the pre-commit hook ------------------------------------------------------------------------


def _hook() -> dict[str, Any]:
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    return hook


def _run_hook(files: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the hook the way pre-commit does: shlex-split entry, then args, then the matching file names."""
    hook = _hook()
    pattern = re.compile(hook["files"])
    names = [str(f.relative_to(cwd)) for f in files if pattern.search(str(f.relative_to(cwd)))]
    argv = [*shlex.split(hook["entry"]), *hook.get("args", []), *names]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAG_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_pre_commit_hook_is_declared_for_the_publisher():
    """The hook id, language and files pattern; its command is a console script this package installs."""
    hook = _hook()
    assert hook["id"] == "validate-dag-manifests" and hook["language"] == "python"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "airflow-dag-publisher validate" in hook["entry"] and "airflow-dag-publisher" in scripts
    pattern = re.compile(hook["files"])
    assert pattern.search("packages/reporting_seeder/airflow_dags/reporting_seeder_refresh_all.json")
    assert pattern.search("airflow_dags/x_y.py")
    assert not pattern.search("src/reporting_seeder/jobs/refresh.py")
    assert not pattern.search("airflow_dags/nested/x.json")


def test_pre_commit_hook_passes_good_manifests_and_names_the_problem_in_bad_ones(tmp_path: Path):
    """Changed files in two packages pass; a broken manifest fails the hook with its file, pointer and fix."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo / "packages")
    changed = sorted((repo / "packages").glob("*/airflow_dags/*"))
    result = _run_hook(changed, repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 3
    bad = repo / "packages" / "reporting_seeder" / "airflow_dags" / "reporting_seeder_refresh_all.json"
    bad.write_text(bad.read_text().replace('"@daily"', '"every day"'))
    result = _run_hook([bad], repo)
    assert result.returncode == 1
    assert "reporting_seeder_refresh_all.json: /schedule:" in result.stderr
