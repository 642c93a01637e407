"""Schedules: `validate` accepts a cron exactly when Airflow's own timetable can schedule it."""

from __future__ import annotations

import pytest

from dagfactory_s3.schedule import CRON_PRESETS, check_cron

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
