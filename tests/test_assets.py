"""Assets couple DAGs by data across packages: a real asset event creates the consumer's DagRun.

The real ``airflow dag-processor`` parses three examples into a SQLite metadata DB: the producers
pipeline_processing_example_job (its job's ``outlets``: the orders) and reporting_seeder_refresh_all
(refresh_tables' ``outlets``: the tables), and the consumer reporting_seeder_orders_report, scheduled
on both with ``require: all``. Each producer then runs once through Airflow's own scheduler and task
runner (tests/airflow_run.py): the runner's success message carries the task's outlets and the
execution API records the asset event, as for any finished task. After each, the scheduler's own
dag-run creation step runs (tests/airflow_assets.py). Everything asserted is read from Airflow's tables.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_publish import ENV, RS, dags_dir, main, publish_args

from dagfactory_s3 import assets, manifest

from airflow_env import dags_folder_with_examples, db_rows, migrate, process_once, run_airflow, run_dag
from conftest import EXAMPLES, ORDERS_REPORT

PRODUCER = EXAMPLES / "pipeline_processing" / "airflow_dags" / "pipeline_processing_example_job.json"
TABLES = EXAMPLES / "reporting_seeder" / "airflow_dags" / "reporting_seeder_refresh_all.json"
CONSUMER = "reporting_seeder_orders_report"
ORDERS = "s3://etl-data/pipeline_processing/orders"  # as Airflow stores it (no trailing slash)
TABLES_URI = "s3://etl-data/reporting_seeder/tables"
SCHEDULER_STEP = Path(__file__).resolve().parent / "airflow_assets.py"


def _consumer_runs(home: Path) -> list[tuple]:
    return db_rows(home, f"select run_type, state from dag_run where dag_id = '{CONSUMER}'")


def _schedule(home: Path, dags: Path) -> None:
    run_airflow(home, dags, sys.executable, str(SCHEDULER_STEP))


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    """Parse, run the orders producer, schedule, run the tables producer, schedule; the tables
    as they were after each step."""
    pytest.importorskip("airflow", reason="needs the [airflow] extra")
    root = tmp_path_factory.mktemp("assets")
    home, dags = root / "home", root / "dags"
    home.mkdir()
    dags_folder_with_examples(dags, [PRODUCER, TABLES, ORDERS_REPORT])
    migrate(home, dags)
    process_once(home, dags)
    seen: dict = {"parsed": {"errors": db_rows(home, "select filename from import_error")}}
    seen["parsed"]["references"] = db_rows(
        home,
        "select r.dag_id, a.name, a.uri from dag_schedule_asset_reference r "
        "join asset a on a.id = r.asset_id order by a.uri",
    )
    seen["parsed"]["outlets"] = db_rows(
        home,
        "select r.dag_id, r.task_id, a.uri from task_outlet_asset_reference r "
        "join asset a on a.id = r.asset_id order by r.dag_id, a.uri",
    )
    seen["orders"] = run_dag(home, dags, "pipeline_processing_example_job", "2024-03-05T03:00:00+00:00", {})
    _schedule(home, dags)
    seen["after_orders"] = {
        "runs": _consumer_runs(home),
        "queued": db_rows(
            home,
            "select q.target_dag_id, a.uri from asset_dag_run_queue q join asset a on a.id = q.asset_id",
        ),
    }
    seen["tables"] = run_dag(home, dags, "reporting_seeder_refresh_all", "2024-03-05T00:00:00+00:00", {})
    _schedule(home, dags)
    seen["after_tables"] = {
        "runs": _consumer_runs(home),
        "events": db_rows(
            home,
            "select a.uri, e.source_dag_id, e.source_task_id from asset_event e "
            "join asset a on a.id = e.asset_id order by a.uri",
        ),
        "consumed": db_rows(
            home,
            "select a.uri, e.source_dag_id from dagrun_asset_event x "
            "join dag_run r on r.id = x.dag_run_id join asset_event e on e.id = x.event_id "
            f"join asset a on a.id = e.asset_id where r.dag_id = '{CONSUMER}' order by a.uri",
        ),
        "queued": db_rows(home, "select count(*) from asset_dag_run_queue"),
    }
    return seen


@pytest.mark.airflow
class TestAssetTriggeredRun:
    def test_dag_processor_records_the_schedule_and_the_outlets(self, steps):
        """The consumer is scheduled on both assets (named by their normalized URIs) and each producer
        task's outlet is known to Airflow before anything runs."""
        parsed = steps["parsed"]
        assert parsed["errors"] == []
        assert parsed["references"] == [(CONSUMER, ORDERS, ORDERS), (CONSUMER, TABLES_URI, TABLES_URI)]
        assert parsed["outlets"] == [
            ("pipeline_processing_example_job", "example_job", ORDERS),
            (CONSUMER, "orders_report", "s3://etl-data/reporting_seeder/orders_report"),
            ("reporting_seeder_refresh_all", "refresh_tables", TABLES_URI),
        ]

    def test_one_of_two_assets_is_not_enough_with_require_all(self, steps):
        """After the orders producer succeeded, its asset event is queued for the consumer, and the
        scheduler creates no run: require all still waits for the tables."""
        assert steps["orders"]["dag_run"]["state"] == "success"
        assert steps["after_orders"]["queued"] == [(CONSUMER, ORDERS)]
        assert steps["after_orders"]["runs"] == []

    def test_the_second_asset_creates_an_asset_triggered_run(self, steps):
        """Once refresh_tables succeeded too, the scheduler's own step creates one asset_triggered
        DagRun of the consumer, which consumed both events (and the queue is emptied)."""
        after = steps["after_tables"]
        assert steps["tables"]["dag_run"]["state"] == "success"
        assert after["runs"] == [("asset_triggered", "queued")]
        assert after["events"] == [
            (ORDERS, "pipeline_processing_example_job", "example_job"),
            (TABLES_URI, "reporting_seeder_refresh_all", "refresh_tables"),
        ]
        assert after["consumed"] == [
            (ORDERS, "pipeline_processing_example_job"),
            (TABLES_URI, "reporting_seeder_refresh_all"),
        ]
        assert after["queued"] == [(0,)]


# Asset URIs and what Airflow's own Asset() makes of them (see test_normalize_matches_airflow).
NORMALIZED = [
    "s3://etl-data/orders/",
    "s3://etl-data/orders",
    "s3://etl-data/",
    "s3://etl-data",
    "s3://b/x?b=2&a=1",
    "s3://b/x//",
    "gs://bucket/path/to/",
    "file:///data/orders/",
    "file://host/share",
    "postgres://db.example.com:5432/warehouse/public/orders",
    "x-custom://anything/goes/",
    "x-custom://q?b=1&a=2",
    "s3://user@bucket/key",
    "s3://b/a%20b",
    "http://example.com",
]


@pytest.mark.airflow
@pytest.mark.parametrize("uri", NORMALIZED)
def test_normalize_matches_airflow(uri):
    """dagfactory_s3.assets.normalize (no Airflow) gives the URI Airflow's Asset stores, for URIs
    the manifest accepts."""
    pytest.importorskip("airflow", reason="needs the [airflow] extra")
    from airflow.sdk import Asset

    assert assets.check_uri(uri) is None
    assert assets.normalize(uri) == Asset(uri=uri).uri


@pytest.mark.airflow
@pytest.mark.parametrize("uri", ["s3://", "gs://", "s3:///key", "airflow://x", "AIRFLOW://x"])
def test_what_airflow_or_its_normalizers_refuse_is_refused(uri):
    """URIs Airflow refuses at parse time (the reserved scheme) or its s3/gs normalizers refuse (no
    bucket) are refused by the manifest check too; without the provider Airflow would store them."""
    assert assets.check_uri(uri) is not None


def test_same_asset_spelled_twice_in_one_list_is_refused():
    """Two spellings of one asset in one schedule are one asset to Airflow: refused with both pointers."""
    raw = ORDERS_REPORT.read_text().replace(
        '"s3://etl-data/reporting_seeder/tables/"', '"s3://etl-data/pipeline_processing/orders"'
    )
    with pytest.raises(manifest.ManifestError) as caught:
        manifest.parse(raw.encode(), file="r.json")
    assert [str(p) for p in caught.value.problems()] == [
        "r.json: /schedule/assets/1: the same asset as /schedule/assets/0 (Airflow stores both as "
        "'s3://etl-data/pipeline_processing/orders'); list it once"
    ]


@pytest.mark.airflow
@pytest.mark.parametrize(
    ("schedule", "condition"),
    [
        ({"assets": ["s3://a/x/", "s3://a/y"]}, "AssetAll"),
        ({"assets": ["s3://a/x/", "s3://a/y"], "require": "any"}, "AssetAny"),
        ({"assets": ["s3://a/x/"], "require": "any"}, "AssetAny"),
    ],
)
def test_factory_builds_the_condition_the_manifest_chose(schedule, condition):
    """require all/any (default all) becomes AssetAll/AssetAny, also around a single asset, each asset
    named by its normalized URI; outlets become Assets on the operator."""
    pytest.importorskip("airflow", reason="needs the [airflow] extra")
    import json

    from dagfactory_s3 import factory

    doc = json.loads(ORDERS_REPORT.read_text())
    doc["schedule"] = schedule
    dag = factory.build_dag(manifest.parse(json.dumps(doc).encode(), file="r.json"))
    built = dag.timetable.asset_condition
    assert type(built).__name__ == condition
    expected = [assets.normalize(u) for u in schedule["assets"]]
    assert [(a.name, a.uri) for a in built.objects] == [(u, u) for u in expected]
    (outlet,) = dag.get_task("orders_report").outlets
    assert (outlet.name, outlet.uri) == ("s3://etl-data/reporting_seeder/orders_report",) * 2


def test_publish_records_the_condition_and_list_shows_it(s3, bucket, examples_copy, capsys):
    """The consumer publishes like any manifest (package reporting_seeder); the release record keeps
    its schedule as written and `list` prints the condition."""
    import shutil

    src = dags_dir(examples_copy, RS)
    shutil.copy(ORDERS_REPORT, src / ORDERS_REPORT.name)
    assert main(capsys, *publish_args(bucket, RS, src))[0] == 0
    code, out, _ = main(capsys, "list", "--bucket", bucket, "--environment", ENV, "--package-name", RS)
    assert code == 0
    assert (
        "  reporting_seeder_orders_report  on all of s3://etl-data/pipeline_processing/orders/, "
        "s3://etl-data/reporting_seeder/tables/  " in out
    )


def test_own_outlet_with_another_required_asset_is_accepted():
    """require all over the DAG's own outlet and another asset waits for the other one: no loop, accepted."""
    import json

    doc = json.loads(ORDERS_REPORT.read_text())
    doc["schedule"]["assets"].append("s3://etl-data/reporting_seeder/orders_report/")
    assert manifest.parse(json.dumps(doc).encode(), file="r.json").dag_id == CONSUMER
