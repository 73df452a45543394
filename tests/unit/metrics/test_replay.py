"""Every shared scenario gives its expected verdict when the canary machine runs the prod policy with the
judge looking minute by minute (in-process on the fakes and a virtual clock: tests/helpers/replay.py;
`stageflow rehearse` runs the same driver through the emulator)."""

from __future__ import annotations

import pytest

from stageflow.config import CanaryPolicy, CanaryStep
from stageflow.local.simulator import load_scenario, parse_scenario
from stageflow.metrics.interface import Verdict
from tests.conftest import REPO
from tests.helpers.replay import PROD_POLICY, naive_replay, replay

BASE_DOC = {"error_rate": 0.005, "latency_ms": {"median": 120, "p95": 450}}
SCENARIOS = sorted((REPO / "tests" / "fixtures" / "scenarios").glob("*.json"))
VERDICT = {"promote": "promoted", "rollback": "rolled_back"}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shared_scenario_verdicts(path):
    s = load_scenario(path)
    r = replay(s)
    assert r.verdict == VERDICT[s.expect], r.reasons
    # looked at least once per virtual minute during every bake
    assert [m for m, _ in r.verdicts] == list(range(1, r.decided_at_minute + 1))
    if r.verdict == "rolled_back":
        assert r.reasons


def _all_failing(traffic):
    return parse_scenario(
        {
            "seed": 3,
            "traffic_per_minute": traffic,
            "stable": {"error_rate": 0.005, "latency_ms": {"median": 120, "p95": 450}},
            "canary": {"error_rate": 1.0, "latency_ms": {"median": 20, "p95": 40}},
        }
    )


@pytest.mark.parametrize("traffic", [600, 100])
def test_canary_failing_every_request_rolls_back_within_two_minutes(traffic):
    r = replay(_all_failing(traffic))
    assert r.verdict == "rolled_back" and r.decided_at_minute <= 2 and r.final_weight == 10
    n = naive_replay(_all_failing(traffic))
    assert (
        n.decided_at_minute == PROD_POLICY.steps[0].bake_minutes
    )  # the design's end-of-window check waits 15


def test_thin_traffic_naive_rolls_back_on_noise_judge_promotes():
    s = load_scenario(REPO / "tests" / "fixtures" / "scenarios" / "low-traffic-healthy.json")
    assert replay(s).verdict == "promoted"
    assert naive_replay(s).verdict == "rolled_back"


def test_no_traffic_is_never_promoted():
    s = parse_scenario(
        {
            "seed": 1,
            "traffic_per_minute": 0,
            "stable": {"error_rate": 0.0, "latency_ms": {"median": 1, "p95": 2}},
            "canary": {"error_rate": 0.0, "latency_ms": {"median": 1, "p95": 2}},
        }
    )
    r = replay(s)
    assert r.verdict == "held" and r.extensions == 2 and r.final_weight == 10


def test_the_judge_sees_the_window_and_the_span_since_the_canary_started():
    """Absolute gates see the window; relative checks from the second step on see minute 0 onwards."""
    seen, histories = [], []

    def fn(canary, stable, gates, alarms, *, window_complete, relative=None, history=None, weight=None):
        seen.append((len(canary.minutes), stable is not None, relative and len(relative[0].minutes)))
        # without ``history`` the judge's change-point checks use ``relative``, else the window
        history = history or relative or (canary, stable)
        histories.append((len(history[0].minutes), history[1] is not None, weight))
        return Verdict("continue", (), "test")

    s = parse_scenario({"name": "x", "seed": 1, "traffic_per_minute": 100, "expect": "promote",
                        "stable": BASE_DOC, "canary": BASE_DOC}, "x")  # fmt: skip
    policy = CanaryPolicy((CanaryStep(10, 3), CanaryStep(50, 2), CanaryStep(100)), post_promotion_minutes=2)
    r = replay(s, policy, judge=fn)
    assert r.verdict == "promoted"
    assert seen == [(1, True, None), (2, True, None), (3, True, None), (1, True, 4), (2, True, 5),
                    (1, False, None), (2, False, None)]  # fmt: skip
    # the change-point checks see every minute since minute 0 in every phase, stable only below 100 %
    assert histories == [(1, True, 10), (2, True, 10), (3, True, 10), (4, True, 50), (5, True, 50),
                         (6, False, 100), (7, False, 100)]  # fmt: skip
