"""Schedules: `validate` accepts a cron exactly when Airflow's own timetable can schedule it, and a
schedule with `data_intervals` is Airflow 2's data interval timetable, without one a trigger timetable."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dagfactory_s3.schedule import CRON_PRESETS, check_cron

from bad_inputs import GOOD

# Valid, invalid, and parseable-but-never-firing crons, presets and near-presets.
CRONS = [
    *CRON_PRESETS,
    "@once",
    "@annually",
    "@midnight",
    "@DAILY",
    "@Weekly",
    "@reboot",
    "@fortnightly",
    "@",
    "0 3 * * *",
    " 0 3 * * * ",
    "* * * * *",
    "*/15 * * * *",
    "0 */2 * * *",
    "0 9-17 * * mon-fri",
    "0 6 * jan-mar MON",
    "5-1 * * * *",
    "0 0 1-31/40 * *",
    "0 0 29 2 *",
    "0 0 L * *",
    "0 0 L 2 *",
    "0 0 15W * *",
    "0 0 ? * *",
    "0 3 * * mon#2",
    "0 0 * * 5#5",
    "0 0 * * 7",
    "0 0 31 * *",
    "0 0 30 2 *",
    "0 0 31 2 *",
    "0 0 31 4 *",
    "0 0 31 6,9,11 *",
    "* * 30 2 *",
    "0 0 1 1 7#5",
    "0 0 30 2 1",
    "61 * * * *",
    "0 24 * * *",
    "0 0 0 * *",
    "0 0 32 * *",
    "0 0 * 13 *",
    "0 0 * * 8",
    "*/0 * * * *",
    "0 0 * * 5L",
    "H * * * *",
    "0 3 * foo *",
    "a b c d e",
    "-1 * * * *",
    "1,,2 * * * *",
    "0 0 1 1 * 2030",
    "0 3 * *",
]


@pytest.fixture(scope="module")
def airflow_schedules():
    """Whether Airflow 3.3 builds a DAG with the schedule and its scheduler finds a first run: the SDK
    DAG's timetable, turned into the scheduler's (core) timetable, validated, asked for its next run."""
    pytest.importorskip("airflow")
    import pendulum
    from airflow.sdk import DAG
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    start = pendulum.datetime(2024, 1, 1, tz="UTC")

    def runs(expression: str) -> bool:
        try:
            dag = DAG("probe", schedule=expression, start_date=start, max_active_runs=1)
            timetable = coerce_to_core_timetable(dag.timetable)
            timetable.validate()
            restriction = TimeRestriction(earliest=start, latest=None, catchup=True)
            return (
                timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
                is not None
            )
        except Exception:
            return False

    return runs


@pytest.mark.parametrize("expression", CRONS)
def test_validate_and_airflow_agree(expression, airflow_schedules):
    """Our check accepts a schedule if and only if Airflow can run it; 6- and 7-field crons (seconds,
    years) are the one place we are stricter: the manifest format says 5 fields."""
    ours = check_cron(expression) is None
    theirs = airflow_schedules(expression)
    if len(expression.split()) > 5:
        assert not ours
    else:
        assert ours == theirs, (
            f"validate says {check_cron(expression)!r}, Airflow {'runs' if theirs else 'refuses'} it"
        )


def test_corpus_has_both_answers(airflow_schedules):
    """The agreement test is not vacuous: Airflow accepts some and refuses some, never-firing ones included."""
    answers = {e: airflow_schedules(e) for e in CRONS}
    assert sum(answers.values()) >= 20 and sum(not a for a in answers.values()) >= 15
    assert not answers["0 0 30 2 *"] and answers["0 0 29 2 *"]


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("0 0 30 2 *", "never fires"),
        ("61 * * * *", "minute field '61' is not valid (out of range)"),
        ("0 0 * * 8", "day of week field '8' is not valid"),
        ("0 3 * *", "must have 5 fields"),
        ("@fortnightly", "unknown preset '@fortnightly'"),
    ],
)
def test_refusals_name_the_problem(expression, reason):
    """Refusals say which field is wrong, or that the cron never fires."""
    assert reason in check_cron(expression)


# --- data intervals: Airflow 2's meaning of a schedule, on real Airflow ----------------------------


def _manifest_dag(schedule, **fields):
    """The factory's DAG of GOOD with ``schedule`` (and other top-level fields)."""
    from dagfactory_s3 import factory, manifest

    raw = json.dumps({**GOOD, "schedule": schedule, **fields}).encode()
    return factory.build_dag(manifest.parse(raw, file="m.json"))


def _hand_dag(schedule, start):
    """A hand-written Airflow DAG with ``schedule`` (a plain value or a timetable, as a person writes it)."""
    from airflow.sdk import DAG

    return DAG("hand", schedule=schedule, start_date=start, catchup=False, max_active_runs=1)


def _timetables():
    """The four timetable classes, from where the installed minor's DAG takes them (as factory.py does)."""
    try:
        from airflow.sdk import (
            CronDataIntervalTimetable,
            CronTriggerTimetable,
            DeltaDataIntervalTimetable,
            DeltaTriggerTimetable,
        )
    except ImportError:  # Airflow 3.0, 3.1
        from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable
        from airflow.timetables.trigger import CronTriggerTimetable, DeltaTriggerTimetable
    return CronDataIntervalTimetable, CronTriggerTimetable, DeltaDataIntervalTimetable, DeltaTriggerTimetable


def _serialized(dag):
    """The DAG's timetable as the scheduler reads it: (serialized JSON, core timetable)."""
    from airflow.serialization import serialized_objects

    serializer = getattr(serialized_objects, "DagSerialization", None) or serialized_objects.SerializedDAG
    data = json.loads(json.dumps(serializer.to_dict(dag)))
    return data["dag"]["timetable"], serializer.from_dict(data).timetable


def _runs(dag, steps=3):
    """The first ``steps`` runs the scheduler would create: (run after, interval start, interval end,
    logical date), in UTC, the logical date being what ``{{ ds }}`` shows."""
    from airflow.timetables.base import TimeRestriction

    timetable = _serialized(dag)[1]
    restriction = TimeRestriction(earliest=dag.start_date, latest=None, catchup=True)
    runs, last = [], None
    for _ in range(steps):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        if info is None:  # @once's one run is behind
            break
        interval = info.data_interval
        runs.append(tuple(t.astimezone(timezone.utc) for t in (info.run_after, *interval, info.logical_date)))
        last = interval
    return runs


def _same_dag_schedule(ours, theirs):
    """Both DAGs' timetables: the same class, serialized form, summary (what the UI shows, from the
    scheduler's timetable) and first runs."""
    assert type(ours.timetable) is type(theirs.timetable)
    (ours_json, ours_core), (theirs_json, theirs_core) = _serialized(ours), _serialized(theirs)
    assert ours_json == theirs_json
    assert ours_core.summary == theirs_core.summary
    assert _runs(ours) == _runs(theirs)


@pytest.mark.airflow
@pytest.mark.compat
class TestDataIntervals:
    def test_cron_with_data_intervals_is_airflow_2s_schedule(self):
        """{"cron": "0 2 * * *", "data_intervals": true} in Europe/Berlin is the hand-written
        CronDataIntervalTimetable: the run at 02:00 on Jan 2 covers [Jan 1 02:00, Jan 2 02:00) and its
        logical date ({{ ds }}) is Jan 1, as Airflow 2's schedule_interval="0 2 * * *" had it."""
        import pendulum

        cron_intervals = _timetables()[0]
        ours = _manifest_dag({"cron": "0 2 * * *", "data_intervals": True}, timezone="Europe/Berlin")
        start = pendulum.datetime(2024, 1, 1, tz="Europe/Berlin")
        _same_dag_schedule(
            ours, _hand_dag(cron_intervals("0 2 * * *", timezone=pendulum.timezone("Europe/Berlin")), start)
        )
        run_after, begin, end, logical = _runs(ours)[0]
        assert (run_after, begin, end, logical) == (
            datetime(2024, 1, 2, 1, tzinfo=timezone.utc),  # 02:00 in Berlin (UTC+1)
            datetime(2024, 1, 1, 1, tzinfo=timezone.utc),
            datetime(2024, 1, 2, 1, tzinfo=timezone.utc),
            datetime(2024, 1, 1, 1, tzinfo=timezone.utc),
        )

    def test_preset_with_data_intervals_uses_airflows_preset(self):
        """{"cron": "@daily", "data_intervals": true} is CronDataIntervalTimetable("@daily") in UTC:
        Airflow expands the preset; each day's run covers the day before."""
        import pendulum

        cron_intervals = _timetables()[0]
        ours = _manifest_dag({"cron": "@daily", "data_intervals": True})
        start = pendulum.datetime(2024, 1, 1, tz="UTC")
        _same_dag_schedule(
            ours, _hand_dag(cron_intervals("@daily", timezone=pendulum.timezone("UTC")), start)
        )
        assert _runs(ours)[1][1:] == (
            datetime(2024, 1, 2, tzinfo=timezone.utc),
            datetime(2024, 1, 3, tzinfo=timezone.utc),
            datetime(2024, 1, 2, tzinfo=timezone.utc),
        )

    def test_every_with_data_intervals_is_the_delta_data_interval_timetable(self):
        """{"every": "6h", "data_intervals": true} is DeltaDataIntervalTimetable(6h): the run at 06:00
        covers [00:00, 06:00) and its logical date is 00:00."""
        import pendulum

        delta_intervals = _timetables()[2]
        ours = _manifest_dag({"every": "6h", "data_intervals": True})
        start = pendulum.datetime(2024, 1, 1, tz="UTC")
        _same_dag_schedule(ours, _hand_dag(delta_intervals(timedelta(hours=6)), start))
        midnight, six = (
            datetime(2024, 1, 1, tzinfo=timezone.utc),
            datetime(2024, 1, 1, 6, tzinfo=timezone.utc),
        )
        assert _runs(ours)[0] == (six, midnight, six, midnight)

    @pytest.mark.parametrize(
        ("schedule", "plain"),
        [
            ("0 2 * * *", "0 2 * * *"),
            ({"cron": "0 2 * * *"}, "0 2 * * *"),
            ({"cron": "@daily", "data_intervals": False}, "@daily"),
            ({"every": "6h"}, timedelta(hours=6)),
            ({"every": "6h", "data_intervals": False}, timedelta(hours=6)),
        ],
    )
    def test_without_data_intervals_a_run_is_its_own_date(self, schedule, plain):
        """Without data_intervals a schedule is what a hand-written DAG with the plain value gets by
        default (a trigger timetable: the run at 02:00 is the logical date 02:00)."""
        import pendulum

        ours = _manifest_dag(schedule)
        _same_dag_schedule(ours, _hand_dag(plain, pendulum.datetime(2024, 1, 1, tz="UTC")))
        assert type(ours.timetable) in _timetables()[1::2]
        run_after, _, _, logical = _runs(ours)[0]
        assert logical == run_after

    def test_the_platforms_data_interval_setting_changes_no_manifests_dag(self, monkeypatch):
        """[scheduler] create_cron_data_intervals = True makes a hand-written plain cron or timedelta a
        data interval schedule; the factory's DAGs keep the manifest's meaning."""
        import pendulum

        monkeypatch.setenv("AIRFLOW__SCHEDULER__CREATE_CRON_DATA_INTERVALS", "True")
        cron_intervals, cron_trigger, _, delta_trigger = _timetables()
        start = pendulum.datetime(2024, 1, 1, tz="UTC")
        assert type(_hand_dag("0 2 * * *", start).timetable) is cron_intervals  # the setting is live
        assert type(_manifest_dag("0 2 * * *").timetable) is cron_trigger
        assert type(_manifest_dag({"every": "6h"}).timetable) is delta_trigger
        assert type(_manifest_dag({"cron": "0 2 * * *", "data_intervals": True}).timetable) is cron_intervals

    def test_once_stays_airflows_once(self):
        """{"cron": "@once"} (without data_intervals) is Airflow's OnceTimetable, like "@once"."""
        import pendulum

        ours = _manifest_dag({"cron": "@once"})
        _same_dag_schedule(ours, _hand_dag("@once", pendulum.datetime(2024, 1, 1, tz="UTC")))


def test_validate_names_file_pointer_and_reason_of_each_schedule_problem(tmp_path):
    """`airflow-dag-publisher validate` (one process over a folder) refuses data_intervals without
    periods (@once, @continuous), a bad cron in the object form, a non-boolean data_intervals and the
    same in an environment's schedule, each by file, JSON pointer and reason; the good forms pass."""
    cases = {
        "once": ({"cron": "@once", "data_intervals": True}, {}),
        "continuous": ({"cron": "@continuous", "data_intervals": True}, {}),
        "bad_cron": ({"cron": "61 2 * * *", "data_intervals": True}, {}),
        "not_bool": ({"cron": "0 2 * * *", "data_intervals": "yes"}, {}),
        "overlay": (
            "0 2 * * *",
            {"environments": {"prod": {"schedule": {"cron": "@once", "data_intervals": True}}}},
        ),
        "good": (
            {"cron": "0 2 * * *", "data_intervals": True},
            {"environments": {"prod": {"schedule": {"every": "1d", "data_intervals": True}}}},
        ),
        "good_once": ({"cron": "@once", "data_intervals": False}, {}),
    }
    for name, (schedule, extra) in cases.items():
        doc = {**GOOD, "dag_id": f"{GOOD['package']}_{name}", "schedule": schedule, **extra}
        (tmp_path / f"{doc['dag_id']}.json").write_text(json.dumps(doc))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagfactory_s3.publisher.cli",
            "validate",
            "--package-name",
            GOOD["package"],
            "--dag-path",
            str(tmp_path),
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    problems = {
        (Path(p["file"]).stem.removeprefix(f"{GOOD['package']}_"), p["pointer"]): p["message"]
        for p in json.loads(result.stdout)["problems"]
    }
    once = (
        "@once has no data intervals (it is not a repeating period): remove data_intervals, "
        "or give a cron or preset such as @daily"
    )
    assert sorted(problems) == [
        ("bad_cron", "/schedule/cron"),
        ("continuous", "/schedule/data_intervals"),
        ("not_bool", "/schedule/data_intervals"),
        ("once", "/schedule/data_intervals"),
        ("overlay", "/environments/prod/schedule/data_intervals"),
    ]
    assert problems[("once", "/schedule/data_intervals")] == once
    assert problems[("overlay", "/environments/prod/schedule/data_intervals")] == once
    assert problems[("continuous", "/schedule/data_intervals")].startswith(
        "@continuous has no data intervals"
    )
    assert "minute field '61' is not valid" in problems[("bad_cron", "/schedule/cron")]
    assert problems[("not_bool", "/schedule/data_intervals")] == "expected boolean, got string"


@pytest.mark.parametrize(
    ("schedule", "shown"),
    [
        ("0 2 * * *", "0 2 * * * (Europe/Berlin)"),
        ({"cron": "0 2 * * *"}, "0 2 * * * (Europe/Berlin)"),
        ({"cron": "0 2 * * *", "data_intervals": True}, "0 2 * * * (Europe/Berlin), data intervals"),
        ({"cron": "@once", "data_intervals": False}, "@once"),
        ({"every": "6h", "data_intervals": True}, "every 6h, data intervals"),
        ({"every": "6h"}, "every 6h"),
    ],
)
def test_list_and_plan_show_the_schedule_and_its_meaning(schedule, shown):
    """`list`, `plan` and `render` show a cron object like the string, and say when runs cover periods."""
    from dagfactory_s3.publisher.terminal import schedule_text

    assert schedule_text({"schedule": schedule, "timezone": "Europe/Berlin"}) == shown
