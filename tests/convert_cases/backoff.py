"""A DAG the manifest cannot express exactly: a retry backoff multiplier of 3 (the manifest has an
on/off switch). The mapper writes `retry_exponential_backoff: true`; only the fidelity check sees
that the converted task backs off differently."""

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG

with DAG("backoff_job", schedule=None, start_date=pendulum.datetime(2025, 1, 1)) as dag:
    KubernetesPodOperator(
        task_id="job",
        namespace="etl",
        image="registry.example.com/job:1.0.0",
        retries=4,
        retry_exponential_backoff=3.0,
    )
