"""The traffic simulator: strict scenario validation, determinism, and the statistics it promises."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from stageflow.errors import ExitCode, UsageError
from stageflow.local.simulator import (
    ScenarioError,
    SimulatorFeed,
    TrafficGenerator,
    load_scenario,
    metric_datums,
    parse_scenario,
    split_traffic,
)
from stageflow.metrics.lambda_metrics import LAMBDA_NAMESPACE, SIMULATOR_NAMESPACE
from tests.conftest import REPO

SCENARIOS = sorted((REPO / "tests" / "fixtures" / "scenarios").glob("*.json"))
BASE = {
    "name": "t",
    "seed": 7,
    "traffic_per_minute": 600,
    "stable": {"error_rate": 0.005, "latency_ms": {"median": 120, "p95": 450}},
    "canary": {"error_rate": 0.005, "latency_ms": {"median": 120, "p95": 450}},
}
ROLES = {"1": "stable", "2": "canary"}


def scenario(**over):
    return parse_scenario({**BASE, **over}, "test.json")


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shared_scenarios_load(path):
    s = load_scenario(path)
    assert s.expect in ("promote", "rollback") and s.traffic_per_minute > 0


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"seed": "1"}, "seed"),
        ({"seed": -1}, "seed"),
        ({"traffic_per_minute": 1.5}, "traffic_per_minute"),
        ({"surprise": 1}, "surprise"),
        ({"stable": {"error_rate": 2, "latency_ms": {"median": 1, "p95": 2}}}, "stable.error_rate"),
        ({"canary": {"error_rate": 0.1}}, "canary.latency_ms"),
        ({"canary": {"error_rate": 0.1, "latency_ms": {"median": 500, "p95": 400}}}, "canary.latency_ms.p95"),
        (
            {"canary": {"error_rate": 0.1, "latency_ms": {"median": 0, "p95": 400}}},
            "canary.latency_ms.median",
        ),
        ({"changes": [{"version": "both", "at_minute": 1, "error_rate": 0.1}]}, "changes[0].version"),
        ({"changes": [{"version": "canary", "at_minute": 1}]}, "changes[0]"),
        ({"changes": [{"version": "canary", "at_minute": -3, "error_rate": 0.1}]}, "changes[0].at_minute"),
        ({"changes": {"version": "canary"}}, "changes"),
        ({"cold_start": {"minutes": 1}}, "cold_start.latency_factor"),
        ({"cold_start": {"minutes": 1, "latency_factor": 2, "x": 1}}, "cold_start.x"),
        ({"expect": "maybe"}, "expect"),
        ({"functions": 5}, "functions"),
        ({"functions": {"worker": 3}}, "functions.worker"),
        ({"functions": {"worker": {"seed": 3}}}, "functions.worker.seed"),
        (
            {"functions": {"worker": {"canary": {"error_rate": 2, "latency_ms": {"median": 1, "p95": 2}}}}},
            "functions.worker.canary.error_rate",
        ),
    ],
)
def test_bad_scenarios_name_the_key(patch, key):
    with pytest.raises(ScenarioError) as info:
        parse_scenario({**BASE, **patch}, "bad.json")
    assert info.value.key == key
    assert info.value.exit_code == ExitCode.USAGE
    assert f"bad.json: {key}:" in info.value.one_line()


def test_missing_required_and_bad_files(tmp_path):
    doc = dict(BASE)
    del doc["stable"]
    with pytest.raises(ScenarioError, match="stable: is required"):
        parse_scenario(doc, "x.json")
    with pytest.raises(ScenarioError, match="must be an object"):
        parse_scenario([1, 2], "x.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"seed": 1,')
    with pytest.raises(ScenarioError, match="not valid JSON"):
        load_scenario(bad)
    with pytest.raises(UsageError, match="not found"):
        load_scenario(tmp_path / "nope.json")


def test_a_function_plays_its_own_part_and_the_others_the_scenario(tmp_path):
    """Several functions, one release: ``functions.KEY`` replaces stable/canary/changes for that one."""
    bad = {"error_rate": 0.3, "latency_ms": {"median": 120, "p95": 450}}
    path = tmp_path / "worker-fails.json"
    path.write_text(json.dumps({**BASE, "functions": {"worker": {"canary": bad}}}))
    worker = load_scenario(path, function="worker")
    assert worker.canary.error_rate == 0.3 and worker.stable.error_rate == 0.005 and worker.seed == 7
    for other in ("api", None):
        assert load_scenario(path, function=other).canary.error_rate == 0.005
    assert scenario().for_function("worker") == scenario()  # no overrides: everyone plays it


def test_split_traffic():
    assert split_traffic(600, {"1": 90, "2": 10}, ROLES) == {"1": 540, "2": 60}
    assert split_traffic(20, {"1": 90, "2": 10}, ROLES) == {"1": 18, "2": 2}
    assert split_traffic(600, {"1": 0, "2": 100}, ROLES) == {"1": 0, "2": 600}
    assert split_traffic(600, {"1": 100}, ROLES) == {"1": 600}
    assert sum(split_traffic(7, {"1": 33, "2": 67}, ROLES).values()) == 7


def test_deterministic_per_seed_and_independent_of_call_order():
    s = scenario()
    a = TrafficGenerator(s)
    b = TrafficGenerator(s)
    w = {"1": 90, "2": 10}
    forward = [a.minute(m, w, ROLES) for m in range(10)]
    backward = [b.minute(m, w, ROLES) for m in reversed(range(10))][::-1]
    assert forward == backward
    other = TrafficGenerator(s.with_seed(8))
    assert [other.minute(m, w, ROLES) for m in range(10)] != forward


def test_statistics_match_the_scenario():
    s = scenario(
        traffic_per_minute=20000,
        canary={"error_rate": 0.02, "latency_ms": {"median": 200, "p95": 800}},
    )
    g = TrafficGenerator(s)
    mins = [g.minute(m, {"1": 50, "2": 50}, ROLES) for m in range(20)]
    c = [m["2"] for m in mins]
    st = [m["1"] for m in mins]
    assert all(x.invocations == 10000 for x in c + st)
    assert sum(x.errors for x in c) / 200000 == pytest.approx(0.02, rel=0.05)
    assert sum(x.errors for x in st) / 200000 == pytest.approx(0.005, rel=0.1)
    assert np.mean([x.p50_ms for x in c]) == pytest.approx(200, rel=0.03)
    assert np.mean([x.p95_ms for x in c]) == pytest.approx(800, rel=0.03)
    assert np.mean([x.p95_ms for x in st]) == pytest.approx(450, rel=0.03)
    # the log-normal's p99 follows from median and p95
    sigma = math.log(800 / 200) / 1.6448536
    assert np.mean([x.p99_ms for x in c]) == pytest.approx(200 * math.exp(2.3263479 * sigma), rel=0.05)
    x = c[0]
    assert x.duration_min <= x.p50_ms <= x.p95_ms <= x.p99_ms <= x.duration_max
    assert x.duration_sum / x.invocations == pytest.approx(200 * math.exp(sigma**2 / 2), rel=0.1)


def test_changes_and_cold_start_apply_from_their_minute():
    s = scenario(
        traffic_per_minute=10000,
        changes=[
            {"version": "canary", "at_minute": 5, "error_rate": 0.5},
            {"version": "stable", "at_minute": 7, "latency_ms": {"median": 1000, "p95": 2000}},
        ],
        cold_start={"minutes": 2, "latency_factor": 4},
    )
    g = TrafficGenerator(s)
    w = {"1": 50, "2": 50}
    m = {i: g.minute(i, w, ROLES) for i in range(9)}
    assert m[4]["2"].errors < 100 and m[5]["2"].errors > 2000
    assert m[6]["1"].p50_ms < 200 and m[7]["1"].p50_ms > 800
    assert m[0]["2"].p50_ms == pytest.approx(480, rel=0.1) and m[1]["2"].p50_ms > 400
    assert m[2]["2"].p50_ms == pytest.approx(120, rel=0.1)
    assert m[0]["1"].p50_ms == pytest.approx(120, rel=0.1)  # cold starts are the canary's only
    assert s.behaviour("canary", 4).error_rate == 0.005 and s.behaviour("canary", 5).error_rate == 0.5


def test_no_traffic_publishes_nothing():
    s = TrafficGenerator(scenario()).sample("canary", 0, 0)
    assert (s.invocations, s.p95_ms) == (0, None)
    assert metric_datums("f", "live", "2", datetime(2024, 1, 1, tzinfo=UTC), s) == ([], [])


class RecordingCloudWatch:
    def __init__(self):
        self.calls = []

    def put_metric_data(self, **kw):
        self.calls.append(kw)


def test_feed_publishes_whole_minutes_in_batches_with_lambda_dimensions():
    cw = RecordingCloudWatch()
    t0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    feed = SimulatorFeed(scenario(), cw, "api", "live", start=t0)
    # two minutes of stable-only traffic, then the canary takes 10 %
    feed.run_until(t0 + timedelta(minutes=2, seconds=30), {"1": 100}, ROLES)
    assert feed.canary_start is None and len(feed.published) == 2
    feed.run_until(t0 + timedelta(minutes=12), {"1": 90, "2": 10}, ROLES)
    assert feed.canary_start == t0 + timedelta(minutes=2)
    assert feed.canary_minute(t0 + timedelta(minutes=5)) == 3
    # 2 stable-only minutes + 10 minutes x 2 versions; one call per namespace per run_until
    assert len(feed.published) == 22
    assert [c["Namespace"] for c in cw.calls] == [LAMBDA_NAMESPACE, SIMULATOR_NAMESPACE] * 2
    datum = cw.calls[2]["MetricData"][0]
    assert datum["Dimensions"] == [
        {"Name": "FunctionName", "Value": "api"},
        {"Name": "Resource", "Value": "api:live"},
        {"Name": "ExecutedVersion", "Value": "2"},
    ]
    names = {d["MetricName"] for d in cw.calls[2]["MetricData"]}
    assert names == {"Invocations", "Errors", "Duration"}
    pct = cw.calls[3]["MetricData"][0]
    assert pct["MetricName"] == "DurationPercentiles"
    s0 = next(
        s for (t, v, _r, s) in feed.published if v == pct["Dimensions"][2]["Value"] and t == pct["Timestamp"]
    )
    assert pct["StatisticValues"] == {
        "SampleCount": 3.0,
        "Minimum": s0.p50_ms,
        "Maximum": s0.p99_ms,
        "Sum": s0.p50_ms + s0.p95_ms + s0.p99_ms,
    }
    dur = next(d for d in cw.calls[2]["MetricData"] if d["MetricName"] == "Duration")
    assert set(dur["StatisticValues"]) == {"SampleCount", "Sum", "Minimum", "Maximum"}
    # the canary's minute 0 numbers equal the generator's minute 0
    first_canary = next(s for (t, v, _r, s) in feed.published if v == "2")
    assert first_canary == TrafficGenerator(feed.scenario).minute(0, {"1": 90, "2": 10}, ROLES)["2"]
    # nothing new before the next whole minute
    feed.run_until(t0 + timedelta(minutes=12, seconds=59), {"1": 90, "2": 10}, ROLES)
    assert len(cw.calls) == 4 and len(feed.published) == 22


def test_scenario_json_roundtrip_of_readme_example():
    doc = {
        **BASE,
        "changes": [{"version": "canary", "at_minute": 20, "error_rate": 0.06}],
        "cold_start": {"minutes": 1, "latency_factor": 4},
        "expect": "rollback",
    }
    s = parse_scenario(json.loads(json.dumps(doc)))
    assert s.cold_start.minutes == 1 and s.changes[0].error_rate == 0.06
