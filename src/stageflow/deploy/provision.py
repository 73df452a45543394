"""The local provisioner: builds in the emulator what the environment's Terraform root builds in AWS
(function, `live` alias, alarms, topic, history table) and yields the same outputs contract.

Used in local mode when Terraform cannot build the AWS resources because the hashicorp/aws provider is
not available offline, and local mode does not apply the environment roots to the emulator. It says
so: ``DeployOutputs.source == "provisioner"``.
"""

from __future__ import annotations

import json
from datetime import datetime

from stageflow.build.lambda_zip import placeholder
from stageflow.config import Config, EnvironmentConfig
from stageflow.errors import LocalGuardError
from stageflow.history import Deployment, DynamoHistory, iso, new_deployment_id
from stageflow.outputs import DeployOutputs

ASSUME = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


def names(service: str, env: str) -> dict[str, str]:
    return {
        "function": f"{service}-{env}",
        "role": f"{service}-lambda-{env}",
        "topic": f"{service}-deploys-{env}",
        "table": f"{service}-deployments-{env}",
        "alarm_errors": f"{service}-errors-{env}",
        "alarm_p95": f"{service}-p95-{env}",
        "alarm_throttles": f"{service}-throttles-{env}",
    }


def alarm_names(service: str, env_name: str, env: EnvironmentConfig) -> tuple[str, ...]:
    n = names(service, env_name)
    return (n["alarm_errors"], n["alarm_p95"], n["alarm_throttles"])


def existing_outputs(clients, config: Config, env: EnvironmentConfig) -> DeployOutputs | None:
    """The outputs of an environment the provisioner already built, from one call (None if not built).

    The names are the provisioner's own; the topic ARN shares the function's account and region."""
    from botocore.exceptions import ClientError

    n = names(config.service.name, env.name)
    try:
        alias = clients.client("lambda").get_alias(FunctionName=n["function"], Name=env.alias)
    except ClientError:
        return None
    _, _, _, region, account, *_ = alias["AliasArn"].split(":")
    return DeployOutputs(
        function_name=n["function"],
        alias_name=env.alias,
        alarm_names=alarm_names(config.service.name, env.name, env),
        topic_arn=f"arn:aws:sns:{region}:{account}:{n['topic']}",
        history_table=n["table"],
        source="provisioner",
    )


def _history_table(ddb, table: str) -> None:
    from botocore.exceptions import ClientError

    try:
        ddb.describe_table(TableName=table)
        return
    except ClientError:
        pass
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "pk_status", "started_at")
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_status",
                "KeySchema": [
                    {"AttributeName": "pk_status", "KeyType": "HASH"},
                    {"AttributeName": "started_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
        SSESpecification={"Enabled": True},
    )


def provision(clients, config: Config, env: EnvironmentConfig, now: datetime, reporter=None) -> DeployOutputs:
    """Create what is missing; leave what exists. Returns the outputs contract."""
    from botocore.exceptions import ClientError

    if not clients.target.local:
        raise LocalGuardError(
            "the local provisioner only runs against the emulator",
            "outside local mode, Terraform builds the environment",
        )
    svc = config.service
    n = names(svc.name, env.name)
    artifact = placeholder(svc.handler)
    created: list[str] = []

    iam = clients.client("iam")
    try:
        role_arn = iam.get_role(RoleName=n["role"])["Role"]["Arn"]
    except ClientError:
        role_arn = iam.create_role(RoleName=n["role"], AssumeRolePolicyDocument=ASSUME)["Role"]["Arn"]
        created.append(f"iam role {n['role']}")

    sns = clients.client("sns")
    topic_arn = sns.create_topic(Name=n["topic"])["TopicArn"]  # idempotent

    ddb = clients.client("dynamodb")
    _history_table(ddb, n["table"])

    lam = clients.client("lambda")
    try:
        lam.get_function(FunctionName=n["function"])
    except ClientError:
        lam.create_function(
            FunctionName=n["function"],
            Runtime=svc.runtime,
            Role=role_arn,
            Handler=svc.handler,
            Code={"ZipFile": artifact.data},
            MemorySize=env.memory_mb,
            Timeout=env.timeout_s,
            TracingConfig={"Mode": "Active" if env.xray else "PassThrough"},
            Environment={"Variables": {"ENVIRONMENT": env.name, "SERVICE": svc.name}},
        )
        lam.get_waiter("function_active_v2").wait(
            FunctionName=n["function"], WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
        created.append(f"lambda {n['function']}")
    try:
        lam.get_alias(FunctionName=n["function"], Name=env.alias)
    except ClientError:
        v = lam.publish_version(
            FunctionName=n["function"], Description="placeholder (provisioner): not deployed yet"
        )["Version"]
        lam.create_alias(FunctionName=n["function"], Name=env.alias, FunctionVersion=v)
        created.append(f"alias {env.alias} -> v{v}")
        history = DynamoHistory(ddb, n["table"], svc.name, env.name)
        dep_id = new_deployment_id(now)
        history.create(
            Deployment(
                deployment_id=dep_id,
                environment=env.name,
                service=svc.name,
                version=v,
                previous_version=None,
                status="succeeded",
                phase="succeeded",
                started_at=iso(now),
                ended_at=iso(now),
                who="provisioner",
                artifact_digest=artifact.digest,
                state={"phase": "succeeded", "step": -1, "weight": 100},
                transitions=[
                    {
                        "at": iso(now),
                        "from": "none",
                        "to": "succeeded",
                        "reason": "placeholder version created by the provisioner",
                    }
                ],
            )
        )

    cw = clients.client("cloudwatch")
    base = {
        "Namespace": "AWS/Lambda",
        "Period": 60,
        "EvaluationPeriods": 5,
        "Dimensions": [
            {"Name": "FunctionName", "Value": n["function"]},
            {"Name": "Resource", "Value": f"{n['function']}:{env.alias}"},
        ],
        "AlarmActions": [topic_arn],
        "TreatMissingData": "notBreaching",
    }
    alarms = {
        n["alarm_errors"]: dict(
            MetricName="Errors",
            Statistic="Sum",
            Threshold=5.0,
            ComparisonOperator="GreaterThanThreshold",
            AlarmDescription="Lambda errors > 5 in 5 min: roll back",
        ),
        n["alarm_p95"]: dict(
            MetricName="Duration",
            ExtendedStatistic="p95",
            Threshold=env.gates.max_p95_ms,
            ComparisonOperator="GreaterThanThreshold",
            AlarmDescription="p95 duration over the gate for 5 min: roll back",
        ),
        n["alarm_throttles"]: dict(
            MetricName="Throttles",
            Statistic="Sum",
            Threshold=0.0,
            ComparisonOperator="GreaterThanThreshold",
            AlarmDescription="any throttling",
        ),
    }
    existing = {a["AlarmName"] for a in cw.describe_alarms(AlarmNames=list(alarms))["MetricAlarms"]}
    for name, spec in alarms.items():
        if name not in existing:
            cw.put_metric_alarm(AlarmName=name, **base, **spec)
            created.append(f"alarm {name}")
    if reporter is not None and created:
        reporter.info(
            "provision",
            env.name,
            f"local provisioner created: {', '.join(created)}",
        )
    return DeployOutputs(
        function_name=n["function"],
        alias_name=env.alias,
        alarm_names=tuple(alarms),
        topic_arn=topic_arn,
        history_table=n["table"],
        source="provisioner",
    )
