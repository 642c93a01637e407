"""A task whose pod comes from a pod_template_file, and one with a full_pod_spec: the fields the manifest
models become its fields, the rest (dnsConfig, a sidecar, ports) pod_override."""

from pathlib import Path

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from kubernetes.client import models as k8s

with DAG("exporter", schedule="@hourly", start_date=pendulum.datetime(2025, 1, 1)) as dag:
    from_template = KubernetesPodOperator(
        task_id="from_template",
        namespace="etl",
        pod_template_file=str(Path(__file__).with_name("pod_template.yaml")),
        arguments=["export", "{{ ts }}"],
    )
    full_spec = KubernetesPodOperator(
        task_id="full_spec",
        namespace="etl",
        image="registry.example.com/exporter:3.1.0",
        full_pod_spec=k8s.V1Pod(
            spec=k8s.V1PodSpec(
                containers=[k8s.V1Container(name="base", working_dir="/work")],
                dns_policy="Default",
            )
        ),
    )
    from_template >> full_spec
