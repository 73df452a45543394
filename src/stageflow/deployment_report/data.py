"""What a deployment report shows, read through the ``DeploymentHistory`` port."""

from __future__ import annotations

from dataclasses import dataclass

from stageflow.deploy.records import Deployment, VerdictRecord
from stageflow.metrics.minutes import merge
from stageflow.ports import DeploymentHistory


@dataclass(frozen=True)
class ReportData:
    deployment: Deployment
    verdicts: tuple[VerdictRecord, ...]  # every verdict, oldest first
    max_error_rate: float | None
    max_p95_ms: float | None

    def to_json(self) -> dict:
        verdicts = [v.to_json() for v in self.verdicts]
        return {
            "deployment": self.deployment.to_json(),
            "verdicts": verdicts,
            "series": merge(verdicts),
            "thresholds": {"max_error_rate": self.max_error_rate, "max_p95_ms": self.max_p95_ms},
        }


def recorded_thresholds(verdicts: tuple[VerdictRecord, ...]) -> tuple[float | None, float | None]:
    """``(max error rate, max p95 ms)`` as the absolute gates recorded them (the last one wins)."""
    err = p95 = None
    for v in verdicts:
        for r in v.results:
            if r.get("kind") == "absolute" and r.get("threshold") is not None:
                if r.get("metric") == "error_rate":
                    err = r["threshold"]
                elif r.get("metric") == "latency_p95":
                    p95 = r["threshold"]
    return err, p95


def gather(history: DeploymentHistory, deployment: Deployment, gates=None) -> ReportData:
    """Everything a report shows. Thresholds: as recorded in the verdicts, else ``gates`` (config)."""
    recorded = history.all_verdicts(deployment.deployment_id) or deployment.verdicts
    verdicts = tuple(recorded)
    err, p95 = recorded_thresholds(verdicts)
    if gates is not None:
        err = err if err is not None else gates.max_error_rate
        p95 = p95 if p95 is not None else gates.max_p95_ms
    return ReportData(deployment, verdicts, err, p95)
