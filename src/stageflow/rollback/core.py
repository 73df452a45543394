"""The one rollback core: choose the target, restore the alias (retried, each attempt verified),
close the in-flight deployment, record the event, notify. ``stageflow rollback`` (:mod:`.cli`), the
rollback function Terraform deploys (:mod:`.handler`) and the canary driver's roll-back action
(:func:`restore`) all use it. Its parts: :mod:`.model` (request, result, alarm events, retry policy),
:mod:`.restore` (one alias back, verified), :mod:`.records` (what a rollback writes), :mod:`.several`
(a release of several functions).

This module and everything it imports need only the standard library and boto3/botocore (the Lambda
runtime's), because it runs inside ``build/lambda/stageflow-rollback.zip`` (see
:data:`stageflow.packaging.lambda_zip.ROLLBACK_MODULES`). It talks to the ports of :mod:`stageflow.ports`:
``DeploymentHistory``, ``AliasRouter``, ``Notifier`` and a reporter with ``info``/``warn``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from stageflow.errors import RollbackFailed, UsageError
from stageflow.rollback.model import (
    DEFAULT_RETRY,
    FAILED_KIND,
    AlarmEvent,
    Retry,
    RollbackRequest,
    RollbackResult,
    parse_alarm_event,
)
from stageflow.rollback.records import await_close, close_in_flight, moved_but_open, record_rollback
from stageflow.rollback.restore import (
    LostRace,
    RestoreFailed,
    failure_text,
    notify_failure,
    restore,
    restore_or_page,
)
from stageflow.rollback.several import rollback_release

__all__ = [
    "FAILED_KIND",
    "AlarmEvent",
    "LostRace",
    "RestoreFailed",
    "Retry",
    "RollbackRequest",
    "RollbackResult",
    "choose_target",
    "failure_text",
    "notify_failure",
    "parse_alarm_event",
    "restore",
    "rollback",
]


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
        recorded = history.list(limit=25)
        if not recorded:
            return alias.primary  # a fresh environment: its only version serves; nothing to roll back to
        serving = next((d for d in recorded if d.status == "succeeded" and d.version == alias.primary), None)
        if serving is not None and serving.previous_version:
            return serving.previous_version  # what served before the serving version's canary
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


def rollback(
    req: RollbackRequest,
    *,
    history,
    traffic,
    notifier,
    reporter,
    now: datetime,
    started: float | None = None,
    retry: Retry = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
    release=None,
) -> RollbackResult:
    """All traffic to the chosen version, verified, recorded and notified. Idempotent.

    A failure that may leave traffic on a bad version (:class:`RollbackFailed`), and any failure of an
    unattended (``trigger="alarm"``) rollback, is published as a ``rollback_failed`` message — "automatic
    rollback FAILED — page a person" — before it is re-raised.

    ``release`` (deploy/release.py): a service of several functions, every one rolled back to the same
    recorded release; None or one function: ``traffic`` alone."""
    try:
        if release is not None and not release.single:
            return rollback_release(req, history, release, notifier, reporter, now, started, retry, sleep)
        return _rollback(req, history, traffic, notifier, reporter, now, started, retry, sleep)
    except Exception as exc:
        if req.trigger != "manual" or isinstance(exc, RollbackFailed):
            notify_failure(notifier, req, exc)
        raise


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
            restore_or_page(req, traffic, target, reporter, retry, sleep, lambda: now)
        except LostRace:
            changed, lost = False, True
    elif moved_but_open(in_flight, alias):
        in_flight, lost = await_close(history, in_flight, sleep)
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
    elif not history.list(limit=1):
        reporter.info(
            "rollback",
            env_name,
            f"nothing to roll back to: no deployment recorded; v{target}, the only version, serves all",
        )
    else:
        reporter.info("rollback", env_name, f"nothing to do: all traffic already on v{target}")
    dep_id = close_in_flight(req, history, in_flight, now)
    record_rollback(req, history, notifier, now, before, target, dep_id, changed=changed, in_flight=in_flight)
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
