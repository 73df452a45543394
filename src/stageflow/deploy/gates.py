"""Reading the gates for a window: metrics of canary and stable, alarms, and a judge's verdict."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from stageflow.config import Gates
from stageflow.metrics.interface import AlarmSource, MetricSource, Verdict, VersionSeries

# judge(canary, stable, gates, firing_alarms, *, window_complete[, relative]) -> Verdict
JudgeFn = Callable[..., Verdict]


def default_judge() -> JudgeFn:
    """The canary judge, imported at its first verdict: wiring an environment (as the on-call commands
    do) does not load scipy and numpy."""

    def judge(*args, **kwargs) -> Verdict:
        from stageflow.metrics.judge import judge as canary_judge

        return canary_judge(*args, **kwargs)

    return judge


@dataclass
class GateReader:
    source: MetricSource
    alarms: AlarmSource | None
    alarm_names: Sequence[str]
    gates: Gates
    function: str
    alias: str
    judge: JudgeFn

    def check(
        self,
        canary: str,
        stable: str | None,
        start: datetime,
        now: datetime,
        *,
        window_complete: bool,
        canary_start: datetime | None = None,
        weight: int | None = None,
    ) -> tuple[Verdict, VersionSeries, VersionSeries | None]:
        """The window ``start``..``now`` for the absolute gates; with ``canary_start`` before
        ``start`` (a later step) the relative checks get both versions since ``canary_start``, and the
        change-point checks (sustained breach, recent window) the canary since ``canary_start`` in
        every step, post-promotion monitoring included. ``weight``: the canary's percent of traffic
        (the step's gate overrides apply; without it a window with no stable version counts as 100 %)."""
        # one read per look: both versions over the widest window asked, sliced for the narrower one
        lo = canary_start if canary_start is not None and canary_start < start else start
        got = self.source.series_many(
            self.function, self.alias, [canary] + ([stable] if stable else []), lo, now
        )
        c_all, s_all = got[canary], (got[stable] if stable else None)
        c = c_all.since(start) if lo < start else c_all
        s = (s_all.since(start) if lo < start else s_all) if s_all is not None else None
        firing = self.alarms.firing(list(self.alarm_names)) if self.alarms and self.alarm_names else []
        extra = {}
        if lo < start:
            if s_all is not None:
                extra["relative"] = (c_all, s_all)
            extra["history"] = (c_all, s_all)
        if weight is not None:
            extra["weight"] = weight
        gates = self.gates.for_weight(weight if weight is not None else (None if stable else 100))
        verdict = self.judge(c, s, gates, firing, window_complete=window_complete, **extra)
        return verdict, c, s


# -- several functions, one verdict ------------------------------------------------------------------
_SEVERITY = {"continue": 0, "extend": 1, "rollback": 2}


def combine_verdicts(named: Sequence[tuple[str, Verdict]]) -> Verdict:
    """Every function's verdict as the release's: the most severe decision (one function failing a
    gate fails the release), each reason prefixed with its function's key so the verdict names it."""
    decision = max((v.decision for _k, v in named), key=lambda d: _SEVERITY.get(d, 0))
    reasons = tuple(f"{key}: {r}" for key, v in named for r in v.reasons)
    results = tuple(r for _k, v in named for r in v.results)
    return Verdict(decision, results, named[0][1].source, reasons)


def verdict_results(looks, single: bool) -> tuple[dict, ...]:
    """The results kept with a verdict; with several functions each names its function."""
    if single:
        return tuple(r.to_json() for r in looks[0][1].results)
    return tuple({**r.to_json(), "function": mem.key} for mem, v, _c, _s in looks for r in v.results)


def verdict_minutes(looks, single: bool, seen: datetime | None) -> dict:
    """The per-minute numbers kept with a verdict: ``canary``/``stable`` of the (first) function; with
    several, the others' as ``canary KEY``/``stable KEY``."""
    from stageflow.metrics import minutes

    out: dict = {}
    for i, (mem, _v, c, s) in enumerate(looks):
        rows = minutes.compact(c, s, since=seen)
        out.update(rows if i == 0 or single else {f"{role} {mem.key}": r for role, r in rows.items()})
    return out
