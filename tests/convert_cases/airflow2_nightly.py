"""An Airflow 2 file: old module paths, days_ago, schedule_interval, Secret and Resources objects."""

from datetime import timedelta

from airflow import DAG
from airflow.contrib.operators.kubernetes_pod_operator import KubernetesPodOperator
from airflow.kubernetes.secret import Secret
from airflow.kubernetes.volume import Volume
from airflow.kubernetes.volume_mount import VolumeMount
from airflow.operators.dummy_operator import DummyOperator
from airflow.utils.dates import days_ago

default_args = {
    "owner": "data-eng",
    "retries": 2,
    "retry_delay": timedelta(minutes=10),
    "start_date": days_ago(2),
}

password = Secret("env", "DB_PASSWORD", "warehouse-db", "password")
data = Volume(name="data", configs={"persistentVolumeClaim": {"claimName": "warehouse-data"}})
mount = VolumeMount("data", mount_path="/data", sub_path=None, read_only=True)

with DAG(
    "warehouse_nightly",
    default_args=default_args,
    schedule_interval="0 3 * * *",
    catchup=False,
    tags=["warehouse"],
) as dag:
    start = DummyOperator(task_id="start")
    extract = KubernetesPodOperator(
        task_id="extract",
        name="extract",
        namespace="etl",
        image="registry.example.com/warehouse:1.4.2",
        cmds=["python", "-m", "warehouse.extract"],
        arguments=["--date", "{{ ds }}"],
        secrets=[password],
        volumes=[data],
        volume_mounts=[mount],
        resources={"request_memory": "512Mi", "request_cpu": "250m", "limit_memory": "1Gi"},
        is_delete_operator_pod=True,
        get_logs=True,
    )
    load = KubernetesPodOperator(
        task_id="load",
        name="load",
        namespace="etl",
        image="registry.example.com/warehouse:1.4.2",
        cmds=["python", "-m", "warehouse.load"],
        arguments=["--date", "{{ ds }}"],
        env_vars={"TARGET": "warehouse"},
        execution_timeout=timedelta(hours=1),
    )
    start >> extract >> load
