"""An Airflow 3 file: DAGs built in a loop by a helper, default_args, a task group, expand, and most
pod settings (env from Secrets and ConfigMaps, volumes, resources, affinity, tolerations, node selector,
security contexts, an init container, image pull settings, the termination grace period)."""

from datetime import timedelta

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, TaskGroup
from kubernetes.client import models as k8s

IMAGE = "registry.example.com/reports:2.0.1"

affinity = k8s.V1Affinity(
    node_affinity=k8s.V1NodeAffinity(
        required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(
            node_selector_terms=[
                k8s.V1NodeSelectorTerm(
                    match_expressions=[
                        k8s.V1NodeSelectorRequirement(key="pool", operator="In", values=["batch"])
                    ]
                )
            ]
        )
    )
)


def pod(task_id, mapped=False, **kwargs):
    build = KubernetesPodOperator.partial if mapped else KubernetesPodOperator
    return build(
        task_id=task_id,
        namespace="reports",
        image=IMAGE,
        service_account_name="reports-runner",
        node_selector={"pool": "batch"},
        tolerations=[k8s.V1Toleration(key="batch", operator="Equal", value="true", effect="NoSchedule")],
        affinity=affinity,
        labels={"team": "reports"},
        annotations={"example.com/cost-center": "42"},
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": "500m", "memory": "1Gi"}, limits={"memory": "2Gi"}
        ),
        env_vars=[
            k8s.V1EnvVar(name="REGION", value="{{ params.region }}"),
            k8s.V1EnvVar(
                name="API_URL",
                value_from=k8s.V1EnvVarSource(
                    config_map_key_ref=k8s.V1ConfigMapKeySelector(name="reports-config", key="api_url")
                ),
            ),
        ],
        secrets=[Secret("env", None, "reports-env")],
        volumes=[k8s.V1Volume(name="scratch", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="1Gi"))],
        volume_mounts=[k8s.V1VolumeMount(name="scratch", mount_path="/scratch")],
        startup_timeout_seconds=300,
        image_pull_policy="IfNotPresent",
        image_pull_secrets=[k8s.V1LocalObjectReference(name="registry-creds")],
        security_context=k8s.V1PodSecurityContext(run_as_non_root=True, run_as_user=1000, fs_group=1000),
        container_security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False, capabilities=k8s.V1Capabilities(drop=["ALL"])
        ),
        init_containers=[
            k8s.V1Container(
                name="wait-for-db",
                image="registry.example.com/wait:1.0.0",
                args=["--host", "db"],
                volume_mounts=[k8s.V1VolumeMount(name="scratch", mount_path="/scratch")],
            )
        ],
        termination_grace_period=60,
        **kwargs,
    )


for region in ("north", "south"):
    with DAG(
        f"reports_{region}",
        schedule="30 6 * * 1-5",
        start_date=pendulum.datetime(2025, 1, 6, tz="Europe/Berlin"),
        catchup=False,
        max_active_runs=1,
        tags=["reports", region],
        params={"region": Param(region, type="string")},
        default_args={"owner": "reports", "retries": 3, "retry_delay": timedelta(minutes=2)},
        dagrun_timeout=timedelta(hours=4),
    ) as dag:
        extract = pod("extract", arguments=["extract", "--day", "{{ ds }}"], do_xcom_push=True)
        with TaskGroup("build", tooltip=""):
            shards = pod("shard", mapped=True, execution_timeout=timedelta(minutes=45)).expand(
                arguments=[["shard", "0"], ["shard", "1"], ["shard", "2"]]
            )
            per_table = pod("per_table", mapped=True).expand(arguments=extract.output)
        done = EmptyOperator(task_id="done")
        publish = pod("publish", arguments=["publish"], trigger_rule="all_done")
        extract >> [shards, per_table] >> done >> publish
