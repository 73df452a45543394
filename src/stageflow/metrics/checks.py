"""The window checks of the canary judge, each a :class:`MetricResult` with observed, baseline, threshold
or margin, p-value, counts and a human ``detail`` line (``judge.py`` combines them into a verdict;
``changepoint.py`` runs them again over the recent minutes).

``alarms``
    fail when any configured alarm is in ALARM (or does not exist: see ``CloudWatchAlarms``).
``error_rate`` (absolute)
    one-sided exact binomial test of H0 "the canary's true error rate <= gates.max_error_rate"; fail
    when rejected and the observed rate is over the gate. Thin traffic (fewer than
    gates.min_invocations canary invocations) is ``nodata``, unless the evidence is already
    overwhelming (p below the interim level: a canary failing every request fails in its first minute).
    Waived when the stable version over the same minutes is over the gate too and the canary is not
    worse than it: rolling back to an equally broken version helps nobody (the relative check decides).
``latency_p95`` (absolute)
    the window p95 (invocation-weighted mean of per-minute p95s) against gates.max_p95_ms, with a
    one-sided t-test on the log of per-minute p95s against the log of the gate; needs
    gates.min_latency_minutes minutes with latency data. Waived like the error gate.
``error_rate`` (relative)
    Fisher's exact test (one-sided: only a canary worse than stable counts) on errors/invocations of
    both versions over the same minutes; a regression must also exceed the effect-size margin: canary
    rate above stable * (1 + gates.relative_margin) and above stable + gates.error_margin.
``latency_p95`` (relative)
    Mann-Whitney U (one-sided) on the per-minute p95 series of both versions over the same minutes;
    the canary's median per-minute p95 must also exceed stable's by gates.relative_margin.

Mid-window looks reject only at ``gates.interim_alpha``; the look at the window's end uses
``gates.alpha`` (:func:`alpha_for`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import median

from scipy import special

from stageflow.config import Gates
from stageflow.metrics.fasttests import fisher_greater, mannwhitney_greater
from stageflow.metrics.interface import MetricResult, VersionSeries


# -- formatting --------------------------------------------------------------------------------------
def fmt_pct(x: float | None) -> str:
    if x is None:
        return "n/a"
    pct = x * 100
    if pct == 0 or pct >= 10:
        return f"{pct:.1f}%"
    if pct >= 0.1:
        return f"{pct:.2f}%"
    return f"{pct:.3f}%"


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x >= 1000:
        return f"{x / 1000:.1f} s"
    return f"{x:.0f} ms"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "p n/a"
    if p < 1e-4:
        return f"p={p:.1e}"
    return f"p={p:.4f}"


# -- the individual checks ---------------------------------------------------------------------------
def binom_greater(k: int, n: int, p0: float) -> float:
    if n == 0:
        return 1.0
    if p0 <= 0:
        return 0.0 if k > 0 else 1.0
    if p0 >= 1:
        return 1.0
    if k <= 0:
        return 1.0
    return float(special.bdtrc(k - 1, n, p0))  # P(X >= k), as sps.binom.sf(k - 1, n, p0), faster


def alpha_for(gates: Gates, window_complete: bool) -> float:
    return gates.alpha if window_complete else gates.interim_alpha


def log_ttest_greater(values: list[float], gate: float) -> float:
    """One-sided t-test: are the logs of ``values`` above log(gate)? Degenerate samples decide by value."""
    logs = [math.log(v) for v in values if v > 0]
    target = math.log(gate)
    if not logs:
        return 1.0
    n = len(logs)
    mean = math.fsum(logs) / n
    var = math.fsum((x - mean) ** 2 for x in logs) / (n - 1) if n > 1 else 0.0
    if n == 1 or var <= 1e-24:
        return 0.0 if mean > target else 1.0
    t = (mean - target) / math.sqrt(var / n)
    return float(special.stdtr(n - 1, -t))  # P(T >= t): the same as scipy's ttest_1samp, faster


def check_alarms(gates: Gates, firing: Sequence[str]) -> MetricResult:
    firing = list(firing)
    if firing:
        return MetricResult(
            "alarms",
            "alarm",
            "fail",
            observed=float(len(firing)),
            threshold=0.0,
            detail=f"gate alarms: {', '.join(firing)} in ALARM (fail)",
        )
    n = len(gates.alarms)
    what = f"none of {n} in ALARM" if n else "none in ALARM"
    return MetricResult(
        "alarms", "alarm", "pass", observed=0.0, threshold=0.0, detail=f"gate alarms: {what} (pass)"
    )


def _stable_also_breaks_errors(canary: VersionSeries, stable: VersionSeries | None, gates: Gates) -> bool:
    if stable is None or not stable.invocations or canary.error_rate is None:
        return False
    s_rate = stable.error_rate or 0.0
    return s_rate > gates.max_error_rate and canary.error_rate <= s_rate


def check_error_gate(
    canary: VersionSeries, stable: VersionSeries | None, gates: Gates, window_complete: bool
) -> MetricResult:
    n, k = canary.invocations, canary.errors
    rate = canary.error_rate
    gate = gates.max_error_rate
    base = dict(metric="error_rate", kind="absolute", threshold=gate, canary_count=n)
    if stable is not None:
        base["baseline"] = stable.error_rate
        base["stable_count"] = stable.invocations
    if n == 0:
        return MetricResult(
            **base, outcome="nodata", detail="gate errors: no canary invocations yet (nodata)"
        )
    p = binom_greater(k, n, gate)
    over = rate > gate
    head = f"gate errors: {fmt_pct(rate)} ({k}/{n})"
    decisive = over and p < alpha_for(gates, window_complete)
    if n < gates.min_invocations and not (over and p < gates.interim_alpha):
        return MetricResult(
            **base,
            outcome="nodata",
            observed=rate,
            p_value=p,
            detail=f"{head}, fewer than {gates.min_invocations} invocations (nodata)",
        )
    if decisive and _stable_also_breaks_errors(canary, stable, gates):
        return MetricResult(
            **base,
            outcome="pass",
            observed=rate,
            p_value=p,
            detail=f"{head} > {fmt_pct(gate)}, but stable is at {fmt_pct(stable.error_rate)}: "
            "not worse than the version it replaces (pass)",
        )
    if decisive:
        return MetricResult(
            **base,
            outcome="fail",
            observed=rate,
            p_value=p,
            detail=f"{head} > {fmt_pct(gate)}, {fmt_p(p)} (fail)",
        )
    cmp = ">" if over else "≤"
    note = ", not significant" if over else ""
    return MetricResult(
        **base,
        outcome="pass",
        observed=rate,
        p_value=p,
        detail=f"{head} {cmp} {fmt_pct(gate)}{note}, {fmt_p(p)} (pass)",
    )


def _latency_points(series: VersionSeries, attr: str = "p95_ms") -> list[float]:
    return [
        getattr(m, attr)
        for m in series.minutes
        if getattr(m, attr) is not None and m.invocations > 0 and getattr(m, attr) > 0
    ]


def _weighted_pct(series: VersionSeries | None, attr: str) -> float | None:
    if series is None:
        return None
    if attr == "p95_ms":
        return series.p95_ms
    pts = [
        (getattr(m, attr), m.invocations)
        for m in series.minutes
        if getattr(m, attr) is not None and m.invocations > 0
    ]
    total = sum(n for _, n in pts)
    return None if total == 0 else sum(v * n for v, n in pts) / total


def check_latency_gate(
    canary: VersionSeries,
    stable: VersionSeries | None,
    gates: Gates,
    window_complete: bool,
    metric: str = "latency_p95",
) -> MetricResult:
    """The window's p95 (or p99, ``metric="latency_p99"``) against its gate."""
    attr, label = ("p99_ms", "p99") if metric == "latency_p99" else ("p95_ms", "p95")
    pts = _latency_points(canary, attr)
    gate = gates.max_p99_ms if metric == "latency_p99" else gates.max_p95_ms
    observed = _weighted_pct(canary, attr)
    base = dict(
        metric=metric,
        kind="absolute",
        threshold=gate,
        canary_count=canary.invocations,
        observed=observed,
    )
    if stable is not None:
        base["baseline"] = _weighted_pct(stable, attr)
        base["stable_count"] = stable.invocations
    if len(pts) < gates.min_latency_minutes or canary.invocations < gates.min_invocations:
        return MetricResult(
            **base,
            outcome="nodata",
            detail=f"gate {label}: {fmt_ms(observed)} over {len(pts)} min with latency data "
            f"(need {gates.min_latency_minutes} min and {gates.min_invocations} invocations) (nodata)",
        )
    p = log_ttest_greater(pts, gate)
    over = observed is not None and observed > gate
    head = f"gate {label}: {fmt_ms(observed)}"
    decisive = over and p < alpha_for(gates, window_complete)
    stable_v = _weighted_pct(stable, attr)
    if decisive and stable_v is not None and stable_v > gate and observed <= stable_v:
        return MetricResult(
            **base,
            outcome="pass",
            p_value=p,
            detail=f"{head} > {fmt_ms(gate)}, but stable is at {fmt_ms(stable_v)}: "
            "not worse than the version it replaces (pass)",
        )
    if decisive:
        return MetricResult(
            **base,
            outcome="fail",
            p_value=p,
            detail=f"{head} > {fmt_ms(gate)} over {len(pts)} min, {fmt_p(p)} (fail)",
        )
    cmp = ">" if over else "≤"
    note = ", not significant" if over else ""
    return MetricResult(
        **base,
        outcome="pass",
        p_value=p,
        detail=f"{head} {cmp} {fmt_ms(gate)}{note} over {len(pts)} min (pass)",
    )


def aligned(canary: VersionSeries, stable: VersionSeries) -> tuple[VersionSeries, VersionSeries]:
    """Both series restricted to the minutes both have (same minutes, as the comparison needs)."""
    c_starts = {m.start for m in canary.minutes}
    s_starts = {m.start for m in stable.minutes}
    if c_starts == s_starts:
        return canary, stable
    both = c_starts & s_starts
    return (
        VersionSeries(canary.version, tuple(m for m in canary.minutes if m.start in both), canary.source),
        VersionSeries(stable.version, tuple(m for m in stable.minutes if m.start in both), stable.source),
    )


def check_error_relative(
    canary: VersionSeries, stable: VersionSeries, gates: Gates, window_complete: bool
) -> MetricResult:
    nc, kc, ns, ks = canary.invocations, canary.errors, stable.invocations, stable.errors
    rc = kc / nc if nc else None
    rs = ks / ns if ns else None
    margin = gates.relative_margin
    base = dict(
        metric="error_rate",
        kind="relative",
        observed=rc,
        baseline=rs,
        threshold=margin,
        canary_count=nc,
        stable_count=ns,
    )
    if nc < gates.min_invocations or ns < gates.min_invocations:
        # Overwhelming evidence still counts (a canary failing everything next to a healthy stable).
        if nc and ns and kc:
            p = float(fisher_greater(kc, nc, ks, ns))
            if p < gates.interim_alpha and _beyond_error_margin(rc, rs, gates):
                return MetricResult(
                    **base,
                    outcome="fail",
                    p_value=p,
                    detail=f"relative errors: canary {fmt_pct(rc)} ({kc}/{nc}) vs stable {fmt_pct(rs)} "
                    f"({ks}/{ns}), {fmt_p(p)} (fail)",
                )
        return MetricResult(
            **base,
            outcome="nodata",
            detail=f"relative errors: canary {nc} vs stable {ns} invocations, "
            f"need {gates.min_invocations} each (nodata)",
        )
    p = float(fisher_greater(kc, nc, ks, ns))
    beyond = _beyond_error_margin(rc, rs, gates)
    line = (
        f"relative errors: canary {fmt_pct(rc)} ({kc}/{nc}) vs stable {fmt_pct(rs)} ({ks}/{ns}), "
        f"margin +{margin:.0%} and +{fmt_pct(gates.error_margin)}, {fmt_p(p)}"
    )
    if beyond and p < alpha_for(gates, window_complete):
        return MetricResult(**base, outcome="fail", p_value=p, detail=f"{line} (fail)")
    return MetricResult(**base, outcome="pass", p_value=p, detail=f"{line} (pass)")


def _beyond_error_margin(rc: float, rs: float, gates: Gates) -> bool:
    return rc > rs * (1 + gates.relative_margin) and rc - rs > gates.error_margin


def check_latency_relative(
    canary: VersionSeries, stable: VersionSeries, gates: Gates, window_complete: bool
) -> MetricResult:
    # Only the minutes in which both versions had latency data are compared.
    both = {m.start for m in canary.minutes if m.p95_ms is not None and m.invocations > 0} & {
        m.start for m in stable.minutes if m.p95_ms is not None and m.invocations > 0
    }
    c = [m.p95_ms for m in canary.minutes if m.start in both]
    s = [m.p95_ms for m in stable.minutes if m.start in both]
    margin = gates.relative_margin
    c_med = median(c) if c else None
    s_med = median(s) if s else None
    base = dict(
        metric="latency_p95",
        kind="relative",
        observed=c_med,
        baseline=s_med,
        threshold=margin,
        canary_count=canary.invocations,
        stable_count=stable.invocations,
    )
    if len(c) < gates.min_latency_minutes:
        return MetricResult(
            **base,
            outcome="nodata",
            detail=f"relative p95: {len(c)} min with latency data from both versions, "
            f"need {gates.min_latency_minutes} (nodata)",
        )
    p = mannwhitney_greater(c, s)
    beyond = c_med > s_med * (1 + margin)
    line = (
        f"relative p95: canary {fmt_ms(c_med)} vs stable {fmt_ms(s_med)} "
        f"(median of {len(c)} per-minute p95s), "
        f"margin +{margin:.0%}, {fmt_p(p)}"
    )
    if beyond and p < alpha_for(gates, window_complete):
        return MetricResult(**base, outcome="fail", p_value=p, detail=f"{line} (fail)")
    return MetricResult(**base, outcome="pass", p_value=p, detail=f"{line} (pass)")
