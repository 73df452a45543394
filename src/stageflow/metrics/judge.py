"""The canary judge: the window checks (``checks.py``) and the change-point checks (``changepoint.py``)
combined into a verdict that shows its numbers.

``judge(canary, stable, gates, firing_alarms, window_complete=...)`` looks at one bake window so far
(the driver passes every minute since the step began, extensions included) and decides:

- ``rollback`` when any check fails;
- otherwise, mid-window, ``continue`` (keep baking);
- at the window's end, ``continue`` (go on to the next step) when every check passes, and ``extend``
  when any check has no data or too little to decide. It never promotes on no data.

Relative checks compare the versions over every minute since the canary first took traffic when the
caller passes those series (``relative=``; the driver does from the second step on, the 10 % and
50 % steps together): a small relative regression (2x a 0.5 % error rate) needs the traffic of both
steps to be told from noise, while the absolute gates stay per step window (a step's own traffic).

Relative checks need a baseline: when ``stable`` is None or carried no traffic (100 % on the canary,
post-promotion monitoring) they are left out and the absolute gates decide.

Multiple looks: the driver asks about once a virtual minute, so one window is tested many times.
Mid-window looks reject only at ``gates.interim_alpha`` (1e-5 by default: overwhelming evidence);
the look at the window's end uses ``gates.alpha`` (3e-3). Over a 60-minute prod policy that keeps the
false-rollback rate of a healthy canary under 1 % (bench/judge_bench.py measures it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from stageflow.config import Gates
from stageflow.metrics import changepoint as cp
from stageflow.metrics.checks import (
    aligned,
    check_alarms,
    check_error_gate,
    check_error_relative,
    check_latency_gate,
    check_latency_relative,
    fmt_ms,
    fmt_pct,
)
from stageflow.metrics.interface import MetricResult, Verdict, VersionSeries

_RANK = {"fail": 0, "warn": 1, "pass": 1, "nodata": 2}


def _worst(results) -> MetricResult:
    """One relative check over several spans (the window; every minute since the canary started):
    a fail on any span decides; else a pass on any span; else nodata. Spans given window first."""
    results = list(results)
    return min(results, key=lambda r: _RANK[r.outcome])


# -- the verdict -------------------------------------------------------------------------------------
def _with_fail(primary: MetricResult, *extra: MetricResult | None) -> MetricResult:
    """``primary`` (the window's check) unless one of the change-point checks of the same metric
    fails: those only add failures, never data (extensions stay the window's business)."""
    if primary.outcome == "fail":
        return primary
    for r in extra:
        if r is not None and r.outcome == "fail":
            return r
    return primary


def judge(
    canary: VersionSeries,
    stable: VersionSeries | None,
    gates: Gates,
    firing_alarms: Sequence[str],
    *,
    window_complete: bool,
    relative: tuple[VersionSeries, VersionSeries] | None = None,
    history: tuple[VersionSeries, VersionSeries | None] | None = None,
    weight: int | None = None,
) -> Verdict:
    """Judge one bake window so far. See the module docstring for the checks and the decision.

    ``relative``: canary and stable over every minute since the canary first took traffic (the
    driver passes them from the second step on); the relative checks use them instead of the window.
    ``history``: canary (and stable, or None at 100 %) over every minute since the canary first took
    traffic, for the change-point checks (sustained breach, recent window; ``changepoint.py``);
    without it they look at the window. ``weight``: the canary's percent of traffic in this window,
    for the throughput check. ``gates`` are the gates in force at this step (``Gates.for_weight``)."""
    if stable is not None and stable.invocations == 0:
        stable = None  # 100 % on the canary: no baseline in these minutes
    if stable is not None:
        canary, stable = aligned(canary, stable)
        if stable.invocations == 0:
            stable = None
    if history is None:
        history = relative if relative is not None else (canary, stable)
    h_c, h_s = history
    if stable is None or (h_s is not None and h_s.invocations == 0):
        h_s = None  # no baseline now (100 %): no relative change-point checks either
    recent = cp.recent_results(h_c, h_s, gates)
    results = _absolute_results(canary, stable, gates, firing_alarms, window_complete, (h_c, h_s), recent)
    if stable is not None:
        results += _relative_results(canary, stable, gates, window_complete, relative, recent)
        if weight is not None:
            results.append(cp.check_throughput(canary, stable, weight, gates, window_complete))
    return _verdict(results, window_complete, canary.source)


def _absolute_results(canary, stable, gates, firing_alarms, window_complete, history, recent):
    """Alarms and the absolute gates of the window, each with the change-point checks of its metric."""
    h_c, h_s = history
    origin = h_c.minutes[0].start if h_c.minutes else None
    results = [
        check_alarms(gates, firing_alarms),
        _with_fail(
            check_error_gate(canary, stable, gates, window_complete),
            cp.check_sustained_errors(h_c, h_s, gates, origin),
            recent.get(("error_rate", "absolute")),
        ),
        _with_fail(
            check_latency_gate(canary, stable, gates, window_complete),
            cp.check_sustained_latency(h_c, h_s, gates, "latency_p95", gates.max_p95_ms, origin),
            recent.get(("latency_p95", "absolute")),
        ),
    ]
    if gates.max_p99_ms is not None:
        results.append(
            _with_fail(
                check_latency_gate(canary, stable, gates, window_complete, metric="latency_p99"),
                cp.check_sustained_latency(h_c, h_s, gates, "latency_p99", gates.max_p99_ms, origin),
                recent.get(("latency_p99", "absolute")),
            )
        )
    return results


def _relative_results(canary, stable, gates, window_complete, relative, recent) -> list[MetricResult]:
    """The relative checks over the window and, when given, every minute since the canary started."""
    spans = [(canary, stable)]
    if relative is not None:
        rel_c, rel_s = aligned(*relative)
        if rel_s.invocations and len(rel_c.minutes) > len(canary.minutes):
            spans.append((rel_c, rel_s))
    results = []
    for check in (check_error_relative, check_latency_relative):
        found = [check(c, s, gates, window_complete) for c, s in spans]
        if len(found) > 1:
            found[1] = replace(found[1], detail=f"{found[1].detail} [since the canary started]")
        worst = _worst(found)
        results.append(_with_fail(worst, recent.get((worst.metric, "relative"))))
    return results


def _verdict(results: list[MetricResult], window_complete: bool, source: str) -> Verdict:
    failed = [r for r in results if r.outcome == "fail"]
    nodata = [r for r in results if r.outcome == "nodata"]
    findings = tuple(r.detail for r in results if r.outcome == "warn")
    if failed:
        decision = "rollback"
        reasons = tuple(r.detail for r in failed)
    elif not window_complete:
        decision = "continue"
        reasons = ()
    elif nodata:
        decision = "extend"
        reasons = tuple(r.detail for r in nodata)
    else:
        decision = "continue"
        reasons = ()
    return Verdict(decision=decision, results=tuple(results), source=source, reasons=reasons + findings)


def naive_judge(canary: VersionSeries, gates: Gates, firing_alarms: Sequence[str] = ()) -> Verdict:
    """The design's first policy, for comparison: absolute thresholds on the window's point values,
    checked at the end of each window; no statistics, no baseline, and no data counts as a pass."""
    results = []
    rate = canary.error_rate
    if rate is not None and rate > gates.max_error_rate:
        results.append(
            MetricResult("error_rate", "absolute", "fail", observed=rate, threshold=gates.max_error_rate,
                         canary_count=canary.invocations,
                         detail=f"gate errors: {fmt_pct(rate)} > {fmt_pct(gates.max_error_rate)} (fail)")
        )  # fmt: skip
    p95 = canary.p95_ms
    if p95 is not None and p95 > gates.max_p95_ms:
        results.append(
            MetricResult("latency_p95", "absolute", "fail", observed=p95, threshold=gates.max_p95_ms,
                         canary_count=canary.invocations,
                         detail=f"gate p95: {fmt_ms(p95)} > {fmt_ms(gates.max_p95_ms)} (fail)")
        )  # fmt: skip
    if firing_alarms:
        results.append(check_alarms(gates, firing_alarms))
    decision = "rollback" if results else "continue"
    return Verdict(decision, tuple(results), canary.source, tuple(r.detail for r in results))
