"""Run in a fresh interpreter: one DagRun of a DAG through Airflow's own scheduler and task runner.

Usage: python airflow_run.py <dag_id> <logical_date> <xcom.json> <out.json> [<run_id> [<waves>]]
(AIRFLOW_HOME is a migrated metadata DB the real dag-processor has already filled.) With ``run_id``
the run gets that id, and a run of that id that exists already is resumed, not triggered; with
``waves`` the scheduler loop stops after that many enqueues (the run stays in progress).

Airflow's own functions, in the order a deployment runs them; only the pod itself is not run:
- the DAG is unpaused as ``airflow dags unpause`` does (new DAGs start paused);
- ``trigger_dag`` creates the DagRun (``create_dagrun`` -> ``verify_integrity`` creates the task
  instances: one per item for a task mapped over a list in the manifest);
- the scheduler (``SchedulerJobRunner``, its job not started) loops as its own loop does:
  ``_start_queued_dagruns``, then per wave ``_schedule_dag_run`` (``DagRun.update_state`` ->
  ``task_instance_scheduling_decisions``, which expands a task mapped over an upstream XCom once the
  upstream is done; ``schedule_tis``) and ``_critical_section_enqueue_task_instances`` (pools and
  concurrency limits such as ``max_active_tis_per_dagrun``; ``ExecuteTask`` workloads queued on the
  configured executor, which is never started);
- each queued workload goes to the task runner through the supervisor's own start-up
  (``_on_child_started``: the execution API's ``start``, then ``StartupDetails``), with the execution
  API served in-process on the metadata DB as ``dag.test()`` does: ``startup`` parses the DAG file
  (the stub, the loader, the factory), ``_prepare`` renders the templated fields (a mapped task is
  unmapped here, its XCom input pulled through the API) and stores them, and the pod is built by the
  rendered operator (``build_pod_request_obj``, the first thing its ``execute`` does);
- not run: the rest of ``execute`` (creating the pod needs a cluster). A task with ``do_xcom_push``
  returns the value ``<xcom.json>`` gives for its task id (what its pod would write to
  /airflow/xcom/return.json), pushed by the runner's ``_push_xcom_if_needed`` (XCom and TaskMap rows,
  through the API); the runner's own success message then ends the task.

Writes {"created": [[task_id, map_index]] (right after trigger_dag), "waves": [[task_id, map_index],
...] per enqueue, "tis": [[task_id, map_index, state]], "task_map" and "xcom" rows, "rendered":
{"task_id/map_index": fields} (rendered_task_instance_fields), "pods": {"task_id/map_index": pod},
"dag_run": {...}}.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path


def _worker(workload, client, xcom: dict) -> dict:
    """What a worker does with the executor's workload of one task instance, up to ``execute``."""
    import psutil
    import structlog
    from airflow.sdk.execution_time.context import set_current_context
    from airflow.sdk.execution_time.supervisor import (
        InProcessSupervisorComms,
        InProcessTestSupervisor,
        set_supervisor_comms,
    )
    from airflow.sdk.execution_time.task_runner import (
        _handle_current_task_success,
        _prepare,
        _push_xcom_if_needed,
        get_startup_details,
        startup,
    )
    from kubernetes.client import ApiClient

    log = structlog.get_logger(logger_name="task")
    supervisor = InProcessTestSupervisor(
        id=workload.ti.id,
        pid=os.getpid(),
        process=psutil.Process(),
        process_log=log,
        client=client,
    )
    supervisor.comms = InProcessSupervisorComms(supervisor=supervisor)
    with set_supervisor_comms(supervisor.comms):
        supervisor._on_child_started(
            ti=workload.ti,
            dag_rel_path=workload.dag_rel_path,
            bundle_info=workload.bundle_info,
            sentry_integration="",
        )
        ti, context, log = startup(get_startup_details())
        with set_current_context(context):
            if (early_exit := _prepare(ti, log, context)) is not None:
                raise RuntimeError(f"{ti.task_id}: the task runner stopped before execute: {early_exit}")
            pod = ti.task.build_pod_request_obj(context, dry_run=True)
            result = xcom.get(ti.task_id) if ti.task.do_xcom_push else None
            _push_xcom_if_needed(result, ti, log)
            msg, _state = _handle_current_task_success(context, ti)
        supervisor.comms.send(msg)
        supervisor.update_task_state_if_needed()
    return ApiClient().sanitize_for_serialization(pod)


def main(dag_id: str, logical_date: str, xcom_file: str, out: str, run_id: str = "", waves: str = "") -> None:
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dag import DagModel
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskmap import TaskMap
    from airflow.models.xcom import XComModel
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import select

    xcom = json.loads(Path(xcom_file).read_text())
    when = datetime.fromisoformat(logical_date)
    with create_session() as session:
        resumed = (
            bool(run_id) and session.scalar(select(DagRun.id).where(DagRun.run_id == run_id)) is not None
        )
    if not resumed:
        run = trigger_dag(
            dag_id,
            triggered_by=DagRunTriggeredByType.TEST,
            run_id=run_id or None,
            logical_date=when,
            run_after=when,
        )
        run_id = run.run_id
    with create_session() as session:
        created = session.execute(
            select(TaskInstance.task_id, TaskInstance.map_index)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .order_by(TaskInstance.task_id, TaskInstance.map_index)
        ).all()
    scheduler = SchedulerJobRunner(job=Job())  # its executor is the configured one, never started
    executor = scheduler.executor
    with create_session() as session:
        # New DAGs are paused (dags_are_paused_at_creation): unpause as `airflow dags unpause` does.
        session.get(DagModel, dag_id).is_paused = False
    with create_session() as session:
        scheduler._start_queued_dagruns(session=session)
        client = InProcessTestSupervisor._api_client(
            DBDagBag().get_latest_version_of_dag(dag_id, session=session)
        )
    enqueued, pods = [], {}
    while not waves or len(enqueued) < int(waves):
        with create_session() as session:
            dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
            scheduler._schedule_dag_run(dag_run, session=session)
        with create_session() as session:
            scheduler._critical_section_enqueue_task_instances(session=session)
        wave = [executor.queued_tasks.pop(key) for key in sorted(executor.queued_tasks)]
        if not wave:
            break
        enqueued.append([[w.ti.task_id, w.ti.map_index] for w in wave])
        for workload in wave:
            pods[f"{workload.ti.task_id}/{workload.ti.map_index}"] = _worker(workload, client, xcom)
    with create_session() as session:
        dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        tis = session.scalars(
            select(TaskInstance)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .order_by(TaskInstance.task_id, TaskInstance.map_index)
        ).all()
        rendered = session.scalars(
            select(RenderedTaskInstanceFields).where(
                RenderedTaskInstanceFields.dag_id == dag_id, RenderedTaskInstanceFields.run_id == run_id
            )
        ).all()
        task_maps = session.scalars(
            select(TaskMap).where(TaskMap.dag_id == dag_id, TaskMap.run_id == run_id)
        ).all()
        xcoms = session.scalars(
            select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id)
        ).all()
        result = {
            "created": [list(row) for row in created],
            "task_map": [[t.task_id, t.map_index, t.length] for t in task_maps],
            "xcom": [[x.task_id, x.map_index, x.key, x.value] for x in xcoms],
            "dag_run": {
                "run_id": run_id,
                "state": str(dag_run.state),
                "logical_date": dag_run.logical_date.isoformat(),
            },
            "tis": [[ti.task_id, ti.map_index, str(ti.state)] for ti in tis],
            "waves": enqueued,
            "rendered": {f"{r.task_id}/{r.map_index}": r.rendered_fields for r in rendered},
            "pods": pods,
        }
    Path(out).write_text(json.dumps(result, sort_keys=True, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:7])
