"""What an incident record holds, and how one is opened from a rolled-back deployment or a rollback
outside a deployment. Pure: the caller gives the records and the time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from stageflow.isotime import id_stamp, iso, parse_iso

POSTMORTEM_DAYS = 5  # a blameless post-mortem is due within five days of the incident


@dataclass(frozen=True)
class Incident:
    """One incident. ``key`` is the deployment it ended (a canary rollback, or a rollback that closed a
    deployment in flight) or the rollback event's time, so the same rollback never opens two."""

    key: str
    environment: str
    service: str
    opened_at: str  # when the rollback happened (the record's time)
    trigger: str  # "canary" (a gate or an alarm during the canary), "alarm", "manual", "rejected"
    reason: str
    who: str
    bad_version: str | None  # the version traffic was taken from
    restored_version: str | None  # the version that serves afterwards
    deployment_id: str = ""
    impact_start: str | None = None  # when the bad version first took traffic (None: unknown)
    restored_at: str | None = None  # when all traffic was back (None: the restore failed)
    verdict: Mapping[str, Any] = field(default_factory=dict)  # decision, reasons, the numbers read
    postmortem_due: str = ""

    @property
    def time_to_restore_s(self) -> float | None:
        if not self.impact_start or not self.restored_at:
            return None
        return max(0.0, (parse_iso(self.restored_at) - parse_iso(self.impact_start)).total_seconds())

    @property
    def status(self) -> str:
        return "restored" if self.restored_at else "restore_failed"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["verdict"] = dict(self.verdict)
        out["time_to_restore_s"] = self.time_to_restore_s
        out["status"] = self.status
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Incident:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _due(opened: datetime) -> str:
    return iso(opened + timedelta(days=POSTMORTEM_DAYS))


def _verdict(dep) -> dict[str, Any]:
    if not dep.verdicts:
        return {}
    v = dep.verdicts[-1]
    return {
        "at": v.at,
        "decision": v.decision,
        "weight": v.weight,
        "reasons": list(v.reasons),
        "results": [dict(r) for r in v.results],
    }


def _trigger(reason: str) -> str:
    low = reason.lower()
    if "reject" in low:
        return "rejected"
    if "alarm" in low:
        return "alarm"
    return "canary"


def from_deployment(dep, now: datetime) -> Incident:
    """The incident of a deployment the canary rolled back (a gate, an alarm, a person's reject, a
    deadline) — or failed to roll back (``phase`` ``failed``: not restored): its traffic began at
    ``state.canary_start`` and was restored at ``now``."""
    state = dep.state
    restored = dep.phase == "rolled_back"
    return Incident(
        key=dep.deployment_id,
        environment=dep.environment,
        service=dep.service,
        opened_at=iso(now),
        trigger=_trigger(state.reason),
        reason=state.reason,
        who=dep.who,
        bad_version=dep.version,
        restored_version=dep.previous_version,
        deployment_id=dep.deployment_id,
        impact_start=state.canary_start,
        restored_at=iso(now) if restored else None,
        verdict=_verdict(dep),
        postmortem_due=_due(now),
    )


def from_rollback(
    *,
    environment: str,
    service: str,
    now: datetime,
    trigger: str,
    reason: str,
    who: str,
    from_weights: Mapping[str, int],
    to_version: str,
    deployment=None,
    bad=None,
    restored: bool = True,
) -> Incident:
    """The incident of a rollback outside the canary (on-call, an alarm). ``deployment``: the one in
    flight it closed (if any); ``bad``: the deployment that shipped the version traffic was taken from
    (its promotion, or first traffic, is when the impact began)."""
    moved = sorted(
        (v for v, w in from_weights.items() if w and v != to_version), key=lambda v: -from_weights[v]
    )
    source = deployment or bad
    impact = None
    if source is not None:
        promoted = next((t.at for t in source.transitions if t.to_phase in ("monitoring", "succeeded")), None)
        impact = source.state.canary_start or promoted or source.started_at
    return Incident(
        key=deployment.deployment_id if deployment is not None else f"{id_stamp(now)}-rollback",
        environment=environment,
        service=service,
        opened_at=iso(now),
        trigger=trigger,
        reason=reason,
        who=who,
        bad_version=moved[0] if moved else None,
        restored_version=to_version,
        deployment_id=deployment.deployment_id if deployment is not None else "",
        impact_start=impact,
        restored_at=iso(now) if restored else None,
        verdict=_verdict(source) if source is not None else {},
        postmortem_due=_due(now),
    )


def open_incident(history, notifier, inc: Incident) -> Incident:
    """Record ``inc`` in the history and say so on the notification channels, with the command that
    prints its post-mortem draft. Never fails the rollback it follows: a failed write is reported by
    the caller's error handling, a failed notification by the notifier."""
    history.record_incident(inc.to_json())
    took = inc.time_to_restore_s
    text = (
        f"incident {inc.key} opened: {inc.trigger} rollback of v{inc.bad_version or '?'} in "
        f"{inc.environment} ({inc.reason}); "
        + (f"restored in {took / 60:.1f} min" if took is not None else "NOT restored")
        + f"; post-mortem due {inc.postmortem_due[:10]}: "
        f"stageflow incidents {inc.environment} --postmortem {inc.key}"
    )
    if notifier is not None:
        from stageflow.ports import Message

        notifier.send(
            Message("incident", inc.environment, inc.service, inc.deployment_id or "-", text, inc.to_json())
        )
    return inc
