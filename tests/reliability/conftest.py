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
    from tests.helpers.resources import create_history_table

    return create_history_table(ddb, name)
