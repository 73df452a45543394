"""Putting an alias back on one version: retried, each attempt verified; a lost RevisionId race; the
page when every attempt failed. The canary driver's roll-back and the rollback core both use it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from stageflow.aws import aws_error
from stageflow.errors import EnvironmentFailure, RollbackFailed
from stageflow.isotime import iso
from stageflow.notify import Message
from stageflow.rollback.model import FAILED_KIND, Retry, RollbackRequest


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


def restore_or_page(req: RollbackRequest, traffic, target: str, reporter, retry, sleep, clock_now):
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
