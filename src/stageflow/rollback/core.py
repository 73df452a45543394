"""The one rollback core: choose the target, restore the alias (retried, each attempt verified),
close the in-flight deployment, record the event, notify. ``stageflow rollback`` (:mod:`.cli`), the
rollback function Terraform deploys (:mod:`.handler`) and the canary driver's roll-back action
(:func:`restore`) all use it.

This module and everything it imports need only the standard library and boto3/botocore (the Lambda
runtime's), because it runs inside ``build/lambda/stageflow-rollback.zip`` (see
:data:`stageflow.packaging.lambda_zip.ROLLBACK_MODULES`). It talks to the ports of :mod:`stageflow.ports`:
``DeploymentHistory``, ``AliasRouter``, ``Notifier`` and a reporter with ``info``/``warn``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from stageflow.aws import aws_error
from stageflow.deploy.records import TERMINAL, RollbackEvent, Transition
from stageflow.errors import EnvironmentFailure, RollbackFailed, UsageError
from stageflow.history.dynamo import ConcurrentUpdate
from stageflow.isotime import iso
from stageflow.notify import Message

FAILED_KIND = "rollback_failed"


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
    moved_by_another_run: bool = False  # a concurrent run moved traffic (and records it); this one did not

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RollbackRequest:
    environment: str
    service: str
    to: str | None = None  # a version to go to; None: in-flight previous / already rolled back / LKG
    reason: str = "manual rollback"
    trigger: str = "manual"  # "manual" | "alarm"
    who: str = "unknown"


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


def choose_target(req: RollbackRequest, history, traffic, alias, in_flight) -> str:
    """--to (checked to exist: exit 2, nothing changed) / the in-flight deployment's previous version /
    the previous version of a canary that ended ``failed`` with the alias still split (its own rollback
    failed) / the version the newest rollback restored (a second alarm: nothing to do) / the last known
    good."""
    if req.to is not None:
        traffic.require_version(req.to)
        return req.to
    if in_flight is not None and in_flight.previous_version:
        return in_flight.previous_version
    if in_flight is not None and alias.settled:
        return alias.primary  # its run stopped before publishing was recorded: no traffic moved
    if not alias.settled:  # a canary whose own rollback failed (paged) left the alias split: finish it
        newest = next(iter(history.list(limit=1)), None)
        if (
            newest is not None
            and newest.status == "failed"
            and newest.previous_version
            and newest.version in alias.weights
        ):
            return newest.previous_version
    if alias.settled and already_rolled_back_to(history) == alias.primary:
        return alias.primary
    good = history.last_known_good(exclude_version=alias.primary if alias.settled else None)
    if good is None and not alias.settled:
        return alias.primary  # nothing recorded: the stable side of the split is what served
    if good is None:
        raise UsageError(
            f"no last known good version recorded for {req.environment}",
            "name one: stageflow rollback ENV --to VERSION",
        )
    return good.version


def already_rolled_back_to(history) -> str | None:
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


@dataclass(frozen=True)
class Retry:
    """How often the alias restore is tried (each try with botocore's own retries), and the wait
    before the second try (doubling after each)."""

    attempts: int = 3
    first_wait: float = 1.0


def rollback(
    req: RollbackRequest,
    *,
    history,
    traffic,
    notifier,
    reporter,
    now: datetime,
    started: float | None = None,
    retry: Retry = Retry(),
    sleep: Callable[[float], None] = time.sleep,
) -> RollbackResult:
    """All traffic to the chosen version, verified, recorded and notified. Idempotent.

    A failure that may leave traffic on a bad version (:class:`RollbackFailed`), and any failure of an
    unattended (``trigger="alarm"``) rollback, is published as a ``rollback_failed`` message — "automatic
    rollback FAILED — page a person" — before it is re-raised."""
    try:
        return _rollback(req, history, traffic, notifier, reporter, now, started, retry, sleep)
    except Exception as exc:
        if req.trigger != "manual" or isinstance(exc, RollbackFailed):
            notify_failure(notifier, req, exc)
        raise


def notify_failure(notifier, req: RollbackRequest, exc: BaseException) -> None:
    what = exc.one_line() if hasattr(exc, "one_line") else f"{type(exc).__name__}: {exc}"
    label = "automatic rollback" if req.trigger != "manual" else "rollback"
    notifier.send(
        Message(
            kind=FAILED_KIND,
            environment=req.environment,
            service=req.service,
            deployment_id="-",
            text=f"{label} FAILED — page a person: {req.service} {req.environment}: {what}",
            data={"trigger": req.trigger, "reasons": [req.reason], "error": what, "page": True},
        )
    )


class RestoreFailed(Exception):
    """Every attempt failed: ``tried`` says when and how, one line each; ``last`` is the last reason."""

    def __init__(self, target: str, tried: list[str], last: str):
        super().__init__(last)
        self.target = target
        self.tried = tried
        self.last = last


class LostRace(Exception):
    """Another run moved the alias to ``target`` between this run's read and its UpdateAlias (the
    RevisionId did not match): that run moved traffic and records it; this one moved nothing."""

    def __init__(self, now):
        super().__init__("the alias was moved by another run")
        self.now = now


def failure_text(exc: BaseException) -> str:
    """One line for a failed call: the mapped AWS error, or the exception's name and text."""
    failure = exc if isinstance(exc, EnvironmentFailure) else aws_error(exc)
    if failure is not None and hasattr(failure, "one_line"):
        return failure.one_line()
    return f"{type(exc).__name__}: {exc}"


def restore(
    traffic,
    target: str,
    *,
    retry: Retry,
    sleep: Callable[[float], None],
    now: Callable[[], datetime],
    warn: Callable[[str], None],
):
    """All traffic on ``target``, verified: an attempt succeeds when the alias then serves ``target``
    alone. Retried per ``retry``; :class:`RestoreFailed` after the last attempt."""
    tried: list[str] = []
    wait = retry.first_wait
    attempts = max(1, retry.attempts)
    for attempt in range(1, attempts + 1):
        try:
            after = traffic.restore(target)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded; the last one is raised
            now_state = getattr(exc, "now", None)  # AliasChanged: the alias moved since it was read
            if now_state is not None and now_state.settled and now_state.primary == target:
                raise LostRace(now_state) from None
            text = failure_text(exc)
        else:
            if after.settled and after.primary == target:
                return after
            text = f"alias shows {after.weights} after restoring v{target}"
        tried.append(
            f"{iso(now())} attempt {attempt}/{attempts}: restore alias {traffic.alias} of "
            f"{traffic.function} to v{target}: {text}"
        )
        warn(f"attempt {attempt}/{attempts} failed: {text}")
        if attempt < attempts:
            sleep(wait)
            wait *= 2
    raise RestoreFailed(target, tried, text)


def _restore_or_page(req: RollbackRequest, traffic, target: str, reporter, retry, sleep, clock_now):
    env_name = req.environment
    if req.to is None and not traffic.version_exists(target):
        raise RollbackFailed(
            f"rollback of {env_name}: the recorded good version v{target} no longer exists",
            "page a person: traffic is still where it was; name a version with --to",
        )
    try:
        return restore(
            traffic,
            target,
            retry=retry,
            sleep=sleep,
            now=clock_now,
            warn=lambda text: reporter.warn(f"rollback {env_name}: {text}"),
        )
    except RestoreFailed as exc:
        raise RollbackFailed(
            f"rollback of {env_name} to v{target} failed after {len(exc.tried)} attempts: {exc.last}",
            "page a person: traffic may still be on the bad version",
        ) from None


def _close_in_flight(req: RollbackRequest, history, in_flight, now: datetime) -> str | None:
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


def _moved_but_open(in_flight, alias) -> bool:
    """The record says traffic is split but the alias is whole on the previous version: a concurrent
    rollback moved it and is about to close the record (or it died before doing so)."""
    return (
        in_flight is not None
        and in_flight.state.phase not in TERMINAL
        and in_flight.state.weight > 0
        and alias.settled
        and alias.primary == in_flight.previous_version
    )


def _await_close(history, in_flight, sleep, seconds: float = 10.0, every: float = 0.25):
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


def _rollback(req, history, traffic, notifier, reporter, now, started, retry, sleep) -> RollbackResult:
    t0 = started if started is not None else time.monotonic()
    env_name = req.environment
    alias = traffic.state()
    in_flight = history.in_flight()
    target = choose_target(req, history, traffic, alias, in_flight)
    before = alias.weights
    restored_in = 0.0
    changed = not (alias.settled and alias.primary == target)
    lost = False
    if changed:
        try:
            _restore_or_page(req, traffic, target, reporter, retry, sleep, lambda: now)
        except LostRace:
            changed, lost = False, True
    elif _moved_but_open(in_flight, alias):
        in_flight, lost = _await_close(history, in_flight, sleep)
    if lost:
        reporter.info(
            "rollback",
            env_name,
            f"nothing moved by this run: another rollback moved all traffic to v{target} at the same "
            "time and records it",
        )
        return RollbackResult(
            env_name, False, before, target, req.reason, req.trigger, moved_by_another_run=True
        )
    if changed:
        restored_in = time.monotonic() - t0
        reporter.info(
            "rollback",
            env_name,
            f"all traffic on v{target} (was {before}) in {restored_in:.2f} s: {req.reason}",
        )
    else:
        reporter.info("rollback", env_name, f"nothing to do: all traffic already on v{target}")
    dep_id = _close_in_flight(req, history, in_flight, now)
    if changed or dep_id is not None:
        event = RollbackEvent(iso(now), req.trigger, req.reason, req.who, target, before, dep_id or "")
        data = event.to_json()
        del data["at"], data["kind"]
        history.record_event(event.kind, now, data)
        notifier.send(
            Message(
                kind="rolled_back",
                environment=env_name,
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
    return RollbackResult(
        env_name,
        changed,
        before,
        target,
        req.reason,
        req.trigger,
        dep_id,
        round(restored_in, 3) if changed else None,
    )
