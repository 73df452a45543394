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
    from stageflow.metrics.judge import judge

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
    ) -> tuple[Verdict, VersionSeries, VersionSeries | None]:
        """The window ``start``..``now`` for the absolute gates; with ``canary_start`` before
        ``start`` (a later step) the relative checks get both versions since ``canary_start``."""
        c = self.source.series(self.function, self.alias, canary, start, now)
        s = self.source.series(self.function, self.alias, stable, start, now) if stable else None
        firing = self.alarms.firing(list(self.alarm_names)) if self.alarms and self.alarm_names else []
        extra = {}
        if stable and canary_start is not None and canary_start < start:
            extra["relative"] = (
                self.source.series(self.function, self.alias, canary, canary_start, now),
                self.source.series(self.function, self.alias, stable, canary_start, now),
            )
        verdict = self.judge(c, s, self.gates, firing, window_complete=window_complete, **extra)
        return verdict, c, s
