"""The emulator's moto fixes answer exactly as moto does, without its whole-store work."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from stageflow.local import moto_fixes

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def aws(monkeypatch):
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        moto_fixes.apply()
        yield


def _table(ddb):
    ddb.create_table(
        TableName="h",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def _key(sk):
    return {"pk": {"S": "svc#prod"}, "sk": {"S": sk}}


def test_transaction_applies_and_a_failed_one_changes_nothing(aws):
    ddb = boto3.client("dynamodb")
    _table(ddb)
    ddb.put_item(TableName="h", Item={**_key("DEP#1"), "seq": {"N": "1"}})
    update = {
        "TableName": "h",
        "Key": _key("DEP#1"),
        "UpdateExpression": "SET seq = :new",
        "ConditionExpression": "seq = :old",
        "ExpressionAttributeValues": {":old": {"N": "1"}, ":new": {"N": "2"}},
    }
    ddb.transact_write_items(
        TransactItems=[
            {"Update": update},
            {"Put": {"TableName": "h", "Item": {**_key("VRD#1"), "v": {"S": "a"}}}},
        ]
    )
    assert ddb.get_item(TableName="h", Key=_key("DEP#1"))["Item"]["seq"] == {"N": "2"}
    assert ddb.get_item(TableName="h", Key=_key("VRD#1"))["Item"]["v"] == {"S": "a"}
    # the put comes first and is applied, then the stale update fails: both are undone
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "h", "Item": {**_key("VRD#2"), "v": {"S": "b"}}}},
                {"Put": {"TableName": "h", "Item": {**_key("VRD#1"), "v": {"S": "changed"}}}},
                {"Update": update},
            ]
        )
    assert e.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert "Item" not in ddb.get_item(TableName="h", Key=_key("VRD#2"))
    assert ddb.get_item(TableName="h", Key=_key("VRD#1"))["Item"]["v"] == {"S": "a"}
    assert ddb.get_item(TableName="h", Key=_key("DEP#1"))["Item"]["seq"] == {"N": "2"}


def test_transaction_cost_does_not_grow_with_the_table(aws):
    ddb = boto3.client("dynamodb")
    _table(ddb)
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends["123456789012"]["us-east-1"].tables["h"]
    for i in range(3000):  # verdict items of fifty rehearsals, put straight into the backend
        table.put_item({**_key(f"VRD#{i:06d}"), "results": {"L": [{"M": {"d": {"S": "x" * 50}}}] * 10}})
    t = time.perf_counter()
    for i in range(20):
        ddb.transact_write_items(TransactItems=[{"Put": {"TableName": "h", "Item": {**_key(f"N#{i}")}}}])
    assert (time.perf_counter() - t) / 20 < 0.25  # moto alone deep-copies 3000 items per call: seconds


def _dims(v):
    return [
        {"Name": "FunctionName", "Value": "f"},
        {"Name": "Resource", "Value": "f:live"},
        {"Name": "ExecutedVersion", "Value": str(v)},
    ]


def test_get_metric_statistics_answers_as_moto_does(aws):
    cw = boto3.client("cloudwatch")
    for m in range(30):
        ts = T0 + timedelta(minutes=m)
        cw.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[
                {"MetricName": "Invocations", "Dimensions": _dims(v), "Timestamp": ts, "Value": 10.0 + m + v}
                for v in (1, 2)
            ]
            + [{"MetricName": "Errors", "Dimensions": _dims(1), "Timestamp": ts, "Value": 1.0}],
        )
    cw.put_metric_data(
        Namespace="Other",
        MetricData=[{"MetricName": "Invocations", "Dimensions": _dims(1), "Timestamp": T0, "Value": 99.0}],
    )
    from moto.cloudwatch.models import CloudWatchBackend

    def ask():
        r = cw.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="Invocations",
            Dimensions=_dims(2),
            StartTime=T0 + timedelta(minutes=5),
            EndTime=T0 + timedelta(minutes=9),
            Period=60,
            Statistics=["Sum", "SampleCount"],
        )
        return sorted((d["Timestamp"], d["Sum"], d["SampleCount"]) for d in r["Datapoints"])

    fixed = ask()
    patched = CloudWatchBackend.get_all_metrics
    CloudWatchBackend.get_all_metrics = lambda self: self.metric_data + self.aws_metric_data  # moto's own
    try:
        assert ask() == fixed
    finally:
        CloudWatchBackend.get_all_metrics = patched
    assert [s for _, s, _ in fixed] == [17.0, 18.0, 19.0, 20.0]  # minutes 5..8 of version 2 only


def test_get_metric_data_answers_as_moto_does_and_reads_only_the_asked_metrics(aws):
    cw = boto3.client("cloudwatch")
    for m in range(30):
        ts = T0 + timedelta(minutes=m)
        cw.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[
                {"MetricName": "Invocations", "Dimensions": _dims(v), "Timestamp": ts, "Value": 10.0 + m + v}
                for v in (1, 2)
            ]
            + [{"MetricName": "Errors", "Dimensions": _dims(1), "Timestamp": ts, "Value": 1.0}]
            + [{"MetricName": "Unrelated", "Dimensions": _dims(1), "Timestamp": ts, "Value": 5.0}],
        )
    cw.put_metric_data(  # moto matches a query with dimensions by name in any namespace: kept as it is
        Namespace="Other",
        MetricData=[
            {
                "MetricName": "Invocations",
                "Dimensions": _dims(1),
                "Timestamp": T0 + timedelta(minutes=6),
                "Value": 99.0,
            }
        ],
    )
    from moto.cloudwatch.models import CloudWatchBackend

    def q(qid, name, v, stat):
        metric = {"Namespace": "AWS/Lambda", "MetricName": name, "Dimensions": _dims(v)}
        return {"Id": qid, "MetricStat": {"Metric": metric, "Period": 60, "Stat": stat}}

    def ask():
        r = cw.get_metric_data(
            MetricDataQueries=[
                q("a", "Invocations", 1, "Sum"),
                q("b", "Invocations", 2, "Maximum"),
                q("c", "Errors", 1, "Sum"),
                q("d", "Errors", 2, "Sum"),
            ],
            StartTime=T0 + timedelta(minutes=5),
            EndTime=T0 + timedelta(minutes=9),
            ScanBy="TimestampAscending",
        )
        return {x["Id"]: list(zip(x["Timestamps"], x["Values"], strict=True)) for x in r["MetricDataResults"]}

    fixed = ask()
    patched = CloudWatchBackend.get_all_metrics
    CloudWatchBackend.get_all_metrics = lambda self: self.metric_data + self.aws_metric_data  # moto's own
    try:
        assert ask() == fixed
    finally:
        CloudWatchBackend.get_all_metrics = patched
    assert [v for _, v in fixed["a"]] == [16.0, 17.0 + 99.0, 18.0, 19.0]  # minutes 5..8 (+ "Other")
    assert [v for _, v in fixed["b"]] == [17.0, 18.0, 19.0, 20.0]
    assert [v for _, v in fixed["c"]] == [1.0] * 4 and fixed["d"] == []


def test_get_metric_data_is_narrowed_to_the_asked_names_and_minutes():
    from moto.cloudwatch.models import CloudWatchBackend, MetricDatum

    moto_fixes.apply()
    backend = CloudWatchBackend("us-east-1", "123456789012")
    t0 = T0
    for m in range(100):
        for name in ("Invocations", "Errors", "Unrelated"):
            backend.metric_data.append(
                MetricDatum("AWS/Lambda", name, float(m), [], t0 + timedelta(minutes=m), None)
            )
    seen = {}
    all_metrics = CloudWatchBackend.get_all_metrics

    def counting(self):
        got = all_metrics(self)
        seen["n"] = len(got) - len(self.aws_metric_data)
        return got

    query = {
        "Id": "a",
        "MetricStat": {
            "Metric": {"Namespace": "AWS/Lambda", "MetricName": "Errors"},
            "Period": 60,
            "Stat": "Sum",
        },
    }
    CloudWatchBackend.get_all_metrics = counting
    try:
        res = backend.get_metric_data([query], t0 + timedelta(minutes=10), t0 + timedelta(minutes=12))
    finally:
        CloudWatchBackend.get_all_metrics = all_metrics
    assert seen["n"] == 2  # two minutes of one metric, not 300 datapoints
    assert res[0]["values"] == [10.0, 11.0]


def test_item_sizes_are_remembered_and_forgotten_on_update(aws):
    ddb = boto3.client("dynamodb")
    _table(ddb)
    ddb.put_item(TableName="h", Item={**_key("DEP#1"), "v": {"S": "a"}})
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends["123456789012"]["us-east-1"].tables["h"]
    item = next(iter(table.items.values()))[next(iter(next(iter(table.items.values()))))]
    small = item.size()
    ddb.update_item(TableName="h", Key=_key("DEP#1"), UpdateExpression="SET v = :v",
                    ExpressionAttributeValues={":v": {"S": "a" * 1000}})  # fmt: skip
    item = table.get_item(
        *dynamodb_backends["123456789012"]["us-east-1"].get_keys_value(table, _key("DEP#1"))
    )
    assert item.size() >= small + 999
    page = ddb.query(TableName="h", KeyConditionExpression="pk = :p AND begins_with(sk, :d)",
                     ExpressionAttributeValues={":p": {"S": "svc#prod"}, ":d": {"S": "DEP#"}})  # fmt: skip
    assert page["Items"][0]["v"] == {"S": "a" * 1000}


def test_queries_answer_as_moto_does_without_sorting_the_whole_table(aws):
    from moto.dynamodb.models.table import Table

    from tests.helpers.resources import create_history_table

    ddb = boto3.client("dynamodb")
    create_history_table(ddb, "hist")
    for env in ("prod", "dev"):
        for n in range(30):
            st = ("succeeded", "rolled_back", "in_progress")[n % 3]
            item = {"pk": f"svc#{env}", "sk": f"DEP#{n:04d}", "pk_status": f"svc#{env}#{st}"}
            item |= {"started_at": f"2026-{n:04d}", "v": str(n)}
            ddb.put_item(TableName="hist", Item={k: {"S": v} for k, v in item.items()})
            for v in range(5):
                ddb.put_item(
                    TableName="hist",
                    Item={"pk": {"S": f"svc#{env}"}, "sk": {"S": f"VRD#{n:04d}#{v:06d}"}, "x": {"S": "y"}},
                )
    ddb.put_item(TableName="hist", Item={"pk": {"S": "svc#prod"}, "sk": {"S": "EVT#1"}, "x": {"S": "e"}})

    def ask():
        out = []
        for kwargs in (
            {
                "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
                "ScanIndexForward": False,
                "Limit": 7,
            },
            {"KeyConditionExpression": "pk = :p AND begins_with(sk, :s)", "Limit": 4},
            {"KeyConditionExpression": "pk = :p", "Limit": 50},
            {"KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b"},
            {"KeyConditionExpression": "pk = :q AND begins_with(sk, :s)"},
        ):
            values = {":p": {"S": "svc#prod"}, ":q": {"S": "svc#none"}, ":s": {"S": "DEP#"}}
            values |= {":a": {"S": "DEP#0003"}, ":b": {"S": "VRD#0002"}}
            expr = kwargs["KeyConditionExpression"]
            used = {k: v for k, v in values.items() if k in expr}
            pages, start = [], None
            while True:  # every page, through LastEvaluatedKey
                r = ddb.query(TableName="hist", ExpressionAttributeValues=used, **kwargs, **start or {})
                pages.append((r["Items"], r["Count"], r["ScannedCount"], r.get("LastEvaluatedKey")))
                if "LastEvaluatedKey" not in r or len(pages) > 20:
                    break
                start = {"ExclusiveStartKey": r["LastEvaluatedKey"]}
            out.append(pages)
        r = ddb.query(
            TableName="hist",
            IndexName="by_status",
            KeyConditionExpression="pk_status = :s",
            ExpressionAttributeValues={":s": {"S": "svc#prod#succeeded"}},
            ScanIndexForward=False,
            Limit=3,
        )
        out.append((r["Items"], r.get("LastEvaluatedKey")))
        return out

    fixed = ask()
    patched = Table.all_items
    handed = []

    def counting(self):
        got = patched(self)
        handed.append(len(got))
        return got

    Table.all_items = counting
    try:
        ddb.query(
            TableName="hist",
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues={":p": {"S": "svc#prod"}, ":s": {"S": "DEP#"}},
        )
    finally:
        Table.all_items = patched
    assert handed == [30]  # the DEP# keys of one partition, not the table's 361 items

    def moto_all_items(self):  # moto's own: every item of the table, sorted
        items = [i for part in self.items.values() for i in part.values()]
        return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)

    Table.all_items = moto_all_items
    try:
        assert ask() == fixed
    finally:
        Table.all_items = patched
    dep_page = fixed[0][0][0]
    assert [i["sk"]["S"] for i in dep_page] == [f"DEP#{n:04d}" for n in range(29, 22, -1)]
    assert len(fixed[0]) == 5 and fixed[4] == [([], 0, 0, None)]


def test_a_cloudformation_stack_creates_tags_and_deletes_fis_experiment_templates(aws):
    """modules/chaos's stack of AWS::FIS::ExperimentTemplate (stageflow.local.moto_fis): the template is
    created in moto's FIS with its tags (FisChaos finds it by them), Ref is its id, the stack's deletion
    removes it."""
    import json

    from stageflow.chaos.run import FisChaos

    tags = {
        "stageflow:service": "svc",
        "stageflow:environment": "staging",
        "stageflow:experiment": "canary-errors",
    }
    body = {
        "Resources": {
            "CanaryErrors": {
                "Type": "AWS::FIS::ExperimentTemplate",
                "Properties": {
                    "Description": "errors",
                    "RoleArn": "arn:aws:iam::123456789012:role/svc-fis-staging",
                    "Actions": {
                        "canary_errors": {
                            "ActionId": "aws:lambda:invocation-error",
                            "Parameters": {"duration": "PT30M", "preventExecution": "true"},
                            "Targets": {"Functions": "function"},
                        }
                    },
                    "Targets": {
                        "function": {
                            "ResourceType": "aws:lambda:function",
                            "ResourceArns": ["arn:aws:lambda:us-east-1:123456789012:function:svc-staging"],
                            "SelectionMode": "ALL",
                        }
                    },
                    "StopConditions": [{"Source": "aws:cloudwatch:alarm", "Value": "arn:aws:cloudwatch:x"}],
                    "Tags": tags,
                },
            }
        },
        "Outputs": {"CanaryErrors": {"Value": {"Ref": "CanaryErrors"}}},
    }
    cfn, fis = boto3.client("cloudformation"), boto3.client("fis")
    cfn.create_stack(StackName="svc-staging-fis-templates", TemplateBody=json.dumps(body))
    (out,) = cfn.describe_stacks(StackName="svc-staging-fis-templates")["Stacks"][0]["Outputs"]
    tid = FisChaos(fis, "svc", "staging").template_id("canary-errors")
    assert out["OutputValue"] == tid
    t = fis.get_experiment_template(id=tid)["experimentTemplate"]
    assert t["actions"]["canary_errors"]["targets"] == {"Functions": "function"}
    assert t["targets"]["function"]["resourceType"] == "aws:lambda:function"
    assert t["stopConditions"] == [{"source": "aws:cloudwatch:alarm", "value": "arn:aws:cloudwatch:x"}]
    assert t["tags"] == tags
    cfn.delete_stack(StackName="svc-staging-fis-templates")
    assert fis.list_experiment_templates()["experimentTemplates"] == []


def test_put_composite_alarm_creates_a_composite_alarm_as_aws_does(aws):
    cw = boto3.client("cloudwatch")
    cw.put_metric_alarm(AlarmName="svc-errors-staging", MetricName="Errors", Namespace="AWS/Lambda",
                        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                        ComparisonOperator="GreaterThanThreshold")  # fmt: skip
    cw.put_composite_alarm(AlarmName="svc-staging-fis-stop", AlarmRule='ALARM("svc-errors-staging")',
                           AlarmDescription="stop", Tags=[{"Key": "Service", "Value": "svc"}])  # fmt: skip
    found = cw.describe_alarms(AlarmNames=["svc-staging-fis-stop"], AlarmTypes=["CompositeAlarm"])
    (composite,) = found["CompositeAlarms"]
    assert composite["AlarmRule"] == 'ALARM("svc-errors-staging")' and not found["MetricAlarms"]
    tags = cw.list_tags_for_resource(ResourceARN=composite["AlarmArn"])["Tags"]
    assert tags == [{"Key": "Service", "Value": "svc"}]
    cw.delete_alarms(AlarmNames=["svc-staging-fis-stop"])
    assert not cw.describe_alarms(AlarmNames=["svc-staging-fis-stop"])["CompositeAlarms"]
