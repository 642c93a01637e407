"""A DAG whose task has a Python failure callback: refused (a manifest names platform notifiers)."""

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG


def page_someone(context):
    print("failed", context)


with DAG("with_callback", schedule="@daily", start_date=pendulum.datetime(2025, 1, 1)) as dag:
    KubernetesPodOperator(
        task_id="job",
        namespace="etl",
        image="registry.example.com/job:1.0.0",
        on_failure_callback=page_someone,
    )
