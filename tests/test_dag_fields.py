"""DAG-level manifest fields on real Airflow: time zones, params, owner links, first-run state."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

pytest.importorskip("airflow", reason="needs the [airflow] extra")

from airflow.serialization import serialized_objects

from dagfactory_s3 import factory, manifest, platform

from bad_inputs import GOOD
from conftest import EXAMPLES

pytestmark = [pytest.mark.airflow]

SEEDER = EXAMPLES / "reporting_seeder" / "airflow_dags"
_SERIALIZER = getattr(serialized_objects, "DagSerialization", None) or serialized_objects.SerializedDAG


def scheduler_view(dag):
    """The DAG as the scheduler and API server see it: serialized, then read back."""
    return _SERIALIZER.from_dict(json.loads(json.dumps(_SERIALIZER.to_dict(dag))))


def build(**fields):
    return factory.build_dag(manifest.parse(json.dumps({**GOOD, **fields}).encode(), file="m.json"))


class TestTimezone:
    def test_cron_keeps_local_time_across_daylight_saving(self):
        """0 3 * * * in Europe/Berlin: 02:00 UTC in winter, 01:00 UTC after the switch on 2024-03-31."""
        from airflow.timetables.base import TimeRestriction

        dag = scheduler_view(build(schedule="0 3 * * *", timezone="Europe/Berlin", start_date="2024-03-29"))
        assert dag.timezone.name == "Europe/Berlin"
        restriction = TimeRestriction(earliest=dag.start_date, latest=None, catchup=True)
        runs, last = [], None
        for _ in range(4):
            info = dag.timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
            runs.append(info.run_after.astimezone(timezone.utc).strftime("%m-%d %H:%M"))
            last = info.data_interval
        assert runs == ["03-29 02:00", "03-30 02:00", "03-31 01:00", "04-01 01:00"]

    def test_date_without_offset_is_midnight_local(self):
        dag = build(timezone="America/New_York", start_date="2024-07-01", end_date="2024-12-01T00:00:00Z")
        assert dag.start_date == datetime(2024, 7, 1, 4, tzinfo=timezone.utc)  # EDT is UTC-4
        assert dag.end_date == datetime(2024, 12, 1, tzinfo=timezone.utc)  # an explicit offset stays

    def test_without_timezone_nothing_changes(self):
        dag = build()
        assert dag.timezone.name == "UTC" and dag.start_date == datetime(2024, 1, 1, tzinfo=timezone.utc)


class TestParams:
    def test_trigger_form_schema_is_what_the_manifest_declared(self):
        """refresh_agency: the serialized params (the trigger form) carry the manifest's rules."""
        m = manifest.load(SEEDER / "reporting_seeder_refresh_agency.json")
        dag = scheduler_view(factory.build_dag(m))
        declared = m.data["params"]["agency"]
        param = dag.params.get_param("agency")
        assert param.value == declared["default"]
        assert param.description == declared["description"]
        assert param.schema == {k: v for k, v in declared.items() if k not in ("default", "description")}
        task = dag.get_task("refresh_agency")
        assert "{{ params.agency }}" in task.cmds

    def test_airflow_rejects_a_trigger_with_a_bad_value(self):
        from airflow.sdk.definitions.param import ParamValidationError

        dag = scheduler_view(
            factory.build_dag(manifest.load(SEEDER / "reporting_seeder_refresh_agency.json"))
        )
        assert dag.params.deep_merge({"agency": "north"}).validate() == {"agency": "north"}
        with pytest.raises(ParamValidationError, match="mars"):
            dag.params.deep_merge({"agency": "mars"}).validate()

    def test_a_manual_dag_may_require_a_param(self):
        """Without a schedule a param may have no default: the trigger must give it."""
        from airflow.sdk.definitions.param import ParamValidationError

        dag = scheduler_view(build(schedule=None, params={"day": {"type": "string", "format": "date"}}))
        with pytest.raises(ParamValidationError):
            dag.params.validate()
        assert dag.params.deep_merge({"day": "2024-03-05"}).validate() == {"day": "2024-03-05"}


class TestOwnersAndFirstRun:
    def test_owner_links(self):
        dag = factory.build_dag(manifest.load(SEEDER / "reporting_seeder_refresh_agency.json"))
        assert dag.owner_links == {"reporting-team": "https://wiki.example.com/teams/reporting"}

    def test_paused_on_create_manifest_then_policy_then_airflow(self, tmp_path):
        """The manifest's value wins; else the platform policy's; else Airflow's own setting (None here)."""
        policy_file = tmp_path / "policy.json"
        policy_file.write_text('{"paused_on_create": false}')
        policy = platform.load(str(policy_file))
        plain = manifest.parse(json.dumps(GOOD).encode(), file="m.json")
        assert factory.build_dag(plain).is_paused_upon_creation is None
        assert factory.build_dag(plain, policy).is_paused_upon_creation is False
        paused = manifest.parse(json.dumps({**GOOD, "paused_on_create": True}).encode(), file="m.json")
        assert factory.build_dag(paused, policy).is_paused_upon_creation is True
        assert scheduler_view(factory.build_dag(paused, policy)).is_paused_upon_creation is True
