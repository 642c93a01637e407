"""Alerts: manifests name notifiers the platform defines in its policy file; the factory builds them from a
fixed registry of notifier kinds (a manifest or a policy never names Python)."""

from __future__ import annotations

import email
import json
import socketserver
import threading
from pathlib import Path

import pytest
from test_publish import dags_dir, main, objects, publish_args

from dagfactory_s3 import manifest, platform
from dagfactory_s3.errors import ConfigError, ManifestError

from bad_inputs import GOOD, PACKAGE

POLICY = {
    "notifiers": {
        "oncall-email": {
            "kind": "smtp",
            "to": ["oncall@example.com"],
            "from_email": "airflow@example.com",
            "subject": "{{ dag.dag_id }} failed",
            "html_content": "Run failed; see the task logs.",
            "smtp_conn_id": "smtp_alerts",
        },
        "team-slack": {"kind": "slack", "slack_conn_id": "slack_reporting", "channel": "#reporting-alerts"},
    },
    "grants": {"*": {"notifiers": ["oncall-email", "team-slack"]}},
}


def policy_file(tmp_path: Path, document: object = POLICY) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    return path


def with_alerts(**task0: object) -> dict:
    doc = json.loads(json.dumps(GOOD))
    doc["alerts"] = {"on_failure": ["oncall-email"]}
    doc["deadline"] = {"after": "2h", "notify": ["oncall-email"]}
    doc["tasks"][0].update(task0)
    return doc


class TestPolicyNotifiers:
    @pytest.mark.parametrize(
        ("notifiers", "text"),
        [
            ({"Oncall": {"kind": "smtp"}}, "/notifiers/Oncall: a notifier name is lowercase"),
            (
                {"x": {"kind": "python", "callable": "os.system"}},
                "/notifiers/x/kind: one of pagerduty, slack",
            ),
            ({"x": {"kind": "smtp", "module": "os"}}, "/notifiers/x/module: not an option of smtp"),
            ({"x": {"kind": "smtp", "to": 5}}, "/notifiers/x/to: expected a string or a list of strings"),
            ([], "/notifiers: expected an object of named notifiers"),
        ],
    )
    def test_bad_notifier_definitions(self, tmp_path, notifiers, text):
        path = policy_file(tmp_path, {"notifiers": notifiers})
        with pytest.raises(ConfigError) as info:
            platform.load(str(path))
        assert str(info.value).startswith(f"{path}: {text}")


class TestManifestNames:
    def test_unknown_names_are_refused_with_pointers(self, tmp_path):
        policy = platform.load(str(policy_file(tmp_path)))
        doc = with_alerts(alerts={"on_retry": ["pager"]})
        doc["task_defaults"] = {"alerts": {"on_failure": ["team-slak"]}}
        doc["deadline"]["notify"] = ["oncall-email", "oncall"]
        with pytest.raises(ManifestError) as info:
            manifest.parse(json.dumps(doc).encode(), file="m.json", policy=policy)
        defined = f"the platform policy ({policy.file}) defines: oncall-email, team-slack"
        assert str(info.value).splitlines() == [
            f"m.json: /deadline/notify/1: unknown notifier 'oncall'; {defined}",
            f"m.json: /task_defaults/alerts/on_failure/0: unknown notifier 'team-slak'; {defined}",
            f"m.json: /tasks/0/alerts/on_retry/0: unknown notifier 'pager'; {defined}",
        ]

    def test_without_a_policy_file_names_are_not_checked_in_ci(self):
        """CI without the platform's file cannot know the names; the factory checks them in Airflow."""
        manifest.parse(json.dumps(with_alerts()).encode(), file="m.json")

    def test_validate_and_publish_with_the_policy(self, tmp_path, capsys, s3, bucket, examples_copy):
        src = dags_dir(examples_copy, PACKAGE)
        path = src / "pipeline_processing_example_job.json"
        doc = json.loads(path.read_text())
        doc["alerts"] = {"on_failure": ["oncall"]}
        path.write_text(json.dumps(doc))
        policy = policy_file(tmp_path)
        code, _, err = main(capsys, "validate", "--dag-path", str(src), "--policy", str(policy))
        assert code == 1 and f"{path}: /alerts/on_failure/0: unknown notifier 'oncall'" in err
        code, _, err = main(capsys, *publish_args(bucket, PACKAGE, src, "--policy", str(policy)))
        assert code == 1 and "unknown notifier 'oncall'" in err and "Traceback" not in err
        assert s3.count("PUT") == 0 and objects(s3, bucket) == {}


@pytest.mark.airflow
class TestFactory:
    @pytest.fixture
    def policy(self, tmp_path):
        pytest.importorskip("airflow")
        return platform.load(str(policy_file(tmp_path)))

    def test_notifiers_reach_dag_and_tasks(self, policy):
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        from dagfactory_s3 import factory

        doc = with_alerts(alerts={"on_retry": ["oncall-email"], "on_success": ["oncall-email"]})
        dag = factory.build_dag(
            manifest.parse(json.dumps(doc).encode(), file="m.json", policy=policy), policy
        )
        (notifier,) = dag.on_failure_callback
        assert isinstance(notifier, SmtpNotifier) and notifier.to == ["oncall@example.com"]
        assert notifier.smtp_conn_id == "smtp_alerts"
        task = dag.get_task("extract")
        assert [type(n) for n in task.on_retry_callback + task.on_success_callback] == [SmtpNotifier] * 2
        assert dag.get_task("load").on_retry_callback in (None, [])

    def test_deadline_alert_is_serialized(self, policy):
        from airflow.serialization import serialized_objects

        from dagfactory_s3 import factory

        dag = factory.build_dag(
            manifest.parse(json.dumps(with_alerts()).encode(), file="m.json", policy=policy), policy
        )
        serializer = getattr(serialized_objects, "DagSerialization", None) or serialized_objects.SerializedDAG
        (deadline,) = serializer.to_dict(dag)["dag"]["deadline"]
        assert deadline["reference"] == {"reference_type": "DagRunQueuedAtDeadline"}
        assert deadline["interval"]["__data__"] == 7200.0
        callback = deadline["callback"]["__data__"]
        assert callback["path"] == "airflow.providers.smtp.notifications.smtp.SmtpNotifier"
        assert callback["kwargs"]["to"] == ["oncall@example.com"]

    def test_notifier_whose_provider_is_missing_is_a_clear_error(self, policy):
        from dagfactory_s3 import factory

        doc = with_alerts(alerts={"on_failure": ["team-slack"]})
        with pytest.raises(ManifestError) as info:
            factory.build_dag(manifest.parse(json.dumps(doc).encode(), file="m.json", policy=policy), policy)
        assert str(info.value) == (
            "m.json: /tasks/0/alerts/on_failure/0: notifier 'team-slack' (slack) needs "
            "apache-airflow-providers-slack installed in the Airflow image"
        )

    def test_the_image_without_a_policy_refuses_named_notifiers(self):
        pytest.importorskip("airflow")
        from dagfactory_s3 import factory

        with pytest.raises(ManifestError, match="no platform policy: none is served beside the packages"):
            factory.build_dag(manifest.parse(json.dumps(with_alerts()).encode(), file="m.json"))

    def test_failure_notifier_sends_mail_through_smtp(self, policy, monkeypatch):
        """The DAG's on_failure notifier, called as Airflow calls it, delivers to an SMTP server."""
        from dagfactory_s3 import factory

        received: list[bytes] = []
        server = socketserver.TCPServer(("127.0.0.1", 0), _sink(received))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            port = server.server_address[1]
            monkeypatch.setenv(
                "AIRFLOW_CONN_SMTP_ALERTS",
                json.dumps(
                    {
                        "conn_type": "smtp",
                        "host": "127.0.0.1",
                        "port": port,
                        "extra": {"disable_ssl": True, "disable_tls": True},
                    }
                ),
            )
            doc = with_alerts()
            dag = factory.build_dag(
                manifest.parse(json.dumps(doc).encode(), file="m.json", policy=policy), policy
            )
            (notifier,) = dag.on_failure_callback
            notifier({"dag": dag})
        finally:
            server.shutdown()
            server.server_close()
        (raw,) = received
        message = email.message_from_bytes(raw)
        assert message["Subject"] == "pipeline_processing_nightly failed"
        assert message["To"] == "oncall@example.com" and message["From"] == "airflow@example.com"
        bodies = [part.get_payload(decode=True) for part in message.walk() if not part.is_multipart()]
        assert b"Run failed; see the task logs." in bodies


def _sink(received: list[bytes]) -> type[socketserver.StreamRequestHandler]:
    """A minimal SMTP server that keeps each message's DATA (enough for smtplib)."""

    class Sink(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"220 sink ESMTP\r\n")
            while line := self.rfile.readline():
                verb = line[:4].upper()
                if verb == b"DATA":
                    self.wfile.write(b"354 go ahead\r\n")
                    body = b""
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        body += chunk
                    received.append(body)
                    self.wfile.write(b"250 queued\r\n")
                elif verb == b"QUIT":
                    self.wfile.write(b"221 bye\r\n")
                    return
                elif verb == b"EHLO":
                    self.wfile.write(b"250 sink\r\n")
                else:
                    self.wfile.write(b"250 ok\r\n")

    return Sink
