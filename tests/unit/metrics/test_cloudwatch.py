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


def dims(version: str) -> list[dict]:
    return [*DIMS[:2], {"Name": "ExecutedVersion", "Value": version}]


@pytest.fixture
def cw():
    client = boto3.client(
        "cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _query(qid, metric, stat, version="7", namespace="AWS/Lambda", return_data=True):
    q = {
        "Id": qid,
        "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dims(version)},
            "Period": 60,
            "Stat": stat,
        },
    }
    if return_data:
        q["ReturnData"] = True
    return q


def test_cloudwatch_source_asks_get_metric_data_for_sums_and_percentiles(cw):
    client, stub = cw
    t = [T0 + timedelta(minutes=i) for i in range(3)]
    expected = {
        "MetricDataQueries": [
            _query("v0_invocations", "Invocations", "Sum"),
            _query("v0_errors", "Errors", "Sum"),
            _query("v0_p50", "Duration", "p50"),
            _query("v0_p95", "Duration", "p95"),
            _query("v0_p99", "Duration", "p99"),
        ],
        "StartTime": T0,
        "EndTime": T0 + timedelta(minutes=3),
        "ScanBy": "TimestampAscending",
    }
    page1 = {
        "MetricDataResults": [
            {
                "Id": "v0_invocations",
                "Timestamps": t[:2],
                "Values": [60.0, 61.0],
                "StatusCode": "PartialData",
            },
            {"Id": "v0_errors", "Timestamps": t[:2], "Values": [1.0, 0.0], "StatusCode": "PartialData"},
        ],
        "NextToken": "more",
    }
    page2 = {
        "MetricDataResults": [
            {"Id": "v0_p50", "Timestamps": t[:2], "Values": [120.0, 121.0], "StatusCode": "Complete"},
            {"Id": "v0_p95", "Timestamps": t[:2], "Values": [450.0, 460.0], "StatusCode": "Complete"},
            {"Id": "v0_p99", "Timestamps": t[:2], "Values": [900.0, 910.0], "StatusCode": "Complete"},
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
    with pytest.raises(EnvironmentFailure, match="GetMetricData failed: AccessDenied") as err:
        CloudWatchSource(client).series("api", "live", "7", T0, T0 + timedelta(minutes=1))
    assert err.value.exit_code == 3 and "reading metrics" in str(err.value)


def test_a_throttled_read_is_not_called_a_credentials_problem(cw):
    client, stub = cw
    stub.add_client_error("get_metric_data", "ThrottlingException", "Rate exceeded", 400)
    with pytest.raises(EnvironmentFailure) as err:
        CloudWatchSource(client).series("api", "live", "7", T0, T0 + timedelta(minutes=1))
    assert "ThrottlingException" in str(err.value) and "credentials" not in (err.value.hint or "")


def test_cloudwatch_source_reads_canary_and_stable_in_one_request(cw):
    client, stub = cw
    queries = []
    for i, v in enumerate(("8", "7")):
        queries += [
            _query(f"v{i}_invocations", "Invocations", "Sum", v),
            _query(f"v{i}_errors", "Errors", "Sum", v),
            _query(f"v{i}_p50", "Duration", "p50", v),
            _query(f"v{i}_p95", "Duration", "p95", v),
            _query(f"v{i}_p99", "Duration", "p99", v),
        ]
    expected = {
        "MetricDataQueries": queries,
        "StartTime": T0,
        "EndTime": T0 + timedelta(minutes=1),
        "ScanBy": "TimestampAscending",
    }
    results = [
        {"Id": "v0_invocations", "Timestamps": [T0], "Values": [10.0]},
        {"Id": "v1_invocations", "Timestamps": [T0], "Values": [90.0]},
        {"Id": "v1_errors", "Timestamps": [T0], "Values": [2.0]},
        {"Id": "v0_p95", "Timestamps": [T0], "Values": [300.0]},
        {"Id": "v1_p95", "Timestamps": [T0], "Values": [250.0]},
    ]
    stub.add_response("get_metric_data", {"MetricDataResults": results}, expected)
    got = CloudWatchSource(client).series_many("api", "live", ["8", "7"], T0, T0 + timedelta(minutes=1))
    assert [(m.invocations, m.errors, m.p95_ms) for m in got["8"].minutes] == [(10, 0, 300.0)]
    assert [(m.invocations, m.errors, m.p95_ms) for m in got["7"].minutes] == [(90, 2, 250.0)]


def test_local_simulator_source_reads_sums_and_simulator_percentiles(cw):
    client, stub = cw
    t = [T0, T0 + timedelta(minutes=1)]

    def expect(results, start=T0, versions=("7",)):
        queries = []
        for i, v in enumerate(versions):
            queries += [
                _query(f"v{i}_invocations", "Invocations", "Sum", v, return_data=False),
                _query(f"v{i}_errors", "Errors", "Sum", v, return_data=False),
                _query(f"v{i}_pmin", "DurationPercentiles", "Minimum", v, "Stageflow/Simulator", False),
                _query(f"v{i}_pmax", "DurationPercentiles", "Maximum", v, "Stageflow/Simulator", False),
                _query(f"v{i}_psum", "DurationPercentiles", "Sum", v, "Stageflow/Simulator", False),
            ]
        stub.add_response(
            "get_metric_data",
            {"MetricDataResults": results},
            {
                "MetricDataQueries": queries,
                "StartTime": start,
                "EndTime": T0 + timedelta(minutes=3),
                "ScanBy": "TimestampAscending",
            },
        )

    def r(qid, points):
        return {"Id": qid, "Timestamps": [ts for ts, _ in points], "Values": [v for _, v in points]}

    expect(
        [
            r("v0_invocations", [(t[0], 60.0), (t[1], 62.0)]),
            r("v0_errors", [(t[0], 0.0), (t[1], 3.0)]),
            r("v0_pmin", [(t[0], 120.5), (t[1], 119.0)]),
            r("v0_pmax", [(t[0], 800.0), (t[1], 810.0)]),
            r("v0_psum", [(t[0], 120.5 + 450.25 + 800.0), (t[1], 119.0 + 470.125 + 810.0)]),
        ]
    )
    src = LocalSimulatorSource(client)
    s = src.series("api", "live", "7", T0, T0 + timedelta(minutes=3))
    assert s.source == "local-simulator"
    assert [(m.invocations, m.errors, m.p50_ms, m.p95_ms, m.p99_ms) for m in s.minutes] == [
        (60, 0, 120.5, 450.25, 800.0),
        (62, 3, 119.0, 470.125, 810.0),
        (0, 0, None, None, None),
    ]
    # the next look asks only for what it has not read with traffic yet (minute 3 onwards), for both
    # versions in one request
    late = T0 + timedelta(minutes=2)
    expect([r("v0_invocations", [(late, 5.0)]), r("v1_invocations", [(late, 7.0)])], late, ("7", "6"))
    again = src.series_many("api", "live", ["7", "6"], T0 + timedelta(minutes=2), T0 + timedelta(minutes=3))
    assert [(m.invocations, m.errors) for m in again["7"].minutes] == [(5, 0)]
    assert [(m.invocations, m.p95_ms) for m in again["6"].minutes] == [(7, None)]
    assert src.calls == 2


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
