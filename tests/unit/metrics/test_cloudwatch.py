"""The CloudWatch sources' requests, checked against the real service model with botocore's Stubber."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import ANY, Stubber

from stageflow.errors import EnvironmentFailure
from stageflow.metrics.cloudwatch import CloudWatchAlarms, CloudWatchSource, LocalSimulatorSource

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
DIMS = [
    {"Name": "FunctionName", "Value": "api"},
    {"Name": "Resource", "Value": "api:live"},
    {"Name": "ExecutedVersion", "Value": "7"},
]


@pytest.fixture
def cw():
    client = boto3.client(
        "cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _query(qid, metric, stat):
    return {
        "Id": qid,
        "MetricStat": {
            "Metric": {"Namespace": "AWS/Lambda", "MetricName": metric, "Dimensions": DIMS},
            "Period": 60,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def test_cloudwatch_source_asks_get_metric_data_for_sums_and_percentiles(cw):
    client, stub = cw
    t = [T0 + timedelta(minutes=i) for i in range(3)]
    expected = {
        "MetricDataQueries": [
            _query("invocations", "Invocations", "Sum"),
            _query("errors", "Errors", "Sum"),
            _query("p50", "Duration", "p50"),
            _query("p95", "Duration", "p95"),
            _query("p99", "Duration", "p99"),
        ],
        "StartTime": T0,
        "EndTime": T0 + timedelta(minutes=3),
        "ScanBy": "TimestampAscending",
    }
    page1 = {
        "MetricDataResults": [
            {"Id": "invocations", "Timestamps": t[:2], "Values": [60.0, 61.0], "StatusCode": "PartialData"},
            {"Id": "errors", "Timestamps": t[:2], "Values": [1.0, 0.0], "StatusCode": "PartialData"},
        ],
        "NextToken": "more",
    }
    page2 = {
        "MetricDataResults": [
            {"Id": "p50", "Timestamps": t[:2], "Values": [120.0, 121.0], "StatusCode": "Complete"},
            {"Id": "p95", "Timestamps": t[:2], "Values": [450.0, 460.0], "StatusCode": "Complete"},
            {"Id": "p99", "Timestamps": t[:2], "Values": [900.0, 910.0], "StatusCode": "Complete"},
        ]
    }
    stub.add_response("get_metric_data", page1, expected)
    stub.add_response("get_metric_data", page2, {**expected, "NextToken": "more"})
    # seconds in start/end are trimmed to whole minutes inside the window
    s = CloudWatchSource(client).series(
        "api", "live", "7", T0 - timedelta(seconds=20), T0 + timedelta(minutes=3, seconds=5)
    )
    assert s.source == "cloudwatch" and s.version == "7"
    assert [(m.invocations, m.errors, m.p50_ms, m.p95_ms, m.p99_ms) for m in s.minutes] == [
        (60, 1, 120.0, 450.0, 900.0),
        (61, 0, 121.0, 460.0, 910.0),
        (0, 0, None, None, None),  # no datapoints: no traffic that minute
    ]
    assert s.minutes[0].start == T0


def test_cloudwatch_source_error_is_an_environment_failure(cw):
    client, stub = cw
    stub.add_client_error("get_metric_data", "AccessDenied", "not allowed", 403)
    with pytest.raises(EnvironmentFailure, match="GetMetricData failed"):
        CloudWatchSource(client).series("api", "live", "7", T0, T0 + timedelta(minutes=1))


def test_local_simulator_source_reads_sums_and_simulator_percentiles(cw):
    client, stub = cw
    t = [T0, T0 + timedelta(minutes=1)]

    def expect(ns, metric, stats, points, start=T0):
        stub.add_response(
            "get_metric_statistics",
            {"Label": metric, "Datapoints": [{"Timestamp": ts, **p} for ts, p in points]},
            {
                "Namespace": ns,
                "MetricName": metric,
                "Dimensions": DIMS,
                "StartTime": start,
                "EndTime": T0 + timedelta(minutes=3),
                "Period": 60,
                "Statistics": stats,
            },
        )

    pct = ["Minimum", "Maximum", "Sum"]
    expect("AWS/Lambda", "Invocations", ["Sum"], [(t[0], {"Sum": 60.0}), (t[1], {"Sum": 62.0})])
    expect("AWS/Lambda", "Errors", ["Sum"], [(t[0], {"Sum": 0.0}), (t[1], {"Sum": 3.0})])
    expect(
        "Stageflow/Simulator",
        "DurationPercentiles",
        pct,
        [
            (t[0], {"Minimum": 120.5, "Maximum": 800.0, "Sum": 120.5 + 450.25 + 800.0}),
            (t[1], {"Minimum": 119.0, "Maximum": 810.0, "Sum": 119.0 + 470.125 + 810.0}),
        ],
    )
    src = LocalSimulatorSource(client)
    s = src.series("api", "live", "7", T0, T0 + timedelta(minutes=3))
    assert s.source == "local-simulator"
    assert [(m.invocations, m.errors, m.p50_ms, m.p95_ms, m.p99_ms) for m in s.minutes] == [
        (60, 0, 120.5, 450.25, 800.0),
        (62, 3, 119.0, 470.125, 810.0),
        (0, 0, None, None, None),
    ]
    # the next look asks only for what it has not read with traffic yet (minute 3 onwards)
    late = T0 + timedelta(minutes=2)
    expect("AWS/Lambda", "Invocations", ["Sum"], [(late, {"Sum": 5.0})], start=late)
    expect("AWS/Lambda", "Errors", ["Sum"], [], start=late)
    expect("Stageflow/Simulator", "DurationPercentiles", pct, [], start=late)
    again = src.series("api", "live", "7", T0, T0 + timedelta(minutes=3))
    assert [(m.invocations, m.errors) for m in again.minutes] == [(60, 0), (62, 3), (5, 0)]
    assert src.calls == 6


def test_alarms_firing_and_missing(cw):
    client, stub = cw
    alarm = {
        "AlarmName": "api-errors",
        "StateValue": "ALARM",
        "StateUpdatedTimestamp": T0,
    }
    ok = {"AlarmName": "api-latency", "StateValue": "OK"}
    stub.add_response(
        "describe_alarms",
        {"MetricAlarms": [alarm, ok], "CompositeAlarms": []},
        {"AlarmNames": ["api-errors", "api-latency", "api-throttles"], "AlarmTypes": ANY},
    )
    firing = CloudWatchAlarms(client).firing(["api-errors", "api-latency", "api-throttles"])
    assert firing == ["api-errors", "api-throttles (missing)"]


def test_alarms_insufficient_data_is_not_firing(cw):
    client, stub = cw
    stub.add_response(
        "describe_alarms",
        {"MetricAlarms": [{"AlarmName": "a", "StateValue": "INSUFFICIENT_DATA"}]},
        {"AlarmNames": ["a"], "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]},
    )
    assert CloudWatchAlarms(client).firing(["a"]) == []


def test_no_alarm_names_makes_no_call(cw):
    client, _ = cw
    assert CloudWatchAlarms(client).firing([]) == []
