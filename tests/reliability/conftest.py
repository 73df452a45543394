"""Fixtures of the reliability suite: a fault-injecting proxy in front of the session's emulator."""

from __future__ import annotations

import pytest

from tests.helpers.faultproxy import FaultProxy


@pytest.fixture
def fault_proxy(emulator, aws):
    """A started proxy in front of a freshly reset emulator, no faults until ``configure`` is called."""
    proxy = FaultProxy(emulator.endpoint, (), seed=1)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def faulty_aws(fault_proxy):
    """``make(**retry)``: stageflow's own client factory pointed at the proxy (local mode, same retry
    policy as AWS unless overridden)."""
    from stageflow.aws import AwsClients, AwsTarget, RetryPolicy

    def make(**retry) -> AwsClients:
        return AwsClients(AwsTarget("us-east-1", True, fault_proxy.endpoint, retry=RetryPolicy(**retry)))

    return make


def history_table(ddb, name: str = "sample-api-history-test") -> str:
    """The deployment history table's key schema (infrastructure/modules/service), made directly."""
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "pk_status", "AttributeType": "S"},
            {"AttributeName": "started_at", "AttributeType": "S"},
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
    )
    return name
