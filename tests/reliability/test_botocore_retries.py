"""botocore's retries through stageflow's client factory, under faults injected by the proxy.

A realistic fault rate (5 % of every call: throttling, 429, 500, 503, dropped connections) is absorbed
by the retry policy; a persistent fault ends in stageflow's own one-line error with exit code 3.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from stageflow.aws import aws_error
from stageflow.deploy.records import Deployment, Transition, VerdictRecord
from stageflow.errors import AwsError, EnvironmentFailure, ExitCode
from stageflow.history import DynamoHistory
from tests.helpers.faultproxy import Fault
from tests.reliability.conftest import history_table

pytestmark = [pytest.mark.emulator, pytest.mark.reliability]

REALISTIC = [  # 5 % in all, spread over the kinds AWS really produces
    Fault("throttle", 0.02),
    Fault("429", 0.005),
    Fault("500", 0.01),
    Fault("503", 0.01),
    Fault("drop", 0.005),
]


def _deployment() -> Deployment:
    return Deployment(
        deployment_id="20260101T000000Z-abcdef",
        environment="dev",
        service="sample-api",
        version="2",
        previous_version="1",
        status="in_progress",
        phase="pending",
        started_at="2026-01-01T00:00:00.000000Z",
        who="tests",
    )


def test_200_history_writes_under_5_percent_faults_all_succeed(fault_proxy, faulty_aws):
    """50 conditional updates of one deployment record (the seq check) and 150 event records."""
    clients = faulty_aws()  # the default policy: adaptive, 5 attempts
    ddb = clients.client("dynamodb")
    table = history_table(ddb)
    history = DynamoHistory(ddb, table, "sample-api", "dev")
    dep = _deployment()
    history.create(dep)
    fault_proxy.configure(REALISTIC, seed=14)
    t0 = time.monotonic()
    for i in range(50):
        at = f"2026-01-01T00:00:{i:02d}.000000Z"
        dep = history.update(dep, phase="baking", transition=Transition(at, "pending", "baking", f"n={i}"))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(150):
        history.record_event("test", start + timedelta(seconds=i), {"n": i})
    took = time.monotonic() - t0
    injected = fault_proxy.injected_total()
    fault_proxy.configure([])
    fresh = history.get(dep.deployment_id)
    assert fresh.seq == 50 and [t.reason for t in fresh.transitions] == [f"n={i}" for i in range(50)]
    assert sorted(e["n"] for e in history.events(limit=500)) == list(range(150))
    assert injected >= 4, "the faults must actually have been injected"
    print(f"200 writes, {injected} faults injected, {took:.1f} s")


def test_persistent_throttling_becomes_exit_3_with_one_line(fault_proxy, faulty_aws):
    ddb = faulty_aws(max_attempts=3).client("dynamodb")
    table = history_table(ddb)
    history = DynamoHistory(ddb, table, "sample-api", "dev")
    fault_proxy.configure([Fault("throttle", 1.0, "dynamodb", "GetItem")])
    with pytest.raises(EnvironmentFailure) as exc:
        history.get("nope")
    assert exc.value.exit_code == ExitCode.ENVIRONMENT
    assert fault_proxy.calls[("dynamodb", "GetItem")] == 3  # every attempt was made, then no more
    assert "\n" not in exc.value.one_line()


@pytest.mark.parametrize(
    ("fault", "expect"),
    [
        (Fault("503", 1.0, "lambda"), "ServiceUnavailable: injected: service unavailable (after 3 attempts)"),
        (Fault("429", 1.0, "lambda"), "TooManyRequestsException"),
        (Fault("drop", 1.0, "lambda"), "AWS unreachable: ConnectionClosedError"),
        (Fault("slow", 1.0, "lambda", delay=1.0), "AWS unreachable: ReadTimeoutError"),
    ],
)
def test_persistent_faults_map_to_aws_error(fault_proxy, faulty_aws, fault, expect):
    # a quick fault must never look like a timeout on a loaded machine: a short read timeout only
    # where the fault is slowness
    read_timeout = 0.3 if fault.kind == "slow" else 3.0
    lam = faulty_aws(max_attempts=3, read_timeout=read_timeout).client("lambda")
    fault_proxy.configure([fault])
    with pytest.raises(Exception) as raw:  # noqa: PT011 - raw botocore errors, mapped below
        lam.list_functions()
    mapped = aws_error(raw.value)
    assert isinstance(mapped, AwsError) and mapped.exit_code == ExitCode.ENVIRONMENT
    assert expect in mapped.one_line()
    assert fault_proxy.calls[("lambda", "ListFunctions")] == 3


def test_lost_answers_of_conditional_history_writes_are_not_conflicts(fault_proxy, faulty_aws):
    """The emulator did the write, the answer was lost, botocore retried: the retry fails the seq (or
    attribute_not_exists) check against our own write, which must not read as another writer's."""
    ddb = faulty_aws().client("dynamodb")
    table = history_table(ddb)
    history = DynamoHistory(ddb, table, "sample-api", "dev")
    dep = _deployment()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    fault_proxy.configure([Fault("drop_after", 0.3, "dynamodb", op) for op in ("PutItem",)], seed=5)
    for i in range(6):  # lock and record creation: put with attribute_not_exists
        other = DynamoHistory(ddb, table, "sample-api", f"env{i}")
        other.acquire_lock(f"dep-{i}", "tests", now)
    history.create(dep)
    fault_proxy.configure(
        [Fault("drop_after", 0.3, "dynamodb", op) for op in ("UpdateItem", "TransactWriteItems")], seed=5
    )
    for i in range(20):
        if i % 2:
            dep = history.update(dep, verdict=VerdictRecord(f"2026-01-01T00:00:{i:02d}.000000Z", "continue"))
        else:
            dep = history.update(
                dep, phase="baking", transition=Transition("", "pending", "baking", f"n={i}")
            )
    lost = fault_proxy.injected_total()
    fault_proxy.configure([])
    fresh = history.get(dep.deployment_id)
    assert fresh.seq == 20 and [t.reason for t in fresh.transitions] == [f"n={i}" for i in range(0, 20, 2)]
    assert fresh.verdict_count == 10
    assert lost >= 3, "answers must actually have been lost"
    # a real second writer is still a conflict
    stale = replace(_deployment(), seq=3)
    from stageflow.history import ConcurrentUpdate

    with pytest.raises(ConcurrentUpdate):
        history.update(stale, phase="shifting")
