"""Run in a fresh interpreter: the scheduler's dag-run creation step, as its loop runs it.

Usage: python airflow_assets.py (AIRFLOW_HOME is a migrated metadata DB the real dag-processor filled.)

``SchedulerJobRunner._create_dagruns_for_dags`` inside ``prohibit_commit``, exactly as
``_do_scheduling`` calls it (its job not started, its executor never started): ``DagModel.dags_needing_dagruns``
evaluates each asset-scheduled DAG's condition on the asset_dag_run_queue rows that recorded asset
events left, and ``_create_dag_runs_asset_triggered`` creates the runs. The caller reads the tables.
"""

from __future__ import annotations


def main() -> None:
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.utils.session import create_session
    from airflow.utils.sqlalchemy import prohibit_commit

    scheduler = SchedulerJobRunner(job=Job())
    with create_session() as session, prohibit_commit(session) as guard:
        scheduler._create_dagruns_for_dags(guard, session)


if __name__ == "__main__":
    main()
