"""The points a deployment report's charts draw (pure: a :class:`ReportData` in, points out)."""

from __future__ import annotations

from datetime import datetime

from stageflow.deploy.records import Deployment
from stageflow.deployment_report.data import ReportData
from stageflow.isotime import parse_iso
from stageflow.metrics.minutes import merge


def points(data: ReportData, role: str, what: str) -> list[tuple[datetime, float]]:
    """``role``'s (canary or stable) per-minute ``what`` (``error_rate`` in percent, ``latency_p95``
    in ms); for older records without minutes, the window's figure at each check."""
    rows = merge({"minutes": v.minutes} for v in data.verdicts).get(role, {})
    pts = []
    for at, r in rows.items():
        if what == "error_rate":
            if r["invocations"]:
                pts.append((parse_iso(at), r["errors"] / r["invocations"] * 100))
        elif r.get("p95_ms") is not None and r["invocations"]:
            pts.append((parse_iso(at), float(r["p95_ms"])))
    if pts or any(v.minutes for v in data.verdicts):
        return pts
    for v in data.verdicts:
        for r in v.results:
            if r.get("kind") != "absolute" or r.get("metric") != what:
                continue
            val = r.get("observed") if role == "canary" else r.get("baseline")
            if val is not None:
                pts.append((parse_iso(v.at), val * 100 if what == "error_rate" else val))
    return pts


def decisions(dep: Deployment) -> list[tuple[datetime, str]]:
    """Points where traffic moved or the run was decided: weight changes, approvals, the end (one label
    per moment: a rollback decided and done in the same minute reads ``rolling_back / rolled_back``)."""
    out: dict[datetime, list[str]] = {}
    for t in dep.transitions:
        if t.to_phase in ("shifting", "pending", "publishing") or not t.at:
            continue
        label = {"baking": f"{t.weight}%", "monitoring": "100%"}.get(t.to_phase, t.to_phase)
        labels = out.setdefault(parse_iso(t.at), [])
        if label not in labels:
            labels.append(label)
    return [(at, " / ".join(labels)) for at, labels in out.items()]


def weights(dep: Deployment) -> list[tuple[datetime, float]]:
    """The canary's traffic weight at each transition that recorded one."""
    return [(parse_iso(t.at), float(t.weight)) for t in dep.transitions if t.at and t.weight is not None]
