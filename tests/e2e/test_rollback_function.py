"""The rollback function as Terraform deploys it: the built zip, extracted into an empty directory, run in
a fresh interpreter that has only that directory and boto3 on its path, with exactly the environment
Terraform set on the emulator's rollback function; and the filter policy Terraform set on its
subscription. One Terraform apply per session (tests/conftest.py ``deployed``)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stageflow.deploy.publish import publish
from stageflow.deploy.records import Deployment, State
from stageflow.history import DynamoHistory
from stageflow.isotime import iso
from stageflow.notify import Message, SnsNotifier
from stageflow.packaging.lambda_zip import with_files

# one Terraform apply of the dev root in the first test's setup: ~100 s idle, up to ~300 s on a busy machine
pytestmark = [pytest.mark.e2e, pytest.mark.emulator, pytest.mark.terraform, pytest.mark.timeout(1200)]
BOTO3_DEPS = ("boto3", "botocore", "jmespath", "dateutil", "urllib3", "s3transfer", "six.py")
DRIVER = """
import importlib, json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
module, _, func = sys.argv[3].rpartition(".")
fn = getattr(importlib.import_module(module), func)
import stageflow
assert stageflow.__file__.startswith(sys.argv[1]), stageflow.__file__
print(json.dumps(fn(json.load(open(sys.argv[4])), None)))
"""


@pytest.fixture(scope="module")
def boto3_only(tmp_path_factory) -> Path:
    """A directory holding only boto3 and what it imports (symlinks into this venv)."""
    import boto3

    site = Path(boto3.__file__).resolve().parents[1]
    d = tmp_path_factory.mktemp("boto3-only")
    for name in BOTO3_DEPS:
        if (site / name).exists():
            (d / name).symlink_to(site / name)
    return d


def extract(zip_path: Path, dst: Path) -> Path:
    dst.mkdir()
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dst)
    return dst


def alarm_sns_event(aws, alarm_name: str, topic_arn: str, state: str = "ALARM") -> dict:
    """The Lambda SNS event for a CloudWatch alarm notification, from the alarm the emulator holds."""
    alarm = aws.client("cloudwatch").describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"][0]
    message = {
        "AlarmName": alarm["AlarmName"],
        "AlarmDescription": alarm.get("AlarmDescription"),
        "AWSAccountId": topic_arn.split(":")[4],
        "AlarmConfigurationUpdatedTimestamp": "2026-11-22T01:00:00.000+0000",
        "NewStateValue": state,
        "NewStateReason": "Threshold Crossed: 1 datapoint [12.0 (22/11/26 01:01:00)] was greater than 5.0",
        "StateChangeTime": "2026-11-22T01:02:03.456+0000",
        "Region": "US East (N. Virginia)",
        "AlarmArn": alarm["AlarmArn"],
        "OldStateValue": "OK",
        "OKActions": [],
        "AlarmActions": alarm.get("AlarmActions", []),
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": alarm.get("MetricName", ""),
            "Namespace": alarm.get("Namespace", ""),
            "StatisticType": "Statistic",
            "Statistic": "SUM",
            "Dimensions": [{"value": d["Value"], "name": d["Name"]} for d in alarm.get("Dimensions", [])],
            "Period": alarm.get("Period", 60),
            "EvaluationPeriods": alarm.get("EvaluationPeriods", 1),
            "ComparisonOperator": alarm.get("ComparisonOperator", "GreaterThanThreshold"),
            "Threshold": alarm.get("Threshold", 5.0),
            "TreatMissingData": "notBreaching",
        },
    }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{topic_arn}:0e5c1f8a-4c1f-4b34-9f55-1a2b3c4d5e6f",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                    "TopicArn": topic_arn,
                    "Subject": f'ALARM: "{alarm_name}" in US East (N. Virginia)',
                    "Message": json.dumps(message),
                    "Timestamp": "2026-11-22T01:02:03.500Z",
                    "MessageAttributes": {},
                },
            }
        ]
    }


def subscribe_queue(aws, topic_arn: str, name: str, attributes: dict | None = None) -> str:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=arn,
        Attributes=attributes or {},
        ReturnSubscriptionArn=True,
    )
    return url


def drain(aws, url: str) -> list[dict]:
    sqs = aws.client("sqs")
    got = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not msgs:
            return got
        for m in msgs:
            got.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def rollback_config(aws, env) -> dict:
    return aws.client("lambda").get_function_configuration(
        FunctionName=env.raw_outputs["rollback_function_name"]
    )


def run_handler(env, aws, boto3_only: Path, tmp_path: Path, event: dict) -> subprocess.CompletedProcess:
    """The rollback zip Terraform deployed, extracted and run like the Lambda runtime would."""
    cfg = rollback_config(aws, env)
    code = extract(env.project / "build" / "lambda" / "stageflow-rollback.zip", tmp_path / "task")
    (tmp_path / "driver.py").write_text(DRIVER)
    (tmp_path / "event.json").write_text(json.dumps(event))
    child_env = dict(cfg["Environment"]["Variables"])  # exactly what Terraform set
    child_env.update(
        AWS_ENDPOINT_URL=env.endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # pragma: allowlist secret
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/nonexistent/config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/credentials",
    )
    return subprocess.run(
        [sys.executable, "-I", "-S", str(tmp_path / "driver.py"), str(code), str(boto3_only), cfg["Handler"]]
        + [str(tmp_path / "event.json")],
        env=child_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ship_versions(env, aws) -> tuple[str, str]:
    """Two new versions of the service (v_good, v_bad) published on Terraform's function."""
    out = env.raw_outputs
    lam = aws.client("lambda")
    base = (env.project / "build" / "lambda" / "sample-api.zip").read_bytes()
    from stageflow.packaging.lambda_zip import LambdaZip

    z = LambdaZip(base, "", "", 0)
    stamp = datetime.now(UTC).isoformat().encode()
    good = publish(lam, out["function_name"], out["alias_name"], with_files(z, {"good.txt": stamp}))
    bad = publish(lam, out["function_name"], out["alias_name"], with_files(z, {"bad.txt": stamp}))
    return good.version, bad.version


def record(
    history: DynamoHistory, dep_id: str, version: str, status: str, previous: str | None
) -> Deployment:
    dep = Deployment(
        deployment_id=dep_id,
        environment="dev",
        service="sample-api",
        version=version,
        previous_version=previous,
        status=status,
        phase="baking" if status == "in_progress" else status,
        started_at=iso(datetime.now(UTC)),
        who="tests",
        ended_at=None if status == "in_progress" else iso(datetime.now(UTC)),
        state=State.from_json(
            {"phase": "baking" if status == "in_progress" else status, "step": 0, "weight": 10}
        ),
    )
    history.create(dep)
    return dep


@contextlib.contextmanager
def alarm_in(aws, alarm_name: str, state: str = "ALARM"):
    """The alarm really in ``state`` while the handler asks DescribeAlarms; back to OK after."""
    cw = aws.client("cloudwatch")
    cw.set_alarm_state(AlarmName=alarm_name, StateValue=state, StateReason="tests")
    try:
        yield
    finally:
        cw.set_alarm_state(AlarmName=alarm_name, StateValue="OK", StateReason="tests")


def history_of(env, aws) -> DynamoHistory:
    return DynamoHistory(aws.client("dynamodb"), env.raw_outputs["history_table"], "sample-api", "dev")


def test_apply_on_a_fresh_copy_built_the_packages_terraform_reads(deployed):
    lam_dir = deployed.project / "build" / "lambda"
    assert (
        deployed.built_fresh or deployed.apply_seconds == 0.0
    )  # 0.0: kept from an earlier run and (lam_dir / "sample-api.zip").is_file()
    with zipfile.ZipFile(lam_dir / "stageflow-rollback.zip") as zf:
        names = set(zf.namelist())
    assert "stageflow/rollback/handler.py" in names and "stageflow/rollback/core.py" in names
    assert not any(n.startswith(("stageflow/cli", "stageflow/factory", "stageflow/config")) for n in names)


def test_the_function_rolls_the_alias_back_from_its_zip_with_only_terraforms_environment(
    deployed, boto3_only, tmp_path
):
    env, aws = deployed, deployed.aws
    deployed.clear_history()
    out = env.raw_outputs
    cfg = rollback_config(aws, env)
    assert cfg["Handler"] == "stageflow.rollback.handler.handler"
    assert set(cfg["Environment"]["Variables"]) >= {
        "STAGEFLOW_SERVICE",
        "STAGEFLOW_ENVIRONMENT",
        "STAGEFLOW_FUNCTION_NAME",
        "STAGEFLOW_ALIAS_NAME",
        "STAGEFLOW_HISTORY_TABLE",
        "STAGEFLOW_TOPIC_ARN",
    }
    good, bad = ship_versions(env, aws)
    lam = aws.client("lambda")
    lam.update_alias(
        FunctionName=out["function_name"],
        Name=out["alias_name"],
        FunctionVersion=good,
        RoutingConfig={"AdditionalVersionWeights": {bad: 0.1}},
    )
    history = history_of(env, aws)
    record(history, "20261122T000000Z-aaaaaa", good, "succeeded", deployed.base)
    flight = record(history, "20261122T010000Z-bbbbbb", bad, "in_progress", good)
    history.acquire_lock(flight.deployment_id, "tests", datetime.now(UTC))
    notes = subscribe_queue(aws, out["topic_arn"], "rollback-notes-ok")

    with alarm_in(aws, out["alarm_names"][0]):
        r = run_handler(
            env, aws, boto3_only, tmp_path, alarm_sns_event(aws, out["alarm_names"][0], out["topic_arn"])
        )

    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])["rolled_back"]
    assert result[0]["to_version"] == good and result[0]["trigger"] == "alarm"
    alias = lam.get_alias(FunctionName=out["function_name"], Name=out["alias_name"])
    assert alias["FunctionVersion"] == good
    assert not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
    events = [e for e in history.events() if e["kind"] == "rollback"]
    assert events and events[0]["to_version"] == good
    assert events[0]["trigger"] == "alarm" and events[0]["who"] == f"alarm:{out['alarm_names'][0]}"
    closed = history.get(flight.deployment_id)
    assert closed.status == "rolled_back" and closed.state["phase"] == "rolled_back"
    assert history.lock() is None
    bodies = [json.loads(m["Message"]) for m in drain(aws, notes)]
    assert [b["kind"] for b in bodies] == ["rolled_back", "incident"] and bodies[0]["to_version"] == good
    incident = bodies[1]  # every rollback opens an incident, and the channels link its post-mortem
    assert incident["trigger"] == "alarm" and incident["restored_version"] == good
    assert incident["bad_version"] == bad and f"--postmortem {incident['key']}" in incident["text"]
    assert incident["key"] in [i["key"] for i in history.incidents()]


def test_when_the_good_version_is_gone_it_pages_and_raises(deployed, boto3_only, tmp_path):
    env, aws = deployed, deployed.aws
    deployed.clear_history()
    out = env.raw_outputs
    good, bad = ship_versions(env, aws)
    aws.client("lambda").update_alias(
        FunctionName=out["function_name"], Name=out["alias_name"], FunctionVersion=bad
    )
    history = history_of(env, aws)
    record(history, "20261122T000000Z-cccccc", "9999", "succeeded", "1")  # a version that no longer exists
    record(history, "20261122T010000Z-dddddd", bad, "succeeded", "9999")
    notes = subscribe_queue(aws, out["topic_arn"], "rollback-notes-failed")

    with alarm_in(aws, out["alarm_names"][0]):
        r = run_handler(
            env, aws, boto3_only, tmp_path, alarm_sns_event(aws, out["alarm_names"][0], out["topic_arn"])
        )

    assert r.returncode != 0 and "RollbackFailed" in r.stderr and "v9999 no longer exists" in r.stderr
    alias = aws.client("lambda").get_alias(FunctionName=out["function_name"], Name=out["alias_name"])
    assert alias["FunctionVersion"] == bad  # nothing moved
    bodies = [json.loads(m["Message"]) for m in drain(aws, notes)]
    assert [b["kind"] for b in bodies] == ["rollback_failed"]
    assert "automatic rollback FAILED — page a person" in bodies[0]["text"] and bodies[0]["page"] is True
    assert not [e for e in history.events() if e["kind"] == "rollback"]


@pytest.mark.parametrize("case", ["outside-the-environment", "not-in-alarm-now"])
def test_a_crafted_alarm_moves_nothing_and_is_recorded_as_refused(deployed, boto3_only, tmp_path, case):
    """Issue 24 item 4 (finding 4): a crafted ALARM for an alarm outside the environment, and one for an
    alarm of the environment that is not in ALARM now, move nothing; each is a refused trigger."""
    env, aws = deployed, deployed.aws
    deployed.clear_history()
    out = env.raw_outputs
    good, bad = ship_versions(env, aws)
    lam = aws.client("lambda")
    lam.update_alias(FunctionName=out["function_name"], Name=out["alias_name"], FunctionVersion=bad)
    history = history_of(env, aws)
    record(history, "20261122T000000Z-eeeeee", good, "succeeded", deployed.base)
    record(history, "20261122T010000Z-ffffff", bad, "succeeded", good)
    before = lam.get_alias(FunctionName=out["function_name"], Name=out["alias_name"])
    if case == "outside-the-environment":
        name = "totally-made-up"
        message = {"AlarmName": name, "NewStateValue": "ALARM", "NewStateReason": "crafted"}
        event = {"Records": [{"Sns": {"Message": json.dumps(message)}}]}
    else:
        name = out["alarm_names"][0]
        aws.client("cloudwatch").set_alarm_state(AlarmName=name, StateValue="OK", StateReason="tests")
        event = alarm_sns_event(aws, name, out["topic_arn"])

    r = run_handler(env, aws, boto3_only, tmp_path, event)

    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["rolled_back"] == []
    after = lam.get_alias(FunctionName=out["function_name"], Name=out["alias_name"])
    assert (after["FunctionVersion"], after.get("RoutingConfig")) == (
        before["FunctionVersion"],
        before.get("RoutingConfig"),
    )
    assert after["FunctionVersion"] == bad
    assert not [e for e in history.events() if e["kind"] == "rollback"]
    refused = [e for e in history.events() if e["kind"] == "trigger_refused"]
    assert len(refused) == 1 and refused[0]["alarm_name"] == name
    assert ("not an alarm of this environment" if case == "outside-the-environment" else "OK now") in (
        refused[0]["reason"]
    )
    assert "refused rollback trigger" in r.stdout


def test_only_alarm_messages_in_alarm_match_the_rollback_subscription_filter(deployed):
    env, aws = deployed, deployed.aws
    out = env.raw_outputs
    sns = aws.client("sns")
    rollback_arn = rollback_config(aws, env)["FunctionArn"]
    subs = [
        s
        for s in sns.list_subscriptions_by_topic(TopicArn=out["topic_arn"])["Subscriptions"]
        if s["Protocol"] == "lambda" and s["Endpoint"] == rollback_arn
    ]
    assert len(subs) == 1
    attrs = sns.get_subscription_attributes(SubscriptionArn=subs[0]["SubscriptionArn"])["Attributes"]
    assert attrs["FilterPolicyScope"] == "MessageBody"
    # the same policy on a queue: what arrives there is what would invoke the rollback function
    url = subscribe_queue(
        aws,
        out["topic_arn"],
        "rollback-filter-probe",
        {"FilterPolicy": attrs["FilterPolicy"], "FilterPolicyScope": attrs["FilterPolicyScope"]},
    )
    alarm = out["alarm_names"][0]
    own_alarm = f"{out['rollback_function_name'].replace('-rollback-', '-rollback-errors-')}"
    assert aws.client("cloudwatch").describe_alarms(AlarmNames=[own_alarm])["MetricAlarms"]
    assert own_alarm not in out["alarm_names"]  # it pages; it does not gate canaries

    def alarm_message(name, state):
        return alarm_sns_event(aws, name, out["topic_arn"], state)["Records"][0]["Sns"]["Message"]

    notifier = SnsNotifier(sns, out["topic_arn"])
    for kind in ("started", "rolled_back", "rollback_failed"):  # deploy notifications on the same topic
        notifier.send(Message(kind, "dev", "sample-api", "20261122T000000Z-eeeeee", f"{kind} ALARM"))
    sns.publish(TopicArn=out["topic_arn"], Message=alarm_message(alarm, "OK"))
    sns.publish(TopicArn=out["topic_arn"], Message=alarm_message(own_alarm, "ALARM"))
    sns.publish(TopicArn=out["topic_arn"], Message=alarm_message(alarm, "ALARM"))

    arrived = [json.loads(m["Message"]) for m in drain(aws, url)]
    assert [(m.get("AlarmName"), m.get("NewStateValue")) for m in arrived] == [(alarm, "ALARM")]


def test_the_rollback_zip_is_reproducible(deployed):
    from stageflow.packaging.lambda_zip import rollback_package

    data = (deployed.project / "build" / "lambda" / "stageflow-rollback.zip").read_bytes()
    assert rollback_package().data == data == rollback_package().data
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
    assert os.path.getsize(deployed.project / "build" / "lambda" / "stageflow-rollback.zip") < 200_000
