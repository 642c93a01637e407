"""Run in a fresh interpreter: one DagRun of a DAG through Airflow's own scheduler and task runner.

Usage: python airflow_run.py <dag_id> <logical_date> <xcom.json> <out.json>
(AIRFLOW_HOME is a migrated metadata DB the real dag-processor has already filled.)

Every step is Airflow's own code, in the order a deployment runs it, except two that need a cluster:
- scheduler: ``trigger_dag`` creates the DagRun (``create_dagrun`` -> ``verify_integrity`` creates the
  task instances, one per item of a list mapped in the manifest); then, wave by wave,
  ``DagRun.update_state`` (``task_instance_scheduling_decisions``, which expands a task mapped over an
  upstream XCom once that upstream is done) and ``DagRun.schedule_tis``;
- executor: its one step here is SCHEDULED -> QUEUED, done with ``TaskInstance.set_state`` for every
  scheduled task instance (no executor, so the scheduler's queueing limits such as
  ``max_active_tis_per_dagrun`` do not apply);
- worker: the workload ``ExecuteTask.make`` builds, handed to the task runner through the supervisor's
  own start-up (``_on_child_started``: the execution API's ``start``, then ``StartupDetails``), with the
  execution API served in-process against the metadata DB as ``dag.test()`` does: ``startup`` parses the
  DAG file (the stub, the loader, the factory), ``_prepare`` renders the templated fields (a mapped task
  is unmapped here, its XCom input pulled through the API) and stores them, and the task's pod is built
  with the rendered operator (``build_pod_request_obj``, what ``execute`` does first).
- not run: ``execute`` itself (creating the pod needs a cluster). A task with ``do_xcom_push`` returns
  the value read from ``<xcom.json>`` keyed by task id (what its pod would have written to
  /airflow/xcom/return.json), pushed by the runner's ``_push_xcom_if_needed`` (XCom + TaskMap rows
  through the API); then the runner's own success message ends the task.

Writes {"tis": [[task_id, map_index, state]], "waves": [[task_id, map_index], ...] per wave,
"rendered": {"task_id/map_index": {field: value}} (the rendered_task_instance_fields rows),
"pods": {"task_id/map_index": pod}, "dag_run": {...}}.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path


def _worker(ti_row, client, xcom: dict) -> dict:
    """What a worker does with one queued task instance, up to (not including) ``execute``."""
    import psutil
    import structlog
    from airflow.executors.workloads import ExecuteTask
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

    workload = ExecuteTask.make(ti_row)
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
            assert _prepare(ti, log, context) is None
            pod = ti.task.build_pod_request_obj(context, dry_run=True)
            result = xcom.get(ti.task_id) if ti.task.do_xcom_push else None
            _push_xcom_if_needed(result, ti, log)
            msg, _state = _handle_current_task_success(context, ti)
        supervisor.comms.send(msg)
        supervisor.update_task_state_if_needed()
    return ApiClient().sanitize_for_serialization(pod)


def main(dag_id: str, logical_date: str, xcom_file: str, out: str) -> None:
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskmap import TaskMap
    from airflow.models.xcom import XComModel
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import select

    xcom = json.loads(Path(xcom_file).read_text())
    client = None  # the execution API, served in-process on this DB (one for the whole run)
    when = datetime.fromisoformat(logical_date)
    run = trigger_dag(dag_id, triggered_by=DagRunTriggeredByType.TEST, logical_date=when, run_after=when)
    run_id = run.run_id
    with create_session() as session:
        created = session.execute(
            select(TaskInstance.task_id, TaskInstance.map_index)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .order_by(TaskInstance.task_id, TaskInstance.map_index)
        ).all()
    waves, pods = [], {}
    while True:
        with create_session() as session:
            dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
            dag = DBDagBag().get_dag_for_run(dag_run, session=session)
            dag_run.dag = dag
            client = client or InProcessTestSupervisor._api_client(dag)
            schedulable, _callback = dag_run.update_state(session=session, execute_callbacks=False)
            dag_run.schedule_tis(schedulable, session=session)
            session.commit()
            session.expire_all()  # schedule_tis updates rows behind the ORM's back (try_number)
            scheduled = session.scalars(
                select(TaskInstance)
                .where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.run_id == run_id,
                    TaskInstance.state == TaskInstanceState.SCHEDULED,
                )
                .order_by(TaskInstance.task_id, TaskInstance.map_index)
            ).all()
            for ti in scheduled:
                ti.set_state(TaskInstanceState.QUEUED, session=session)
            session.commit()
            if not scheduled:
                break
            waves.append([[ti.task_id, ti.map_index] for ti in scheduled])
            for ti in scheduled:
                pods[f"{ti.task_id}/{ti.map_index}"] = _worker(ti, client, xcom)
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
            "waves": waves,
            "rendered": {f"{r.task_id}/{r.map_index}": r.rendered_fields for r in rendered},
            "pods": pods,
        }
    Path(out).write_text(json.dumps(result, sort_keys=True, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:5])
