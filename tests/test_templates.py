"""Templates are a checked language (dagfactory_s3.templates), not Python: hostile templates are refused
by the base install's checker (CI), at parse in a real DagBag, and at render in a real task run.

The table holds what a hostile package team tried (issue 23): code execution through ``macros`` and the
template context, other teams' Variables, Connections and XComs, template bombs, ``dag_run.conf``
injection, statements. The same function decides everywhere; these tests prove each surface calls it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dagfactory_s3 import manifest, templates
from dagfactory_s3.errors import ManifestError
from dagfactory_s3.platform import parse as parse_policy

from conftest import ROOT

SCOPE = templates.Scope(
    package="team_a",
    params=frozenset({"agency"}),
    tasks=frozenset({"extract", "load"}),
    granted=lambda kind, name: (
        (kind, name) in {("variables", "shared_region"), ("connections", "shared_warehouse")}
    ),
)

# (template, what the refusal names)
HOSTILE = [
    # code execution through macros' modules and the template context
    ("{{ macros.uuid.os.popen('id').read() }}", "macros.uuid is not allowed"),
    ("{{ macros.uuid.sys.modules['subprocess'] }}", "macros.uuid is not allowed"),
    ("{{ macros.json.codecs.open('/etc/passwd').read() }}", "macros.json is not allowed"),
    ("{{ macros.datetime.__class__ }}", "macros.datetime is not allowed"),
    ("{{ macros.random.seed }}", "macros.random is not allowed"),
    ("{{ self._TemplateReference__context }}", "'self' is not a template name"),
    ("{{ self.__init__.__globals__ }}", "'self' is not a template name"),
    ("{{ lipsum.__globals__.os.popen('id').read() }}", "'lipsum' is not a template name"),
    ("{{ cycler.__init__.__globals__.os }}", "'cycler' is not a template name"),
    ("{{ namespace.__init__ }}", "'namespace' is not a template name"),
    ("{{ range(10) }}", "'range' is not a template name"),
    ("{{ ti.task.__class__.__mro__ }}", "ti.task is not allowed"),
    ("{{ task.__init__.__globals__ }}", "attribute '__init__' is private"),
    ("{{ task.dag.fileloc }}", "task.dag is not allowed"),
    ("{{ dag.fileloc }}", "dag.fileloc is not allowed"),
    ("{{ dag.get_template_env() }}", "dag.get_template_env is not allowed"),
    ("{{ ds.__class__ }}", "ds is a plain value"),
    ("{{ ds.upper() }}", "ds is a plain value"),
    ("{{ data_interval_start.__class__.__mro__ }}", "attribute '__class__' is private"),
    ("{{ data_interval_start._datetime }}", "attribute '_datetime' is private"),
    ("{{ data_interval_start.tzinfo }}", "data_interval_start.tzinfo is not allowed"),
    ("{{ conf.as_dict() }}", "'conf' is not a template name"),
    ("{{ inlet_events }}", "'inlet_events' is not a template name"),
    ("{{ outlet_events['x'] }}", "'outlet_events' is not a template name"),
    ("{{ params.agency.__class__ }}", "attribute '__class__' is private"),
    ("{{ params.agency.upper() }}", "a call on a data value is not allowed"),
    # other teams' secrets
    ("{{ var.value.team_b_key }}", "Variable 'team_b_key' is not granted to package 'team_a'"),
    ("{{ var.json.team_b_config.password }}", "Variable 'team_b_config' is not granted"),
    ("{{ var.value.get('team_b_key') }}", "Variable 'get' is not granted"),
    ("{{ var.value['team_b_key'] }}", "Variable 'team_b_key' is not granted"),
    ("{{ var.value.team_a }}", "Variable 'team_a' is not granted"),  # the prefix is '<package>_'
    ("{{ var.value.team_ab_key }}", "Variable 'team_ab_key' is not granted"),
    ("{{ conn.team_b_db.password }}", "Connection 'team_b_db' is not granted"),
    ("{{ conn['team_b_db'].host }}", "Connection 'team_b_db' is not granted"),
    ("{{ conn.team_a_db.get_uri() }}", "conn.team_a_db.get_uri is not allowed"),
    ("{{ conn.team_a_db.extra_dejson.get('token') }}", "a call on a data value is not allowed"),
    ("{{ conn.team_b_db.extra_dejson }}", "Connection 'team_b_db' is not granted"),
    ("{{ conn.get('team_b_db') }}", "Connection 'get' is not granted"),
    # other DAGs' XComs
    ("{{ ti.xcom_pull(dag_id='team_b_x', task_ids='t') }}", "xcom_pull(dag_id=...) is not allowed"),
    ("{{ ti.xcom_pull('extract', 'team_b_x') }}", "task_ids as its only positional argument"),
    ("{{ ti.xcom_pull(task_ids='extract', run_id='r') }}", "xcom_pull(run_id=...) is not allowed"),
    ("{{ ti.xcom_pull(task_ids='extract', include_prior_dates=true) }}", "include_prior_dates"),
    ("{{ task_instance.xcom_pull(task_ids='other') }}", "task 'other', which is not a task of this DAG"),
    ("{{ ti.xcom_pull(task_ids=['extract', 'x']) }}", "task 'x', which is not a task of this DAG"),
    ("{{ ti.xcom_pull(task_ids=ds) }}", "expected string"),
    ("{{ ti.xcom_push(key='k', value=1) }}", "ti.xcom_push is not allowed"),
    ("{{ ti.get_template_context() }}", "ti.get_template_context is not allowed"),
    # template bombs and evaluation
    ("{{ 3**3000000 }}", "is not part of the template language"),
    ("{{ 'a' * 20000000 }}", "is not part of the template language"),
    ("{{ ds ~ ds }}", "is not part of the template language"),
    ("{{ 1 + 1 }}", "is not part of the template language"),
    ("{{ [1] * 99999999 }}", "is not part of the template language"),
    ("{{ 'x' if ds else 'y' }}", "unexpected 'if'"),
    ("{{ ds }}" * (templates.MAX_EXPRESSIONS + 1), f"more than {templates.MAX_EXPRESSIONS}"),
    ("x" * templates.MAX_TEMPLATE_CHARS + "{{ ds }}", f"longer than {templates.MAX_TEMPLATE_CHARS}"),
    (
        "{{ macros.ds_add(macros.ds_add(macros.ds_add(macros.ds_add(macros.ds_add(ds, 1), 1), 1), 1), 1) }}",
        "nests too deeply",
    ),
    ("{{ ds | attr('__class__') }}", "filter 'attr' is not allowed"),
    ("{{ ds | map('upper') }}", "filter 'map' is not allowed"),
    ("{{ ds | format(ds) }}", "filter 'format' is not allowed"),
    ("{{ ds | default(var.value.team_b_key) }}", "expected a literal"),
    # statements, comments, dag_run.conf injection
    ("{% for i in range(99999999) %}x{% endfor %}", "statements"),
    ("{% set x = macros %}{{ x }}", "statements"),
    ("{# hidden #}{{ ds }}", "comments"),
    ("{{ dag_run.conf['cmd'] }}", "dag_run.conf is not allowed by the platform policy"),
    ("{{ dag_run.conf.get('cmd', '') }}", "dag_run.conf is not allowed"),
    ("{{ dag_run.get_task_instances() }}", "dag_run.get_task_instances is not allowed"),
    ("{{ params.undeclared }}", "params.undeclared is not a parameter of this DAG"),
    ("{{ ds }", "without its '}}'"),
    ("{{ }}", "empty expression"),
    ("{{ 'a\\x00' }}", "is not part of the template language"),
]

GOOD = [
    "--date={{ ds }}",
    "{{ ds_nodash }}/{{ run_id }}",
    "{{ data_interval_start.strftime('%Y/%m/%d') }}",
    "{{ data_interval_end.subtract(days=1).isoformat() }}",
    "{{ logical_date.in_timezone('Europe/Paris').hour }}",
    "{{ macros.ds_add(ds, -7) }}",
    "{{ macros.ds_format(ds, '%Y-%m-%d', '%d/%m/%Y') }}",
    "{{ params.agency }}",
    "{{ params['agency'] | default('north') | upper }}",
    "{{ ti.xcom_pull(task_ids='extract') }}",
    "{{ ti.xcom_pull('extract', key='rows')[0] }}",
    "{{ task_instance.xcom_pull(task_ids=['extract', 'load'], map_indexes=0) }}",
    "{{ var.value.team_a_bucket }}",
    "{{ var.json.team_a_settings.region }}",
    "{{ var.value.shared_region }}",
    "{{ conn.team_a_db.host }}:{{ conn.team_a_db.port }}",
    "{{ conn.shared_warehouse.extra_dejson['account'] }}",
    "{{ dag.dag_id }}.{{ task.task_id }}.{{ ti.map_index }}.{{ ti.try_number }}",
    "{{ ds | replace('-', '') }}",
    "no template at all, even with } and {",
]


def test_the_table_is_large_enough():
    """Issue 23 asks for at least 60 hostile cases; each case is distinct."""
    assert len(HOSTILE) >= 60 and len({t for t, _ in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize(("text", "reason"), HOSTILE, ids=[f"h{i:02d}" for i in range(len(HOSTILE))])
def test_a_hostile_template_is_refused_with_its_reason(text, reason):
    """The checker (base install: no Airflow, no Jinja) refuses it and says why."""
    found = templates.problems(text, SCOPE)
    assert found and reason in found[0], found


@pytest.mark.parametrize("text", GOOD)
def test_the_documented_language_is_accepted(text):
    assert templates.problems(text, SCOPE) == []


def test_dag_run_conf_is_a_grant():
    """dag_run.conf is refused unless the policy grants it to the package."""
    granted = templates.Scope(package="team_a", conf=True)
    assert templates.problems("{{ dag_run.conf['day'] }}", granted) == []
    assert templates.problems("{{ dag_run.conf.get('day', '') }}", granted) == []
    assert templates.problems("{{ dag_run.conf.__class__ }}", granted)


# -- the same check in CI, at parse and at render ------------------------------------------------------


def _manifest(tmp_path: Path, argument: str, package: str = "team_a") -> Path:
    doc = {
        "schema_version": 1,
        "package": package,
        "dag_id": f"{package}_job",
        "schedule": None,
        "start_date": "2024-01-01",
        "params": {"agency": {"type": "string", "default": "north"}},
        "tasks": [
            {"task_id": "extract", "image": "registry.example.com/a/extract:1.0"},
            {
                "task_id": "load",
                "image": "registry.example.com/a/load:1.0",
                "depends_on": ["extract"],
                "arguments": ["--x", argument],
                "env": {"WHEN": "{{ ds }}"},
            },
        ],
    }
    path = tmp_path / f"{package}_job.json"
    path.write_text(json.dumps(doc))
    return path


POLICY = {
    "grants": {
        "team_a": {"variables": ["shared_region"], "dag_run_conf": False},
        "*": {"connections": ["shared_warehouse"]},
    }
}


def test_validate_refuses_a_hostile_template_with_file_and_pointer(tmp_path):
    """The publisher's validate (the CLI of the base install) names file, pointer and reason; exit 1."""
    path = _manifest(tmp_path, "{{ var.value.team_b_key }}")
    (tmp_path / "policy.json").write_text(json.dumps(POLICY))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagfactory_s3.publisher.cli",
            "validate",
            "--dag-path",
            str(tmp_path),
            "--package-name",
            "team_a",
            "--policy",
            str(tmp_path / "policy.json"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert (
        f"{path}: /tasks/1/arguments/1: template {{{{ var.value.team_b_key }}}}: Variable 'team_b_key'"
        in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_grants_come_from_the_policy(tmp_path):
    """A Variable the policy grants the package (or every package) is accepted; the same name is
    refused without the grant."""
    path = _manifest(tmp_path, "{{ var.value.shared_region }}-{{ conn.shared_warehouse.host }}")
    policy = parse_policy(json.dumps(POLICY).encode(), "policy.json")
    assert manifest.load(str(path), policy=policy).dag_id == "team_a_job"
    with pytest.raises(ManifestError, match="Variable 'shared_region' is not granted"):
        manifest.load(str(path))
    other = parse_policy(
        json.dumps({"grants": {"team_b": {"variables": ["shared_region"]}}}).encode(), "p.json"
    )
    with pytest.raises(ManifestError, match="Variable 'shared_region' is not granted to package 'team_a'"):
        manifest.load(str(path), policy=other)


# -- Airflow: the parse and a real task run ------------------------------------------------------------

SKIPPED_CI = """
import pendulum
from airflow.sdk import DAG
from dagfactory_s3.factory import ManifestPodOperator

# Built without the manifest's rules, as a DAG that skipped CI and the parse would be: the operator
# still checks what it renders.
with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    ManifestPodOperator(
        task_id="load",
        name="load",
        image="registry.example.com/a/load:1.0",
        labels={{"dagfactory-s3/package": "team_a"}},
        arguments={arguments!r},
    )
"""


def test_the_parse_refuses_a_hostile_template(tmp_path):
    """A real DagBag: the stub's import error is our one line with the manifest, pointer and reason."""
    pytest.importorskip("airflow", reason="needs the [airflow] extra")
    from dagfactory_s3 import stub

    from airflow_env import dag_bag

    path = _manifest(tmp_path, "{{ macros.uuid.os.popen('id').read() }}")
    stub_path = path.with_suffix(".py")
    stub_path.write_bytes(stub.render(path.name))
    bag = dag_bag(tmp_path)
    error = bag.import_errors[str(stub_path)]
    assert (
        f"{path}: /tasks/1/arguments/1: template {{{{ macros.uuid.os.popen('id').read() }}}}: macros.uuid"
        in error
    )
    assert not bag.dags


@pytest.mark.airflow
def test_a_task_run_renders_only_the_language(tmp_path):
    """Airflow's own scheduler and task runner: a granted Variable and the run's date render into the
    pod; another team's Variable and an escape through macros fail the task before anything renders."""
    pytest.importorskip("airflow", reason="needs the [airflow] extra")
    from airflow_env import RUN, airflow_env, migrate, process_once, run_dag

    home, dags = tmp_path / "home", tmp_path / "dags"
    home.mkdir()
    dags.mkdir()
    cases = {
        "team_a_good": ["{{ ds }}", "{{ var.value.team_a_region }}"],
        "team_a_steal": ["{{ var.value.team_b_key }}"],
        "team_a_shell": ["{{ macros.uuid.os.popen('echo pwned-$((6*7))').read() }}"],
    }
    for dag_id, arguments in cases.items():
        (dags / f"{dag_id}.py").write_text(SKIPPED_CI.format(dag_id=dag_id, arguments=arguments))
    secrets = {"AIRFLOW_VAR_TEAM_A_REGION": "eu-west-1", "AIRFLOW_VAR_TEAM_B_KEY": "team-b-secret"}
    migrate(home, dags)
    process_once(home, dags)
    good = run_dag(home, dags, "team_a_good", "2024-03-05T00:00:00+00:00", {}, **secrets)
    assert good["pods"]["load/-1"]["spec"]["containers"][0]["args"] == ["2024-03-05", "eu-west-1"]
    for dag_id, reason in (
        ("team_a_steal", "Variable 'team_b_key' is not granted to package 'team_a'"),
        ("team_a_shell", "macros.uuid is not allowed"),
    ):
        (home / "xcom.json").write_text("{}")
        argv = [
            sys.executable,
            str(RUN),
            dag_id,
            "2024-03-05T00:00:00+00:00",
            str(home / "xcom.json"),
            str(home / "o.json"),
        ]
        result = subprocess.run(
            argv,
            env=airflow_env(home, dags, **secrets),
            cwd=home,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode != 0
        assert (
            "TemplateError: task 'load': /arguments/0: template" in result.stderr and reason in result.stderr
        )
        assert (
            "team-b-secret" not in result.stderr + result.stdout
            and "pwned-42" not in result.stderr + result.stdout
        )


@pytest.mark.airflow
def test_every_hostile_template_is_an_import_error_at_parse(tmp_path, monkeypatch):
    """The whole table, one manifest per case in one dags folder, parsed by a real DagBag with the
    platform's policy: each is its stub's import error at the template's pointer; no DAG is built."""
    pytest.importorskip("airflow", reason="needs the [airflow] extra")
    from dagfactory_s3 import stub

    from airflow_env import dag_bag

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    monkeypatch.setenv("DAGFACTORY_POLICY", str(policy))
    dags = tmp_path / "dags"
    dags.mkdir()
    for i, (text, _reason) in enumerate(HOSTILE):
        path = _manifest(dags, text)
        case = dags / f"team_a_case{i:02d}.json"
        path.rename(case)
        case.write_text(case.read_text().replace('"team_a_job"', f'"team_a_case{i:02d}"'))
        (dags / f"team_a_case{i:02d}.py").write_bytes(stub.render(case.name))
    bag = dag_bag(dags)
    assert not bag.dags
    for i, (text, reason) in enumerate(HOSTILE):
        error = bag.import_errors[str(dags / f"team_a_case{i:02d}.py")]
        assert f"team_a_case{i:02d}.json: /tasks/1/arguments/1: " in error, (text, error[-300:])
        assert reason in error, (text, error[-300:])


@pytest.mark.airflow
def test_every_hostile_template_is_refused_when_airflow_renders_it():
    """Airflow's own rendering path (render_template_fields -> the operator's hook) on operators built
    without the manifest's rules: each hostile string raises TemplateError before Jinja sees it; the
    documented language renders."""
    pytest.importorskip("airflow", reason="needs the [airflow] extra")
    import pendulum
    from airflow.sdk import DAG

    from dagfactory_s3.errors import TemplateError
    from dagfactory_s3.factory import ManifestPodOperator

    def operator(dag_id: str, text: str) -> ManifestPodOperator:
        with DAG(
            dag_id, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), params={"agency": "n"}
        ):
            ManifestPodOperator(task_id="extract", name="e", image="registry.example.com/a/e:1")
            return ManifestPodOperator(
                task_id="load",
                name="l",
                image="registry.example.com/a/l:1",
                labels={"dagfactory-s3/package": "team_a"},
                arguments=["--x", text],
            )

    context = {"ds": "2024-03-05", "run_id": "manual__x", "params": {"agency": "n"}}
    for i, (text, reason) in enumerate(HOSTILE):
        op = operator(f"team_a_h{i:02d}", text)
        with pytest.raises(TemplateError) as caught:
            op.render_template_fields(dict(context))
        assert "task 'load': /arguments/1: " in str(caught.value) and reason in str(caught.value), text
        assert op.arguments == ["--x", text]  # nothing rendered
    op = operator("team_a_good", "{{ ds }}-{{ params.agency }}")
    op.render_template_fields(dict(context))
    assert op.arguments == ["--x", "2024-03-05-n"]
