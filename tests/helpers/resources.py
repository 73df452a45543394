"""Minimal resources for component tests against the emulator (driver, rollback, history, traffic).

Not a product path: the tool builds environments only with Terraform (the shared Terraform-built
environment in tests/conftest.py is what end-to-end tests use). These component tests need a function
with an alias, a history table with the schema of infrastructure/modules/service/history.tf, a topic and
alarm names — created here with boto3 in a freshly reset emulator, and registered as the environment's
outputs so ``Factory.environment`` wires the real implementations to them.
"""

from __future__ import annotations

import json

from stageflow.outputs import DeployOutputs
from stageflow.packaging.lambda_zip import placeholder

ASSUME = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


def create_history_table(ddb, name: str) -> str:
    """The deployment history table's key schema (infrastructure/modules/service/history.tf)."""
    ddb.create_table(
        TableName=name,
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
    )
    return name


def make_service(factory, env_name: str = "dev") -> DeployOutputs:
    cfg = factory.config
    env = cfg.env(env_name)
    svc = cfg.service
    aws = factory.aws
    fn, table, topic = (
        f"{svc.name}-{env_name}",
        f"{svc.name}-deployments-{env_name}",
        f"{svc.name}-{env_name}",
    )
    role = aws.client("iam").create_role(RoleName=f"{fn}-test", AssumeRolePolicyDocument=ASSUME)["Role"][
        "Arn"
    ]
    topic_arn = aws.client("sns").create_topic(Name=topic)["TopicArn"]
    create_history_table(aws.client("dynamodb"), table)
    lam = aws.client("lambda")
    lam.create_function(
        FunctionName=fn,
        Runtime=svc.runtime,
        Role=role,
        Handler=svc.handler,
        Code={"ZipFile": placeholder(svc.handler).data},
        MemorySize=env.memory_mb,
        Publish=True,
    )
    lam.create_alias(FunctionName=fn, Name=env.alias, FunctionVersion="1")
    out = DeployOutputs(
        function_name=fn,
        alias_name=env.alias,
        alarm_names=(f"{svc.name}-errors-{env_name}", f"{svc.name}-p95-{env_name}"),
        topic_arn=topic_arn,
        history_table=table,
        source="test-fixture",
    )
    factory.outputs_store.remember(env_name, out)
    return out
