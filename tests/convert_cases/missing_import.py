"""A DAG file that imports a module that is not installed."""

import pendulum
from airflow.sdk import DAG
from company_internal_helpers import build_pods  # not installed anywhere

with DAG("uses_helpers", schedule=None, start_date=pendulum.datetime(2025, 1, 1)) as dag:
    build_pods()
