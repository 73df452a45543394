"""The simulator writes into the emulator over HTTP; the local metric source reads back exactly the
generated numbers, through the dimensions and statistics production uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stageflow.config import Gates
from stageflow.local.simulator import SimulatorFeed, load_scenario
from stageflow.metrics.cloudwatch import CloudWatchAlarms, LocalSimulatorSource
from stageflow.metrics.judge import judge
from tests.conftest import REPO

pytestmark = pytest.mark.emulator
ROLES = {"1": "stable", "2": "canary"}


def test_feed_and_local_source_roundtrip(aws):
    cw = aws.client("cloudwatch")
    scenario = load_scenario(REPO / "tests" / "fixtures" / "scenarios" / "error-regression-4x.json")
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=5)  # virtual time
    feed = SimulatorFeed(scenario, cw, "api", "live", start=t0)
    feed.run_until(t0 + timedelta(minutes=1), {"1": 100}, ROLES)  # stable only
    feed.run_until(t0 + timedelta(minutes=16, seconds=10), {"1": 90, "2": 10}, ROLES)
    assert feed.canary_start == t0 + timedelta(minutes=1)

    src = LocalSimulatorSource(cw)
    start, end = t0 + timedelta(minutes=1), t0 + timedelta(minutes=16)
    canary = src.series("api", "live", "2", start, end)
    stable = src.series("api", "live", "1", start, end)
    published = {(t, v): s for (t, v, _r, s) in feed.published}
    assert len(canary.minutes) == 15
    for version, series in (("2", canary), ("1", stable)):
        for m in series.minutes:
            s = published[(m.start, version)]
            assert (m.invocations, m.errors) == (s.invocations, s.errors)
            assert (m.p50_ms, m.p95_ms, m.p99_ms) == (s.p50_ms, s.p95_ms, s.p99_ms)
    assert canary.invocations == 15 * 60 and stable.invocations == 15 * 540
    # the stable-only minute before the canary is not in the window; other functions do not leak in
    assert src.series("other", "live", "2", start, end).invocations == 0
    v = judge(canary, stable, Gates(), [], window_complete=True)
    assert v.decision == "rollback" and v.source == "local-simulator"


def test_alarm_states_in_the_emulator(aws):
    cw = aws.client("cloudwatch")
    for name in ("api-errors", "api-latency"):
        cw.put_metric_alarm(
            AlarmName=name,
            MetricName="Errors",
            Namespace="AWS/Lambda",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
    alarms = CloudWatchAlarms(cw)
    assert alarms.firing(["api-errors", "api-latency"]) == []  # a new alarm starts OK in the emulator
    cw.set_alarm_state(AlarmName="api-errors", StateValue="ALARM", StateReason="test")
    assert alarms.firing(["api-errors", "api-latency", "api-gone"]) == ["api-errors", "api-gone (missing)"]
