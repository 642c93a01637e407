"""A DAG with a PythonOperator: not a pod job, so the DAG is refused."""

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

with DAG("notify_after", schedule=None, start_date=pendulum.datetime(2025, 1, 1)) as dag:
    job = KubernetesPodOperator(task_id="job", namespace="etl", image="registry.example.com/job:1.0.0")
    notify = PythonOperator(task_id="notify", python_callable=lambda: print("done"))
    job >> notify
