"""Rollback: all traffic to the last known good (or a given) version, at once, recorded and notified.

No analysis and no approval on this path. Entry points: ``stageflow rollback ENV [--to VERSION]``,
``stageflow rollback --from-alarm-event FILE|-`` (a CloudWatch alarm notification as SNS delivers it),
and :func:`handler`, the same inside a Lambda subscribed to the alarm topic. Idempotent: rolling back
what is already rolled back changes nothing.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from stageflow.errors import RollbackFailed, UsageError
from stageflow.history import iso


@dataclass(frozen=True)
class RollbackResult:
    environment: str
    changed: bool
    from_weights: dict[str, int]
    to_version: str
    reason: str
    trigger: str  # "manual" | "alarm"
    deployment_id: str | None = None
    seconds_to_restore: float | None = None  # tool time from the request to the alias verified

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AlarmEvent:
    alarm_name: str
    new_state: str
    reason: str
    time: str | None


def parse_alarm_event(raw: str | dict) -> list[AlarmEvent]:
    """Accept the shapes SNS delivers: a Lambda SNS event ({"Records": [{"Sns": {"Message": ...}}]}),
    an SNS HTTP/SQS notification ({"Type": "Notification", "Message": ...}), or the alarm JSON itself."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise UsageError(f"alarm event is not JSON: {exc}") from None
    messages: list[Any] = []
    if isinstance(data, dict) and isinstance(data.get("Records"), list):
        messages = [(r.get("Sns") or {}).get("Message") for r in data["Records"]]
    elif isinstance(data, dict) and "Message" in data:
        messages = [data["Message"]]
    else:
        messages = [data]
    events = []
    for msg in messages:
        try:
            body = json.loads(msg) if isinstance(msg, str) else msg
        except ValueError:
            raise UsageError("alarm event: the SNS Message is not a CloudWatch alarm notification") from None
        if not isinstance(body, dict) or "AlarmName" not in body or "NewStateValue" not in body:
            raise UsageError(
                "alarm event: no AlarmName/NewStateValue in the message",
                "expected a CloudWatch alarm notification delivered by SNS",
            )
        events.append(
            AlarmEvent(
                body["AlarmName"],
                body["NewStateValue"],
                body.get("NewStateReason", ""),
                body.get("StateChangeTime"),
            )
        )
    if not events:
        raise UsageError("alarm event has no records")
    return events


def rollback(
    factory,
    env_name: str,
    *,
    to: str | None = None,
    reason: str = "manual rollback",
    trigger: str = "manual",
    who: str | None = None,
    started: float | None = None,
) -> RollbackResult:
    from stageflow.deploy import machine as m
    from stageflow.history import default_who
    from stageflow.notify import Message

    t0 = started if started is not None else time.monotonic()
    ctx = factory.environment(env_name)
    now = ctx.clock.now()
    who = who or default_who()
    alias = ctx.traffic.state()
    in_flight = ctx.history.in_flight()
    if to is not None:
        ctx.traffic.require_version(to)  # exit 2, nothing changed
        target = to
    elif in_flight is not None and in_flight.previous_version:
        target = in_flight.previous_version
    elif alias.settled and _already_rolled_back_to(ctx.history) == alias.primary:
        target = alias.primary  # a second alarm after a rollback: nothing to do
    else:
        good = ctx.history.last_known_good(exclude_version=alias.primary if alias.settled else None)
        if good is None and not alias.settled:
            target = alias.primary  # nothing recorded: the stable side of the split is what served
        elif good is None:
            raise UsageError(
                f"no last known good version recorded for {env_name}",
                "name one: stageflow rollback ENV --to VERSION",
            )
        else:
            target = good.version
    before = alias.weights
    restored_in = 0.0
    changed = not (alias.settled and alias.primary == target)
    if changed:
        try:
            after = ctx.traffic.restore(target)
        except Exception as exc:
            raise RollbackFailed(
                f"rollback of {env_name} to v{target} failed: {exc}",
                "page a person: traffic may still be on the bad version",
            ) from None
        if not (after.settled and after.primary == target):
            raise RollbackFailed(
                f"rollback of {env_name}: alias shows {after.weights} after restoring v{target}"
            )
        restored_in = time.monotonic() - t0
        factory.reporter.info(
            "rollback", env_name, f"all traffic on v{target} (was {before}) in {restored_in:.2f} s: {reason}"
        )
    else:
        factory.reporter.info("rollback", env_name, f"nothing to do: all traffic already on v{target}")
    dep_id = None
    closed = False
    if in_flight is not None and not m.State.from_json(in_flight.state or {}).terminal:
        dep_id = in_flight.deployment_id
        old = m.State.from_json(in_flight.state or {})
        new = m.State(phase="rolled_back", step=old.step, weight=0, reason=f"{trigger}: {reason}")
        ctx.history.update(
            in_flight,
            state=new.to_json(),
            phase="rolled_back",
            status="rolled_back",
            ended_at=iso(now),
            transition={
                "at": iso(now),
                "from": old.phase,
                "to": "rolled_back",
                "reason": f"{trigger} rollback by {who}: {reason}",
            },
        )
        ctx.history.release_lock(in_flight.deployment_id)
        closed = True
    if changed or closed:
        ctx.history.record_event(
            "rollback",
            now,
            {
                "trigger": trigger,
                "reason": reason,
                "who": who,
                "to_version": target,
                "from_weights": before,
                "deployment_id": dep_id or "",
            },
        )
        ctx.notifier.send(
            Message(
                kind="rolled_back",
                environment=env_name,
                service=factory.config.service.name,
                deployment_id=dep_id or "-",
                text=f"{trigger} rollback to v{target}: {reason}",
                data={"to_version": target, "from_weights": before, "trigger": trigger, "reasons": [reason]},
            )
        )
    return RollbackResult(
        env_name, changed, before, target, reason, trigger, dep_id, round(restored_in, 3) if changed else None
    )


def _already_rolled_back_to(history) -> str | None:
    """The version the newest rollback (an event, or a rolled-back deployment) restored, if any."""
    candidates: list[tuple[str, str]] = []
    for ev in history.events(limit=5):
        if ev.get("kind") == "rollback" and ev.get("to_version"):
            candidates.append((ev["at"], ev["to_version"]))
            break
    for dep in history.list(limit=5):
        if dep.phase in ("no_change",) or (dep.status == "failed" and not dep.previous_version):
            continue
        if dep.status == "rolled_back" and dep.previous_version:
            candidates.append((dep.ended_at or dep.started_at, dep.previous_version))
        elif dep.status == "succeeded":
            candidates.append((dep.ended_at or dep.started_at, ""))
        break
    if not candidates:
        return None
    return max(candidates)[1] or None


def environments_for_alarm(factory, alarm_name: str) -> list[str]:
    """Which environments list this alarm: in config, or in their outputs (remembered from this
    machine's applies first; Terraform is asked only when none of those names it)."""
    envs = factory.config.environments
    found = [name for name, env in envs.items() if alarm_name in env.gates.alarms]
    if found:
        return found
    for cached_only in (True, False):
        for name in envs:
            try:
                out = factory.outputs(name, cached_only=cached_only)
            except Exception:  # noqa: BLE001, S112 - an environment that is not built has no alarms
                continue
            if out is not None and alarm_name in out.alarm_names:
                found.append(name)
        if found:
            return found
    return found


def from_alarm_event(factory, raw: str | dict, env_name: str | None = None) -> list[RollbackResult]:
    started = time.monotonic()  # the clock of "all traffic back within 1 s" starts when the event is read
    results = []
    for ev in parse_alarm_event(raw):
        if ev.new_state != "ALARM":
            factory.reporter.info("rollback", ev.alarm_name, f"state {ev.new_state}: nothing to do")
            continue
        envs = [env_name] if env_name else environments_for_alarm(factory, ev.alarm_name)
        if not envs:
            raise UsageError(
                f"alarm {ev.alarm_name!r} belongs to no configured environment",
                "pass the environment: stageflow rollback ENV --from-alarm-event FILE",
            )
        for env in envs:
            results.append(
                rollback(
                    factory,
                    env,
                    reason=f"alarm {ev.alarm_name}: {ev.reason}".strip(),
                    trigger="alarm",
                    who=f"alarm:{ev.alarm_name}",
                    started=started,
                )
            )
    return results


def handler(event: dict, context: object = None) -> dict:
    """Lambda entry point: subscribed to the alarm topic; STAGEFLOW_ENVIRONMENT names the environment."""
    from stageflow.factory import Factory

    factory = Factory(local=os.environ.get("STAGEFLOW_LOCAL") == "1")
    env_name = os.environ.get("STAGEFLOW_ENVIRONMENT") or None
    results = from_alarm_event(factory, event, env_name)
    return {"rolled_back": [r.to_json() for r in results], "at": datetime.now(UTC).isoformat()}
