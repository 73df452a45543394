"""What a rollback writes: the in-flight deployment closed, the deployment it rolled back from marked bad,
waiting for a concurrent rollback to close its record."""

from __future__ import annotations

from datetime import datetime

from stageflow.aws import aws_error
from stageflow.deploy.records import TERMINAL, RollbackEvent, Transition
from stageflow.errors import EnvironmentFailure
from stageflow.history.dynamo import ConcurrentUpdate
from stageflow.incidents.model import from_rollback, open_incident
from stageflow.isotime import iso
from stageflow.notify import Message
from stageflow.rollback.model import RollbackRequest


def shipped(history, weights, target: str):
    """The deployment that shipped the version traffic is taken from (for when its impact began)."""
    moved = [v for v, w in weights.items() if w and v != target]
    for dep in history.list(limit=10):
        if dep.version in moved:
            return dep
    return None


def mark_bad(history, dep, req: RollbackRequest, target: str, now: datetime) -> None:
    """Record on the deployment that shipped a rolled-back version that it is bad (it is then never a
    rollback target or "last known good" again)."""
    mark = {"at": iso(now), "trigger": req.trigger, "reason": req.reason, "who": req.who, "to": target}
    try:
        fresh = history.get(dep.deployment_id) or dep
        history.update(fresh, extra={**dict(fresh.extra), "marked_bad": mark})
    except Exception as exc:  # noqa: BLE001 - traffic is restored; a lost mark must not fail the rollback
        failure = aws_error(exc, "deployment history")
        if failure is None and not isinstance(exc, EnvironmentFailure):
            raise


def close_in_flight(req: RollbackRequest, history, in_flight, now: datetime) -> str | None:
    """The in-flight deployment ends rolled back (its lock released); its id, or None. A record that
    changed meanwhile (the canary recorded a look) is read again and closed; one another run closed
    is left as it is."""
    for _ in range(5):
        if in_flight is None or in_flight.state.phase in TERMINAL:
            return None
        try:
            return _close(req, history, in_flight, now)
        except ConcurrentUpdate:
            in_flight = history.get(in_flight.deployment_id)
    return _close(req, history, in_flight, now)


def _close(req: RollbackRequest, history, in_flight, now: datetime) -> str:
    history.update(
        in_flight,
        state=in_flight.state.rolled_back(f"{req.trigger}: {req.reason}"),
        phase="rolled_back",
        status="rolled_back",
        ended_at=iso(now),
        transition=Transition(
            iso(now),
            in_flight.state.phase,
            "rolled_back",
            f"{req.trigger} rollback by {req.who}: {req.reason}",
        ),
    )
    history.release_lock(in_flight.deployment_id)
    return in_flight.deployment_id


def moved_but_open(in_flight, alias) -> bool:
    """The record says traffic is split but the alias is whole on the previous version: a concurrent
    rollback moved it and is about to close the record (or it died before doing so)."""
    return (
        in_flight is not None
        and in_flight.state.phase not in TERMINAL
        and in_flight.state.weight > 0
        and alias.settled
        and alias.primary == in_flight.previous_version
    )


def await_close(history, in_flight, sleep, seconds: float = 10.0, every: float = 0.25):
    """Wait (bounded) for the run that moved traffic to close the record: (record, True) when it did;
    (record, False) when it did not in time (it died): then this run closes it."""
    waited = 0.0
    while waited < seconds:
        sleep(every)
        waited += every
        fresh = history.get(in_flight.deployment_id)
        if fresh is None or fresh.state.phase in TERMINAL:
            return fresh, True
    return history.get(in_flight.deployment_id), False


def record_rollback(
    req: RollbackRequest,
    history,
    notifier,
    now: datetime,
    before,
    target: str,
    dep_id,
    *,
    changed: bool,
    in_flight,
) -> None:
    """The rollback event and its notice (when traffic moved or a deployment was closed); when traffic
    moved, the deployment it moved from marked bad and an incident opened."""
    if changed or dep_id is not None:
        event = RollbackEvent(iso(now), req.trigger, req.reason, req.who, target, before, dep_id or "")
        data = event.to_json()
        del data["at"], data["kind"]
        history.record_event(event.kind, now, data)
        notifier.send(
            Message(
                kind="rolled_back",
                environment=req.environment,
                service=req.service,
                deployment_id=dep_id or "-",
                text=f"{req.trigger} rollback to v{target}: {req.reason}",
                data={
                    "to_version": target,
                    "from_weights": before,
                    "trigger": req.trigger,
                    "reasons": [req.reason],
                },
            )
        )
    if changed:
        open_rollback_incident(req, history, notifier, now, before, target, in_flight if dep_id else None)


def open_rollback_incident(
    req: RollbackRequest, history, notifier, now: datetime, before, target: str, in_flight
) -> None:
    """After a rollback that moved traffic: the deployment that shipped what it moved from is marked bad
    (no longer a "last known good") and an incident is opened. A release of several functions passes
    its first function's weights and target (the release's record lists every function)."""
    bad = shipped(history, before, target)
    if bad is not None:
        mark_bad(history, bad, req, target, now)
    open_incident(
        history,
        notifier,
        from_rollback(
            environment=req.environment,
            service=req.service,
            now=now,
            trigger=req.trigger,
            reason=req.reason,
            who=req.who,
            from_weights=before,
            to_version=target,
            deployment=in_flight,
            bad=bad,
        ),
    )
