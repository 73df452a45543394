"""The DORA figures' types and the design's targets (no I/O)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from stageflow.isotime import iso

TARGETS = {
    "deployments_per_week": 1.0,  # at least
    "lead_time_hours": 2.0,  # below
    "change_failure_rate": 0.05,  # below
    "time_to_restore_minutes": 30.0,  # below
}
FINISHED = ("succeeded", "rolled_back", "failed")


def iso_or_none(t: datetime | None) -> str | None:
    return None if t is None else iso(t)


@dataclass(frozen=True)
class Change:
    deployment_id: str
    version: str
    status: str
    started_at: datetime
    first_traffic: datetime
    ended_at: datetime | None
    promoted_at: datetime | None
    commit_time: datetime | None
    hotfix: bool
    failure: str | None = None  # rolled_back | rollback_failed | followed_by_rollback | followed_by_hotfix
    restore_seconds: float | None = None
    restore_open: bool = False
    uncommitted: bool = False  # shipped with uncommitted changes: lead time from the deployment's start
    functions: tuple[str, ...] = ()  # a release of several functions: their keys (one change for all)

    @property
    def lead_time_seconds(self) -> float | None:
        if self.promoted_at is None or self.commit_time is None:
            return None
        return (self.promoted_at - self.commit_time).total_seconds()

    def to_json(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, datetime):
                d[k] = iso(v)
        d["lead_time_seconds"] = self.lead_time_seconds
        return d


@dataclass(frozen=True)
class Figure:
    name: str
    value: float | None
    unit: str
    target: str
    meets_target: bool | None
    detail: str
    band: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DoraReport:
    environment: str
    since: datetime
    until: datetime
    days: float
    changes: tuple[Change, ...]
    deployment_frequency: Figure
    lead_time: Figure
    change_failure_rate: Figure
    time_to_restore: Figure
    weeks: tuple[dict, ...] = field(default=())

    @property
    def figures(self) -> tuple[Figure, ...]:
        return (self.deployment_frequency, self.lead_time, self.change_failure_rate, self.time_to_restore)

    def to_json(self) -> dict:
        return {
            "environment": self.environment,
            "since": iso(self.since),
            "until": iso(self.until),
            "days": self.days,
            "figures": {f.name: f.to_json() for f in self.figures},
            "weeks": list(self.weeks),
            "changes": [c.to_json() for c in self.changes],
        }
