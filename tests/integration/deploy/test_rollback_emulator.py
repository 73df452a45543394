"""Rollback paths against the emulator through the real CLI: manual, --to, alarm events, notifications."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stageflow.deploy.publish import publish
from stageflow.deploy.traffic import AliasTraffic
from stageflow.factory import Factory
from stageflow.packaging.lambda_zip import package
from stageflow.report import Reporter
from tests.helpers.resources import make_service

pytestmark = pytest.mark.emulator


def setup_canary_in_flight(project, emulator_state, weight=10):
    f = Factory(
        config_path=project / "stageflow.toml",
        local=True,
        state_dir=emulator_state,
        reporter=Reporter(quiet=True),
    )
    out = make_service(f, "dev")
    lam = f.aws.client("lambda")
    pub = publish(lam, out.function_name, out.alias_name, package(project / "app"))
    traffic = AliasTraffic(lam, out.function_name, out.alias_name)
    traffic.set_canary(pub.previous_version, pub.version, weight)
    return f, out, pub, traffic


def alarm_notification(alarm: str, state: str = "ALARM") -> dict:
    """The shape a Lambda subscribed to SNS receives for a CloudWatch alarm."""
    message = {
        "AlarmName": alarm,
        "AlarmDescription": "Lambda errors > 5 in 5 min",
        "AWSAccountId": "123456789012",
        "NewStateValue": state,
        "NewStateReason": "Threshold Crossed: 1 datapoint [12.0] > 5.0",
        "StateChangeTime": "2026-11-22T01:02:03.456+0000",
        "Region": "US East (N. Virginia)",
        "OldStateValue": "OK",
        "Trigger": {
            "MetricName": "Errors",
            "Namespace": "AWS/Lambda",
            "Statistic": "SUM",
            "Period": 60,
            "EvaluationPeriods": 5,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 5.0,
        },
    }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                    "TopicArn": "arn:aws:sns:us-east-1:123456789012:sample-api-deploys-dev",
                    "Subject": f'ALARM: "{alarm}" in US East (N. Virginia)',
                    "Message": json.dumps(message),
                    "Timestamp": "2026-11-22T01:02:03.500Z",
                },
            }
        ]
    }


def test_alarm_event_rolls_back_then_second_is_noop(project, emulator_state, aws, cli, tmp_path):
    f, out, pub, traffic = setup_canary_in_flight(project, emulator_state)
    assert traffic.state().weights == {pub.previous_version: 90, pub.version: 10}
    event = tmp_path / "alarm.json"
    event.write_text(json.dumps(alarm_notification(out.alarm_names[0])))
    env = {"STAGEFLOW_STATE_DIR": str(emulator_state)}
    cfg = str(project / "stageflow.toml")
    r = cli("--config", cfg, "--local", "--json", "rollback", "--from-alarm-event", str(event), env=env)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)["rollbacks"]
    assert res[0]["changed"] and res[0]["to_version"] == pub.previous_version and res[0]["trigger"] == "alarm"
    assert traffic.state().weights == {pub.previous_version: 100}
    again = cli(
        "--config",
        cfg,
        "--local",
        "--json",
        "rollback",
        "--from-alarm-event",
        "-",
        input=event.read_text(),
        env=env,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rollbacks"][0]["changed"] is False
    assert traffic.state().weights == {pub.previous_version: 100}
    ok_event = alarm_notification(out.alarm_names[0], state="OK")
    r3 = cli(
        "--config",
        cfg,
        "--local",
        "--json",
        "rollback",
        "--from-alarm-event",
        "-",
        input=json.dumps(ok_event),
        env=env,
    )
    assert r3.returncode == 0 and json.loads(r3.stdout)["rollbacks"] == []


def test_rollback_to_unknown_version_changes_nothing(project, emulator_state, aws, cli):
    f, out, pub, traffic = setup_canary_in_flight(project, emulator_state, weight=50)
    before = traffic.state().weights
    r = cli(
        "--config",
        str(project / "stageflow.toml"),
        "--local",
        "rollback",
        "dev",
        "--to",
        "99",
        env={"STAGEFLOW_STATE_DIR": str(emulator_state)},
    )
    assert r.returncode == 2
    assert r.stderr.strip().startswith("stageflow: error: version '99'") and r.stderr.count("\n") == 1
    assert traffic.state().weights == before


def test_manual_rollback_notifies_sns_and_slack(project, emulator_state, aws, cli):
    f, out, pub, traffic = setup_canary_in_flight(project, emulator_state, weight=50)
    sqs = aws.client("sqs")
    q = sqs.create_queue(QueueName="deploys")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=out.topic_arn, Protocol="sqs", Endpoint=qarn)
    posts = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            posts.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        r = cli(
            "--config",
            str(project / "stageflow.toml"),
            "--local",
            "rollback",
            "dev",
            "--reason",
            "pager",
            env={
                "STAGEFLOW_STATE_DIR": str(emulator_state),
                "STAGEFLOW_SLACK_WEBHOOK": f"http://127.0.0.1:{server.server_port}/hook",
            },
        )
    finally:
        server.shutdown()
    assert r.returncode == 0, r.stderr
    assert traffic.state().weights == {pub.previous_version: 100}
    msgs = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    bodies = [json.loads(json.loads(m["Body"])["Message"]) for m in msgs]
    assert any(b["kind"] == "rolled_back" and b["to_version"] == pub.previous_version for b in bodies)
    assert posts and "rolled back" in posts[0]["text"] and "pager" in posts[0]["text"]


def test_rollback_of_a_fresh_environment_says_its_only_version_serves_and_exits_0(
    project, emulator_state, aws, cli
):
    f = Factory(
        config_path=project / "stageflow.toml",
        local=True,
        state_dir=emulator_state,
        reporter=Reporter(quiet=True),
    )
    make_service(f, "dev")  # built, one version serving, no deployment recorded
    before = aws.client("lambda").get_alias(FunctionName="sample-api-dev", Name="live")
    env = {"STAGEFLOW_STATE_DIR": str(emulator_state)}
    r = cli("--config", str(project / "stageflow.toml"), "--local", "rollback", "dev", env=env)
    assert r.returncode == 0, r.stderr  # `make rollback` on a fresh environment is not a failed session
    v = before["FunctionVersion"]
    assert f"nothing to roll back to: no deployment recorded; v{v}, the only version, serves all" in r.stderr
    assert f"dev: already on v{v}; nothing changed" in r.stdout
    after = aws.client("lambda").get_alias(FunctionName="sample-api-dev", Name="live")
    assert after["FunctionVersion"] == before["FunctionVersion"] and not after.get("RoutingConfig")


def test_rollback_of_an_environment_never_deployed_changes_nothing(project, emulator_state, aws, cli):
    import shutil

    # outputs remembered by earlier tests on this (since reset) emulator would make this the
    # "state is gone" case (tests/reliability/test_deploy_faults.py); here nothing was ever deployed
    shutil.rmtree(emulator_state / "outputs", ignore_errors=True)
    env = {"STAGEFLOW_STATE_DIR": str(emulator_state)}
    r = cli("--config", str(project / "stageflow.toml"), "--local", "rollback", "dev", env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines()[-1] == (
        "stageflow: error: dev has not been deployed on the local emulator: Terraform has no outputs for it "
        "(deploy it first: stageflow deploy dev)"
    )
    assert aws.client("lambda").list_functions()["Functions"] == []
    assert [t for t in aws.client("dynamodb").list_tables()["TableNames"] if "deployments" in t] == []
