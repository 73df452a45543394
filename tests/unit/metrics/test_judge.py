"""The judge as tables: per-minute series of both versions -> expected decision and check outcomes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from stageflow.config import Gates
from stageflow.metrics.checks import fmt_ms, fmt_pct
from stageflow.metrics.interface import MinuteStats, VersionSeries
from stageflow.metrics.judge import judge, naive_judge

T0 = datetime(2024, 1, 1, tzinfo=UTC)
GATES = Gates(alarms=("api-errors",))


def series(version, minutes, inv, err, p95, *, p50=None, spike=None):
    """``minutes`` minutes of ``inv`` invocations with ``err`` errors each (ints or per-minute lists)."""
    rows = []
    for i in range(minutes):
        n = inv[i] if isinstance(inv, list) else inv
        e = err[i] if isinstance(err, list) else err
        lat = p95[i] if isinstance(p95, list) else p95
        if spike and i in spike:
            lat = spike[i]
        rows.append(
            MinuteStats(
                T0 + timedelta(minutes=i),
                n,
                e,
                p50_ms=None if lat is None or n == 0 else (p50 or lat / 3),
                p95_ms=None if n == 0 else lat,
                p99_ms=None if lat is None or n == 0 else lat * 1.5,
            )
        )
    return VersionSeries(version, tuple(rows), "test")


def jitter(base, k, amp=0.06):
    """Deterministic per-minute wobble of +-amp around base (real p95s are never constant)."""
    return [base * (1 + amp * ((i * 7919) % 11 - 5) / 5) for i in range(k)]


def errs(total, k):
    """``total`` errors spread over ``k`` minutes."""
    return [total // k + (1 if i < total % k else 0) for i in range(k)]


def outcomes(v):
    return {(r.metric, r.kind): r.outcome for r in v.results}


CASES = [
    # id, canary, stable, alarms, window_complete, decision, {(metric, kind): outcome}
    (
        "no data at all -> extend, never promote",
        series("2", 15, 0, 0, None),
        series("1", 15, 540, 3, jitter(450, 15)),
        [],
        True,
        "extend",
        {("error_rate", "absolute"): "nodata", ("latency_p95", "absolute"): "nodata"},
    ),
    (
        "no data mid-window -> continue baking",
        series("2", 3, 0, 0, None),
        series("1", 3, 540, 3, jitter(450, 3)),
        [],
        False,
        "continue",
        {("error_rate", "absolute"): "nodata"},
    ),
    (
        "thin traffic (2/min at 10 %) -> nodata -> extend",
        series("2", 15, 2, [0] * 14 + [1], jitter(600, 15, 0.3)),
        series("1", 15, 18, errs(3, 15), jitter(600, 15)),
        [],
        True,
        "extend",
        {("error_rate", "absolute"): "nodata", ("error_rate", "relative"): "nodata"},
    ),
    (
        "thin traffic after an extension (60 invocations, 1 % like stable) -> continue",
        series("2", 30, 2, errs(1, 30), jitter(600, 30, 0.3)),
        series("1", 30, 18, errs(5, 30), jitter(600, 30)),
        [],
        True,
        "continue",
        {("error_rate", "absolute"): "pass", ("error_rate", "relative"): "pass"},
    ),
    (
        "healthy, like stable -> continue",
        series("2", 15, 60, errs(5, 15), jitter(450, 15)),
        series("1", 15, 540, errs(40, 15), jitter(452, 15, 0.04)),
        [],
        True,
        "continue",
        {
            ("error_rate", "absolute"): "pass",
            ("latency_p95", "absolute"): "pass",
            ("error_rate", "relative"): "pass",
            ("latency_p95", "relative"): "pass",
            ("alarms", "alarm"): "pass",
        },
    ),
    (
        "relative regression under the gate: 2 % vs 0.5 % (4x) -> rollback",
        series("2", 15, 300, errs(90, 15), jitter(450, 15)),
        series("1", 15, 300, errs(22, 15), jitter(450, 15)),
        [],
        True,
        "rollback",
        {("error_rate", "relative"): "fail"},
    ),
    (
        "relative regression far under the gate: 0.8 % vs 0.1 % -> rollback",
        series("2", 15, 300, errs(36, 15), jitter(450, 15)),
        series("1", 15, 300, errs(4, 15), jitter(450, 15)),
        [],
        True,
        "rollback",
        {("error_rate", "absolute"): "pass", ("error_rate", "relative"): "fail"},
    ),
    (
        "trivial difference (0.55 % vs 0.5 %) on lots of traffic -> continue",
        series("2", 15, 30000, errs(2475, 15), jitter(450, 15)),
        series("1", 15, 30000, errs(2250, 15), jitter(450, 15)),
        [],
        True,
        "continue",
        {("error_rate", "relative"): "pass"},
    ),
    (
        "canary better than stable -> continue",
        series("2", 15, 300, errs(5, 15), jitter(300, 15)),
        series("1", 15, 300, errs(40, 15), jitter(600, 15)),
        [],
        True,
        "continue",
        {("error_rate", "relative"): "pass", ("latency_p95", "relative"): "pass"},
    ),
    (
        "stable spike (stable 8 % errors and slow, canary fine) -> continue",
        series("2", 15, 60, errs(4, 15), jitter(450, 15)),
        series("1", 15, 540, errs(650, 15), jitter(6000, 15)),
        [],
        True,
        "continue",
        {("error_rate", "absolute"): "pass", ("error_rate", "relative"): "pass"},
    ),
    (
        "stable broken, canary the partial fix (3 % vs 8 %) -> continue, gate waived",
        series("2", 15, 300, errs(135, 15), jitter(450, 15)),
        series("1", 15, 300, errs(360, 15), jitter(450, 15)),
        [],
        True,
        "continue",
        {("error_rate", "absolute"): "pass"},
    ),
    (
        "latency over the 5 s gate -> rollback",
        series("2", 15, 60, errs(1, 15), jitter(7000, 15)),
        series("1", 15, 540, errs(10, 15), jitter(1200, 15)),
        [],
        True,
        "rollback",
        {("latency_p95", "absolute"): "fail"},
    ),
    (
        "latency 2x stable under the gate -> rollback",
        series("2", 15, 300, errs(15, 15), jitter(900, 15)),
        series("1", 15, 300, errs(15, 15), jitter(450, 15)),
        [],
        True,
        "rollback",
        {("latency_p95", "relative"): "fail", ("latency_p95", "absolute"): "pass"},
    ),
    (
        "one cold-start minute x4 -> continue",
        series("2", 15, 60, errs(5, 15), jitter(450, 15), spike={0: 1800}),
        series("1", 15, 540, errs(40, 15), jitter(450, 15)),
        [],
        True,
        "continue",
        {("latency_p95", "relative"): "pass"},
    ),
    (
        "alarm firing -> rollback even mid-window",
        series("2", 2, 60, 0, jitter(450, 2)),
        series("1", 2, 540, 3, jitter(450, 2)),
        ["api-errors"],
        False,
        "rollback",
        {("alarms", "alarm"): "fail"},
    ),
    (
        "canary failing every request, first minute -> rollback",
        series("2", 1, 60, 60, [40]),
        series("1", 1, 540, 3, [450]),
        [],
        False,
        "rollback",
        {("error_rate", "absolute"): "fail"},
    ),
    (
        "canary failing every request on thin traffic (3 min x 2) -> rollback",
        series("2", 3, 2, 2, [40] * 3),
        series("1", 3, 18, 0, [450] * 3),
        [],
        False,
        "rollback",
        {("error_rate", "absolute"): "fail"},
    ),
    (
        "moderate evidence mid-window is not decisive (1.6 % at minute 5)",
        series("2", 5, 60, errs(5, 5), jitter(450, 5)),
        series("1", 5, 540, errs(14, 5), jitter(450, 5)),
        [],
        False,
        "continue",
        {("error_rate", "absolute"): "pass", ("error_rate", "relative"): "pass"},
    ),
    (
        "100 % on the canary (no stable baseline): absolute gates only",
        series("2", 30, 600, errs(90, 30), jitter(450, 30)),
        None,
        [],
        True,
        "continue",
        {("error_rate", "absolute"): "pass", ("latency_p95", "absolute"): "pass"},
    ),
    (
        "100 % on the canary over the error gate -> rollback",
        series("2", 30, 600, errs(540, 30), jitter(450, 30)),
        None,
        [],
        True,
        "rollback",
        {("error_rate", "absolute"): "fail"},
    ),
]


@pytest.mark.parametrize(
    "canary, stable, alarms, complete, decision, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_judge_table(canary, stable, alarms, complete, decision, expected):
    v = judge(canary, stable, GATES, alarms, window_complete=complete)
    got = outcomes(v)
    assert v.decision == decision, [r.detail for r in v.results]
    for key, outcome in expected.items():
        assert got[key] == outcome, (key, [r.detail for r in v.results])
    if stable is None:
        assert all(r.kind != "relative" for r in v.results)
    if decision == "rollback":
        assert v.reasons and all("(fail)" in r for r in v.reasons)
    if decision == "extend":
        assert v.reasons and all("(nodata)" in r for r in v.reasons)


def test_results_carry_their_numbers():
    canary = series("2", 15, 300, errs(90, 15), jitter(450, 15))
    stable = series("1", 15, 300, errs(22, 15), jitter(450, 15))
    v = judge(canary, stable, GATES, [], window_complete=True)
    rel = next(r for r in v.results if r.metric == "error_rate" and r.kind == "relative")
    assert rel.observed == pytest.approx(90 / 4500)
    assert rel.baseline == pytest.approx(22 / 4500)
    assert rel.threshold == GATES.relative_margin
    assert rel.p_value is not None and rel.p_value < GATES.alpha
    assert (rel.canary_count, rel.stable_count) == (4500, 4500)
    assert rel.detail.startswith("relative errors: canary 2.00% (90/4500) vs stable 0.49% (22/4500)")
    assert rel.detail in v.reasons  # (2 % is over the 1 % gate too: both are reasons)
    data = v.to_json()
    assert data["decision"] == "rollback" and data["source"] == "test"
    assert {r["metric"] for r in data["results"]} == {"alarms", "error_rate", "latency_p95"}


def test_latency_gate_detail_line():
    canary = series("2", 15, 60, 0, [6100.0 + i for i in range(15)])
    v = judge(canary, None, GATES, [], window_complete=True)
    gate = next(r for r in v.results if r.metric == "latency_p95")
    assert gate.outcome == "fail"
    assert gate.detail.startswith("gate p95: 6.1 s > 5.0 s over 15 min")
    assert gate.detail.endswith("(fail)")


def test_stricter_alpha_mid_window():
    """Evidence that rolls back at the window's end does not yet mid-window (multiple looks)."""
    canary = series("2", 15, 60, errs(16, 15), jitter(450, 15))
    stable = series("1", 15, 540, errs(40, 15), jitter(450, 15))
    end = judge(canary, stable, GATES, [], window_complete=True)
    mid = judge(canary, stable, GATES, [], window_complete=False)
    rel_p = next(r.p_value for r in end.results if r.kind == "relative" and r.metric == "error_rate")
    assert GATES.interim_alpha < rel_p < GATES.alpha
    assert (end.decision, mid.decision) == ("rollback", "continue")


def test_naive_policy_is_point_thresholds():
    thin = series("2", 15, 2, errs(1, 15), jitter(600, 15))
    assert naive_judge(thin, GATES).decision == "rollback"  # 1/30 = 3.3 % > 1 %: noise rolls back
    none = series("2", 15, 0, 0, None)
    assert naive_judge(none, GATES).decision == "continue"  # and no data passes


def test_formatting():
    assert fmt_pct(0.02) == "2.00%" and fmt_pct(0.0005) == "0.050%" and fmt_pct(0.25) == "25.0%"
    assert fmt_ms(450) == "450 ms" and fmt_ms(6100) == "6.1 s" and fmt_ms(None) == "n/a"


def _shift(s: VersionSeries, minutes: int) -> VersionSeries:
    return VersionSeries(
        s.version, tuple(replace(m, start=m.start + timedelta(minutes=minutes)) for m in s.minutes), s.source
    )


def _joined(first: VersionSeries, second: VersionSeries) -> VersionSeries:
    return VersionSeries(first.version, first.minutes + second.minutes, first.source)


def _rel_err(v):
    return next(r for r in v.results if r.metric == "error_rate" and r.kind == "relative")


def test_relative_errors_over_every_minute_since_the_canary_started():
    """2x errors (1 % vs 0.5 %): not significant in the 50 % step alone, significant over both steps."""
    step1_c = series("2", 15, 60, errs(9, 15), jitter(450, 15))
    step1_s = series("1", 15, 540, errs(40, 15), jitter(450, 15))
    step2_c = _shift(series("2", 15, 300, errs(45, 15), jitter(450, 15)), 15)
    step2_s = _shift(series("1", 15, 300, errs(22, 15), jitter(450, 15)), 15)
    alone = judge(step2_c, step2_s, GATES, [], window_complete=True)
    assert alone.decision == "continue" and _rel_err(alone).p_value > GATES.alpha
    both = (_joined(step1_c, step2_c), _joined(step1_s, step2_s))
    v = judge(step2_c, step2_s, GATES, [], window_complete=True, relative=both)
    rel = _rel_err(v)
    assert v.decision == "rollback" and rel.outcome == "fail", [r.detail for r in v.results]
    assert (rel.canary_count, rel.stable_count) == (900 + 4500, 8100 + 4500)
    assert rel.detail.endswith("(fail) [since the canary started]")
    # the absolute gates stay per window: 1.00 % over the 50 % step's 4500 invocations
    gate = next(r for r in v.results if r.metric == "error_rate" and r.kind == "absolute")
    assert gate.canary_count == 4500 and gate.outcome == "pass"
    # mid-window the longer span is held to interim_alpha like the window
    assert judge(step2_c, step2_s, GATES, [], window_complete=False, relative=both).decision == "continue"


def test_a_regression_in_the_window_is_not_diluted_by_the_longer_span():
    """Errors start in the 50 % step: the window fails even though the whole span would not."""
    step1_c = series("2", 60, 600, errs(30, 60), jitter(450, 60))
    step1_s = series("1", 60, 5400, errs(270, 60), jitter(450, 60))
    step2_c = _shift(series("2", 15, 300, errs(30, 15), jitter(450, 15)), 60)
    step2_s = _shift(series("1", 15, 300, errs(8, 15), jitter(450, 15)), 60)
    both = (_joined(step1_c, step2_c), _joined(step1_s, step2_s))
    v = judge(step2_c, step2_s, GATES, [], window_complete=True, relative=both)
    rel = _rel_err(v)
    assert v.decision == "rollback" and rel.outcome == "fail"
    assert "[since the canary started]" not in rel.detail and rel.canary_count == 4500
