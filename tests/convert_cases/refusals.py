"""DAGs the manifest cannot express, each for one reason: an operator setting with no manifest field,
nested task groups, an EmptyOperator join whose trigger rule a dependency cannot say, a DAG callback."""

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, TaskGroup

START = pendulum.datetime(2025, 1, 1)


def job(task_id, **kwargs):
    return KubernetesPodOperator(
        task_id=task_id, namespace="etl", image="registry.example.com/job:1.0.0", **kwargs
    )


with DAG("skips_on_exit", schedule=None, start_date=START):
    job("job", skip_on_exit_code=100)

with DAG("nested_groups", schedule=None, start_date=START), TaskGroup("outer"), TaskGroup("inner"):
    job("job")

with DAG("any_of_join", schedule=None, start_date=START):
    join = EmptyOperator(task_id="join", trigger_rule="one_success")
    [job("a"), job("b")] >> join >> job("c")


def tell_the_team(context):
    print("done", context)


with DAG("dag_callback", schedule=None, start_date=START, on_success_callback=tell_the_team):
    job("job")
