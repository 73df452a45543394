"""The emulator's IAM check (stageflow.local.iam_enforcement) says what AWS would for the calls the deploy
and rollback paths make: allowed on the resources a policy names, denied elsewhere. Real emulator over
HTTP; enforcement on only inside the test."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config

from stageflow.packaging.lambda_zip import placeholder
from tests.helpers.iam_policies import enforcing
from tests.helpers.resources import create_history_table

pytestmark = [pytest.mark.emulator]

A = "arn:aws:{}:us-east-1:123456789012:{}"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


def test_scoped_policies_allow_their_resources_and_nothing_else(aws, emulator):
    iam = aws.client("iam")
    arn = iam.create_role(RoleName="svc-function-dev", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"][
        "Arn"
    ]
    aws.client("lambda").create_function(
        FunctionName="svc-dev",
        Runtime="python3.12",
        Role=arn,
        Handler="h.handler",
        Code={"ZipFile": placeholder("h.handler").data},
        Publish=True,
    )
    aws.client("lambda").create_alias(FunctionName="svc-dev", Name="live", FunctionVersion="1")
    for table in ("svc-deployments-dev", "other"):
        create_history_table(aws.client("dynamodb"), table)
    topic = aws.client("sns").create_topic(Name="svc-alerts-dev")["TopicArn"]
    aws.client("cloudwatch").put_metric_alarm(
        AlarmName="svc-errors-dev",
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    table = A.format("dynamodb", "table/svc-deployments-dev")
    function = A.format("lambda", "function:svc-dev")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["lambda:GetAlias", "lambda:UpdateAlias"],
                "Resource": [function, f"{function}:*"],
            },
            {"Effect": "Allow", "Action": ["lambda:PublishVersion"], "Resource": [function]},
            {
                "Effect": "Allow",
                "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"],
                "Resource": [table, f"{table}/index/*"],
            },
            {"Effect": "Allow", "Action": ["sns:Publish"], "Resource": [topic]},
            {
                "Effect": "Allow",
                "Action": ["cloudwatch:DescribeAlarms"],
                "Resource": [A.format("cloudwatch", "alarm:svc-*-dev")],
            },
            {"Effect": "Allow", "Action": ["iam:GetRole"], "Resource": [arn]},
            # a condition the emulator cannot see: never applies (stricter than AWS, never looser)
            {
                "Effect": "Allow",
                "Action": ["iam:PutRolePolicy"],
                "Resource": [arn],
                "Condition": {"StringEquals": {"iam:PermissionsBoundary": A.format("iam", "policy/b")}},
            },
        ],
    }
    iam.put_role_policy(RoleName="svc-function-dev", PolicyName="p", PolicyDocument=json.dumps(policy))
    c = aws.client("sts").assume_role(RoleArn=arn, RoleSessionName="iam-test")["Credentials"]

    def client(service):
        return boto3.client(
            service,
            endpoint_url=emulator.endpoint,
            region_name="us-east-1",
            aws_access_key_id=c["AccessKeyId"],
            aws_secret_access_key=c["SecretAccessKey"],
            aws_session_token=c["SessionToken"],
            config=Config(retries={"max_attempts": 1}),
        )

    item = {"pk": {"S": "a"}, "sk": {"S": "b"}}
    calls = {
        "get_alias": (True, lambda: client("lambda").get_alias(FunctionName="svc-dev", Name="live")),
        "update_alias": (
            True,
            lambda: client("lambda").update_alias(FunctionName="svc-dev", Name="live", FunctionVersion="1"),
        ),
        "publish_version": (True, lambda: client("lambda").publish_version(FunctionName="svc-dev")),
        "get_function_configuration": (
            False,
            lambda: client("lambda").get_function_configuration(FunctionName="svc-dev"),
        ),
        "put_item": (True, lambda: client("dynamodb").put_item(TableName="svc-deployments-dev", Item=item)),
        "put_item other table": (False, lambda: client("dynamodb").put_item(TableName="other", Item=item)),
        "query index": (
            True,
            lambda: client("dynamodb").query(
                TableName="svc-deployments-dev",
                IndexName="by_status",
                KeyConditionExpression="pk_status = :p",
                ExpressionAttributeValues={":p": {"S": "x"}},
            ),
        ),
        "transaction": (
            True,
            lambda: client("dynamodb").transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": "svc-deployments-dev",
                            "Item": {"pk": {"S": "c"}, "sk": {"S": "d"}},
                        }
                    }
                ]
            ),
        ),
        "transaction other table": (
            False,
            lambda: client("dynamodb").transact_write_items(
                TransactItems=[{"Put": {"TableName": "other", "Item": item}}]
            ),
        ),
        "publish": (True, lambda: client("sns").publish(TopicArn=topic, Message="m")),
        "describe own alarm": (
            True,
            lambda: client("cloudwatch").describe_alarms(AlarmNames=["svc-errors-dev"]),
        ),
        "describe another alarm": (
            False,
            lambda: client("cloudwatch").describe_alarms(AlarmNames=["zz-errors-prod"]),
        ),
        "get_role": (True, lambda: client("iam").get_role(RoleName="svc-function-dev")),
        "put_role_policy (condition unseen)": (
            False,
            lambda: client("iam").put_role_policy(
                RoleName="svc-function-dev", PolicyName="x", PolicyDocument=json.dumps(policy)
            ),
        ),
    }
    outcomes = {}
    with enforcing(emulator.endpoint):
        for name, (_, call) in calls.items():
            try:
                call()
                outcomes[name] = True
            except Exception as exc:  # noqa: BLE001 - the denial's form differs by service (below)
                text = str(exc)
                assert "AccessDenied" in text or "not authorized" in text, (name, text[:300])
                outcomes[name] = False
    assert outcomes == {name: want for name, (want, _) in calls.items()}
