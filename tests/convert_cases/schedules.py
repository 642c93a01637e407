"""Airflow 3 schedules: assets, a timedelta, a data-interval timetable object, and a custom timetable."""

from datetime import timedelta

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, EventsTimetable

START = pendulum.datetime(2025, 1, 1, tz="UTC")
SCHEDULES = {
    "on_orders": Asset("s3://etl-data/orders") | Asset("s3://etl-data/refunds"),
    "every_six_hours": timedelta(hours=6),
    "nightly_intervals": CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    "on_events": EventsTimetable(event_dates=[pendulum.datetime(2025, 3, 1, tz="UTC")]),
}

for name, schedule in SCHEDULES.items():
    with DAG(name, schedule=schedule, start_date=START) as dag:
        KubernetesPodOperator(task_id="job", namespace="etl", image="registry.example.com/job:1.0.0")
