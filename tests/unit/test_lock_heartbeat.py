"""The lock's heartbeat on DynamoDB (moto in process): the holder refreshes it as it records progress,
at most every HEARTBEAT_EVERY, only while it holds the lock; a forced break is conditional and recorded."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from stageflow.deploy.records import Deployment, State
from stageflow.history import DynamoHistory
from stageflow.history import locks as lockmod
from stageflow.isotime import iso
from tests.helpers.resources import create_history_table


@pytest.fixture
def history(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_history_table(ddb, "h")
        yield DynamoHistory(ddb, "h", "svc", "dev")


def _dep(history) -> Deployment:
    dep = Deployment(
        deployment_id="20261207T000000Z-hbhbhb",
        environment="dev",
        service="svc",
        version="2",
        previous_version="1",
        status="in_progress",
        phase="baking",
        started_at=iso(datetime.now(UTC)),
        who="tests",
        state=State(phase="baking", step=0, weight=10),
    )
    history.create(dep)
    return history.get(dep.deployment_id)


def test_the_holder_beats_as_it_records_and_only_while_it_holds_the_lock(history, monkeypatch):
    dep = _dep(history)
    history.acquire_lock(dep.deployment_id, "tests", datetime.now(UTC))
    assert history.lock()["heartbeat"]  # taken with a first beat
    old = "2026-01-01T00:00:00Z"
    history.ddb.update_item(
        TableName="h",
        Key={"pk": {"S": history.pk}, "sk": {"S": "LOCK"}},
        UpdateExpression="SET heartbeat = :t",
        ExpressionAttributeValues={":t": {"S": old}},
    )
    monkeypatch.setattr(lockmod, "HEARTBEAT_EVERY", lockmod.timedelta(0))
    dep = history.update(dep, state=State(phase="baking", step=0, weight=10, errors=1))
    assert history.lock()["heartbeat"] > old
    history.release_lock(dep.deployment_id)
    history.update(dep, state=State(phase="baking", step=0, weight=10, errors=2))
    assert history.lock() is None  # a beat never re-creates a lock it does not hold


def test_a_forced_break_is_recorded_and_conditional_on_the_holder(history):
    from stageflow.errors import LockedError

    history.acquire_lock("dep-a", "tests", datetime.now(UTC))
    with pytest.raises(LockedError):
        history.break_lock("wrong one", "bob", datetime.now(UTC), expect="dep-b")
    assert history.lock()["holder"] == "dep-a"
    held = history.break_lock("stuck", "bob", datetime.now(UTC), forced="pid 1 runs", expect="dep-a")
    assert held["holder"] == "dep-a" and history.lock() is None
    (ev,) = [e for e in history.events() if e["kind"] == "lock_broken"]
    assert ev["forced"] is True and ev["holder_alive"] == "pid 1 runs"
