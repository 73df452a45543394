"""Rollback: all traffic to the last known good (or a given) version, at once, recorded and notified.

No analysis and no approval on this path. Entry points: ``stageflow rollback ENV [--to VERSION]``,
``stageflow rollback --from-alarm-event FILE|-`` (a CloudWatch alarm notification as SNS delivers it),
and :func:`handler`, the same inside a Lambda subscribed to the alarm topic. Idempotent: rolling back
what is already rolled back changes nothing.
"""

from __future__ import annotations

import time

from stageflow import rollback_core as core
from stageflow.errors import UsageError
from stageflow.rollback_core import AlarmEvent, RollbackRequest, RollbackResult, parse_alarm_event

__all__ = [
    "AlarmEvent",
    "RollbackResult",
    "environments_for_alarm",
    "from_alarm_event",
    "handler",
    "parse_alarm_event",
    "rollback",
]


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
    """The deploy path's entry to the rollback core (rollback_core.py), which the rollback function
    deployed by Terraform shares: the same target choice, restore, verification, record and notice."""
    from stageflow.history import default_who

    t0 = started if started is not None else time.monotonic()
    ctx = factory.environment(env_name)
    req = RollbackRequest(
        environment=env_name,
        service=factory.config.service.name,
        to=to,
        reason=reason,
        trigger=trigger,
        who=who or default_who(),
    )
    return core.rollback(
        req,
        history=ctx.history,
        traffic=ctx.traffic,
        notifier=ctx.notifier,
        reporter=factory.reporter,
        now=ctx.clock.now(),
        started=t0,
    )


_already_rolled_back_to = core.already_rolled_back_to


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
    """Lambda entry point kept for older deployments: the rollback function now runs
    :func:`stageflow.rollback_lambda.handler`, which reads only the environment Terraform sets."""
    from stageflow.rollback_lambda import handler as lambda_handler

    return lambda_handler(event, context)
