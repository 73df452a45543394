"""``stageflow rollback ENV [--to VERSION]`` and ``--from-alarm-event``: the wired environment's entry
to the rollback core (:mod:`.core`). No analysis and no approval on this path. Idempotent: rolling
back what is already rolled back changes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from stageflow.errors import UsageError
from stageflow.history.locks import default_who
from stageflow.rollback import core
from stageflow.rollback.core import RollbackRequest, RollbackResult, parse_alarm_event

if TYPE_CHECKING:
    from stageflow.deploy.canary import Context


def rollback(
    ctx: Context,
    *,
    to: str | None = None,
    reason: str = "manual rollback",
    trigger: str = "manual",
    who: str | None = None,
    started: float | None = None,
) -> RollbackResult:
    """All traffic of ``ctx``'s environment to ``to`` (or the version the core chooses), verified,
    recorded and notified: the same core as the rollback function Terraform deploys."""
    t0 = started if started is not None else time.monotonic()
    req = RollbackRequest(
        environment=ctx.env.name,
        service=ctx.service,
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
        reporter=ctx.reporter,
        now=ctx.clock.now(),
        started=t0,
        sleep=ctx.clock.sleep,
        release=ctx.release,
    )


def from_alarm_event(
    raw: str | dict,
    env_name: str | None,
    *,
    environments_for: Callable[[str], list[str]],
    context_for: Callable[[str], Context],
    reporter,
) -> list[RollbackResult]:
    """Roll back every environment whose alarm an SNS-delivered CloudWatch notification reports in
    ALARM (``env_name``, or those ``environments_for(alarm)`` names)."""
    started = time.monotonic()  # the clock of "all traffic back within 1 s" starts when the event is read
    results = []
    for ev in parse_alarm_event(raw):
        if ev.new_state != "ALARM":
            reporter.info("rollback", ev.alarm_name, f"state {ev.new_state}: nothing to do")
            continue
        envs = [env_name] if env_name else environments_for(ev.alarm_name)
        if not envs:
            raise UsageError(
                f"alarm {ev.alarm_name!r} belongs to no configured environment",
                "pass the environment: stageflow rollback ENV --from-alarm-event FILE",
            )
        for env in envs:
            results.append(
                rollback(
                    context_for(env),
                    reason=f"alarm {ev.alarm_name}: {ev.reason}".strip(),
                    trigger="alarm",
                    who=f"alarm:{ev.alarm_name}",
                    started=started,
                )
            )
    return results
