"""Change-point-aware checks: what a test over a whole window cannot see.

A window that holds two regimes (fifteen healthy minutes, then fifteen at 8 s) averages them: the
window's p95 stays under the gate and its t-test is not significant, so a regression that starts
partway through a window would be promoted. Two checks look at the end of the canary's history
instead (every minute since it first took traffic, across steps):

``sustained`` (the design's rule, "error rate > 1 % or p95 > 5 s **for 10 consecutive minutes**")
    the trailing run of minutes in which the gate is broken (each minute's own error rate, p95 or
    p99 over its gate; minutes without traffic neither count nor break the run). The run fails when
    it is ``gates.sustained_minutes`` long and its pooled evidence is significant at ``gates.alpha``
    (a one-sided binomial test of the run's errors against the gate, or a t-test of its log
    per-minute percentiles against the log of the gate), or when it is at least
    ``gates.sustained_min_minutes`` long and the evidence is overwhelming (p < ``interim_alpha``).
``recent`` (a sliding recent-window test: the sequential detector)
    every window check again over the last ``gates.recent_minutes`` minutes only, at
    ``gates.recent_alpha``, each leaving out the canary's single worst minute for its metric (a
    one-minute blip is not a change): a late onset, a slow drift or intermittent bursts are diluted
    over a long window but plain in the recent one. Only fails count here: a recent window with too
    little data changes nothing (the window's own checks decide about extensions).

``throughput`` (needs the stable version and the weight)
    the canary's invocations per percent of weight against stable's over the same minutes: Lambda
    does not count throttled requests as invocations, so a canary that serves more than
    ``gates.max_throughput_drop`` (20 %) fewer than its share, significantly (one-sided binomial test
    of its share of the alias's invocations), is a finding (``warn``): reported with its numbers in
    the verdict's reasons, for a person to investigate (the design: "throughput drop > 20 % → manual
    investigation"); it does not roll back by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from stageflow.config import Gates
from stageflow.metrics import checks as j
from stageflow.metrics.fasttests import binom_cdf
from stageflow.metrics.interface import MetricResult, MinuteStats, VersionSeries

PCT_ATTR = {"latency_p95": "p95_ms", "latency_p99": "p99_ms"}
PCT_LABEL = {"latency_p95": "p95", "latency_p99": "p99"}


def trailing_run(minutes, breached: Callable[[MinuteStats], bool | None]) -> list[MinuteStats]:
    """The last consecutive minutes in which ``breached`` holds; minutes it says None about (no
    traffic) are skipped without breaking the run."""
    run: list[MinuteStats] = []
    for m in reversed(minutes):
        b = breached(m)
        if b is None:
            continue
        if not b:
            break
        run.append(m)
    run.reverse()
    return run


def _span(run: list[MinuteStats], origin) -> str:
    if origin is None:
        return f"{len(run)} consecutive min"
    a = int((run[0].start - origin).total_seconds() // 60)
    b = int((run[-1].start - origin).total_seconds() // 60)
    return f"{len(run)} consecutive min (canary minutes {a}–{b})"


def _decisive(k: int, p: float, gates: Gates) -> bool:
    return (k >= gates.sustained_minutes and p < gates.alpha) or (
        k >= gates.sustained_min_minutes and p < gates.interim_alpha
    )


def check_sustained_errors(
    canary: VersionSeries, stable: VersionSeries | None, gates: Gates, origin=None
) -> MetricResult:
    gate = gates.max_error_rate
    run = trailing_run(
        canary.minutes, lambda m: None if m.invocations <= 0 else m.errors / m.invocations > gate
    )
    n, e = sum(m.invocations for m in run), sum(m.errors for m in run)
    base = dict(metric="error_rate", kind="sustained", threshold=gate, canary_count=n)
    if not run:
        return MetricResult(
            **base, outcome="pass", detail="sustained errors: last minute within the gate (pass)"
        )
    rate = e / n
    p = j.binom_greater(e, n, gate)
    head = f"sustained errors: {j.fmt_pct(rate)} ({e}/{n}) > {j.fmt_pct(gate)} for {_span(run, origin)}"
    enough = n >= gates.min_invocations or p < gates.interim_alpha
    if enough and _decisive(len(run), p, gates):
        if stable is not None:
            starts = {m.start for m in run}
            s_n = sum(m.invocations for m in stable.minutes if m.start in starts)
            s_e = sum(m.errors for m in stable.minutes if m.start in starts)
            if s_n and s_e / s_n > gate and rate <= s_e / s_n:
                return MetricResult(
                    **base, outcome="pass", observed=rate, p_value=p,
                    detail=f"{head}, but stable is at {j.fmt_pct(s_e / s_n)}: not worse than the version "
                    "it replaces (pass)",
                )  # fmt: skip
        return MetricResult(
            **base, outcome="fail", observed=rate, p_value=p, detail=f"{head}, {j.fmt_p(p)} (fail)"
        )
    return MetricResult(
        **base, outcome="pass", observed=rate, p_value=p, detail=f"{head}, {j.fmt_p(p)} (pass)"
    )


def _weighted(minutes, attr: str) -> float | None:
    pts = [
        (getattr(m, attr), m.invocations)
        for m in minutes
        if getattr(m, attr) is not None and m.invocations > 0
    ]
    total = sum(n for _, n in pts)
    return None if total == 0 else sum(v * n for v, n in pts) / total


def check_sustained_latency(
    canary: VersionSeries, stable: VersionSeries | None, gates: Gates, metric: str, gate: float, origin=None
) -> MetricResult:
    attr, label = PCT_ATTR[metric], PCT_LABEL[metric]

    def breached(m: MinuteStats) -> bool | None:
        v = getattr(m, attr)
        return None if v is None or m.invocations <= 0 else v > gate

    run = trailing_run(canary.minutes, breached)
    n = sum(m.invocations for m in run)
    base = dict(metric=metric, kind="sustained", threshold=gate, canary_count=n)
    if not run:
        return MetricResult(
            **base, outcome="pass", detail=f"sustained {label}: last minute within the gate (pass)"
        )
    observed = _weighted(run, attr)
    head = f"sustained {label}: {j.fmt_ms(observed)} > {j.fmt_ms(gate)} for {_span(run, origin)}"
    if len(run) < min(gates.sustained_min_minutes, gates.sustained_minutes) or n < gates.min_invocations:
        return MetricResult(**base, outcome="pass", observed=observed, detail=f"{head} (pass)")
    p = j.log_ttest_greater([getattr(m, attr) for m in run], gate)
    if _decisive(len(run), p, gates):
        if stable is not None:
            starts = {m.start for m in run}
            s_obs = _weighted([m for m in stable.minutes if m.start in starts], attr)
            if s_obs is not None and s_obs > gate and observed <= s_obs:
                return MetricResult(
                    **base, outcome="pass", observed=observed, p_value=p,
                    detail=f"{head}, but stable is at {j.fmt_ms(s_obs)}: not worse than the version it "
                    "replaces (pass)",
                )  # fmt: skip
        return MetricResult(
            **base, outcome="fail", observed=observed, p_value=p, detail=f"{head}, {j.fmt_p(p)} (fail)"
        )
    return MetricResult(
        **base, outcome="pass", observed=observed, p_value=p, detail=f"{head}, {j.fmt_p(p)} (pass)"
    )


def recent(series: VersionSeries, minutes: int) -> VersionSeries:
    return VersionSeries(series.version, series.minutes[-minutes:], series.source)


def _without(series: VersionSeries, minute) -> VersionSeries:
    return VersionSeries(series.version, tuple(m for m in series.minutes if m.start != minute), series.source)


def recent_results(
    canary: VersionSeries, stable: VersionSeries | None, gates: Gates
) -> dict[tuple[str, str], MetricResult]:
    """The window's checks over the last ``gates.recent_minutes`` minutes at ``gates.recent_alpha``;
    only their fails, keyed by (metric, kind). Empty when the history is not longer than that.

    Each test leaves out the canary's single worst minute for its metric (most errors; highest
    percentile): one bad minute is a blip, not a change (the design's rule wants a breach that lasts);
    bursts, drifts and late onsets span several minutes and still show."""
    r = gates.recent_minutes
    if r <= 0 or len(canary.minutes) <= r:
        return {}
    rc = recent(canary, r)
    starts = {m.start for m in rc.minutes}
    rs = None
    if stable is not None:
        rs = VersionSeries(
            stable.version, tuple(m for m in stable.minutes if m.start in starts), stable.source
        )
        if rs.invocations == 0:
            rs = None
    g = replace(gates, alpha=gates.recent_alpha)

    def worst(key):
        with_data = [m for m in rc.minutes if m.invocations > 0 and key(m) is not None]
        return max(with_data, key=key).start if with_data else None

    by_errors = worst(lambda m: m.errors)
    by_p95 = worst(lambda m: m.p95_ms)
    by_p99 = worst(lambda m: m.p99_ms)

    def cut(minute):
        c = _without(rc, minute)
        s = _without(rs, minute) if rs is not None else None
        return c, s

    found = []
    c, s = cut(by_errors)
    found.append(j.check_error_gate(c, s, g, True))
    if s is not None:
        found.append(j.check_error_relative(*j.aligned(c, s), g, True))
    c, s = cut(by_p95)
    found.append(j.check_latency_gate(c, s, g, True))
    if s is not None:
        found.append(j.check_latency_relative(*j.aligned(c, s), g, True))
    if gates.max_p99_ms is not None:
        c, s = cut(by_p99)
        found.append(j.check_latency_gate(c, s, g, True, metric="latency_p99"))
    out = {}
    for res in found:
        if res.outcome == "fail":
            out[(res.metric, res.kind)] = replace(res, detail=f"{res.detail} [last {r} min but its worst]")
    return out


def check_throughput(
    canary: VersionSeries, stable: VersionSeries, weight: int, gates: Gates, window_complete: bool
) -> MetricResult:
    """The canary's invocations per percent of weight vs stable's over the same minutes."""
    nc, ns = canary.invocations, stable.invocations
    limit = gates.max_throughput_drop
    base = dict(metric="throughput", kind="relative", threshold=limit, canary_count=nc, stable_count=ns)
    if not 0 < weight < 100 or nc + ns < gates.min_invocations:
        return MetricResult(
            **base, outcome="pass", detail=f"throughput: {nc} canary vs {ns} stable invocations, too few to "
            "compare (pass)",
        )  # fmt: skip
    per_c, per_s = nc / weight, ns / (100 - weight)
    drop = 1 - per_c / per_s if per_s > 0 else 0.0
    p = binom_cdf(nc, nc + ns, weight / 100)  # P(canary share this low | it got its weight)
    line = (
        f"throughput: canary {per_c:.1f} vs stable {per_s:.1f} invocations per % of weight "
        f"({nc} at {weight}%, {ns} at {100 - weight}%)"
    )
    if drop > limit and p < j.alpha_for(gates, window_complete):
        return MetricResult(
            **base, outcome="warn", observed=drop, p_value=p,
            detail=f"{line}: {drop:.0%} lower > {limit:.0%}, {j.fmt_p(p)} "
            "(finding: investigate, e.g. throttling)",
        )  # fmt: skip
    what = f"{drop:.0%} lower" if drop > 0 else "not lower"
    return MetricResult(**base, outcome="pass", observed=drop, p_value=p, detail=f"{line}: {what} (pass)")
