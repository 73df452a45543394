"""What flows between metric sources, the judge and the canary driver.

Sources read per-version metrics of a Lambda alias over a window, minute by minute; the judge turns a
canary series and a stable series (same alias, same minutes) into a :class:`Verdict` that carries its
numbers. The driver only knows these types.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Literal

Outcome = Literal["pass", "fail", "nodata", "warn"]  # warn: a finding that does not decide
Decision = Literal["continue", "rollback", "extend"]


@dataclass(frozen=True)
class MinuteStats:
    """One minute of one version's traffic through the alias."""

    start: datetime
    invocations: int
    errors: int
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


@dataclass(frozen=True)
class VersionSeries:
    version: str
    minutes: tuple[MinuteStats, ...]
    source: str  # which source produced it: "cloudwatch" or "local-simulator"

    def since(self, start: datetime) -> VersionSeries:
        """The minutes from ``start`` on (a whole minute at or after it), as a source asked for
        ``start``..same end would have answered."""
        return VersionSeries(self.version, tuple(m for m in self.minutes if m.start >= start), self.source)

    @property
    def invocations(self) -> int:
        return sum(m.invocations for m in self.minutes)

    @property
    def errors(self) -> int:
        return sum(m.errors for m in self.minutes)

    @property
    def error_rate(self) -> float | None:
        n = self.invocations
        return None if n == 0 else self.errors / n

    @property
    def p95_series(self) -> tuple[float, ...]:
        return tuple(m.p95_ms for m in self.minutes if m.p95_ms is not None and m.invocations > 0)

    @property
    def p95_ms(self) -> float | None:
        """The window's p95: the invocation-weighted mean of per-minute p95s (CloudWatch has no
        cross-minute percentile without raw samples)."""
        pts = [(m.p95_ms, m.invocations) for m in self.minutes if m.p95_ms is not None and m.invocations > 0]
        total = sum(n for _, n in pts)
        return None if total == 0 else sum(v * n for v, n in pts) / total


class MetricSource(abc.ABC):
    """Per-version metrics of an alias. Implementations: CloudWatch (production), local simulator."""

    name: str = "abstract"

    @abc.abstractmethod
    def series(
        self, function: str, alias: str, version: str, start: datetime, end: datetime
    ) -> VersionSeries:
        """Minute-by-minute stats of ``version`` executed through ``function:alias`` in [start, end)."""

    def series_many(
        self, function: str, alias: str, versions: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, VersionSeries]:
        """:meth:`series` of several versions over the same minutes; sources that can read them in
        one request (both CloudWatch sources: one GetMetricData per look) override this."""
        return {v: self.series(function, alias, v, start, end) for v in dict.fromkeys(versions)}


class AlarmSource(abc.ABC):
    @abc.abstractmethod
    def firing(self, names: Sequence[str]) -> list[str]:
        """The alarms among ``names`` whose state is ALARM."""


class TrafficFeed(abc.ABC):
    """Local mode only: makes the traffic production gets for free, up to the clock's now."""

    @abc.abstractmethod
    def run_until(self, now: datetime, weights: Mapping[str, int], roles: Mapping[str, str]) -> None:
        """Publish every whole minute up to ``now``. ``weights``: version -> percent of alias traffic;
        ``roles``: version -> "stable" | "canary"."""


@dataclass(frozen=True)
class MetricResult:
    metric: str  # "error_rate", "latency_p95", "latency_p99", "throughput", "alarms"
    kind: Literal["absolute", "relative", "alarm", "sustained"]
    outcome: Outcome
    observed: float | None = None
    baseline: float | None = None  # the stable version's value, for relative checks
    threshold: float | None = None  # absolute limit, or the margin for relative checks
    p_value: float | None = None
    canary_count: int = 0
    stable_count: int = 0
    detail: str = ""  # the human line, e.g. "gate p95: 6.1 s > 5.0 s (fail)"

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    results: tuple[MetricResult, ...]
    source: str
    # one per failed or decisive check, with numbers; then the findings (``warn``) of any decision
    reasons: tuple[str, ...] = field(default=())

    def to_json(self) -> dict:
        return {
            "decision": self.decision,
            "source": self.source,
            "reasons": list(self.reasons),
            "results": [r.to_json() for r in self.results],
        }
