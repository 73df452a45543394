"""Deadlines that act with nobody running anything: ``stageflow tick`` and the scheduled check.

:func:`tick` looks at one environment's deployment in flight; when it waits at an approval pause whose
recorded deadline has passed, it ends it through the one rollback core (trigger ``deadline``): before
the canary the release is rejected (nothing had moved), at a canary step all traffic goes back on the
previous version. The deadline's act is recorded in the deployment's answers (``extra.approvals``).

Both entry points run it: ``stageflow tick [ENV...]`` (commands/approvals.py) on the wired environment,
and the rollback function (``stageflow.rollback.handler.handler`` given ``{"stageflow": "tick"}``, its
:func:`~stageflow.rollback.handler.tick_handler`), which an EventBridge schedule invokes in AWS
(infrastructure/modules/service/approvals.tf). Standard library only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from stageflow.deploy.records import deadline_reason
from stageflow.isotime import iso, parse_iso
from stageflow.rollback.core import RollbackRequest
from stageflow.rollback.core import rollback as core_rollback


@dataclass(frozen=True)
class TickResult:
    environment: str
    acted: bool
    text: str  # what it did (or why nothing), one line
    deployment_id: str | None = None
    deadline: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


def tick(
    environment: str, service: str, *, history, traffic, notifier, reporter, now: datetime, release=None
):
    """End the pause of ``environment``'s deployment in flight if its deadline has passed."""
    dep = history.in_flight()
    if dep is None or dep.state.phase != "awaiting_approval":
        what = (
            "no deployment in flight"
            if dep is None
            else f"deployment {dep.deployment_id} is {dep.state.phase}"
        )
        return TickResult(environment, False, f"{what}: nothing to do")
    state = dep.state
    if not state.deadline:
        return TickResult(
            environment, False, f"deployment {dep.deployment_id}'s pause has no recorded deadline"
        )
    if now < parse_iso(state.deadline):
        return TickResult(
            environment,
            False,
            f"deployment {dep.deployment_id} awaits approval until {state.deadline}: nothing to do",
            dep.deployment_id,
            state.deadline,
        )
    reason = deadline_reason(state)
    req = RollbackRequest(environment, service, reason=reason, trigger="deadline", who="deadline")
    result = core_rollback(
        req, history=history, traffic=traffic, notifier=notifier, reporter=reporter, now=now, release=release
    )
    _record_answer(history, dep, reason, now)
    done = f"deployment {dep.deployment_id}: {reason}; all traffic on v{result.to_version}"
    return TickResult(environment, True, done, dep.deployment_id, state.deadline)


def _record_answer(history, dep, reason: str, now: datetime) -> None:
    """The deadline's act among the deployment's answers, as an answer given by ``deadline``."""
    fresh = history.get(dep.deployment_id) or dep
    st = dep.state
    answer = {
        "who": "deadline",
        "at": iso(now),
        "option": "deadline",
        "reason": reason,
        "pause": st.approval_for,
        "step": st.step,
        "weight": st.weight,
        "result": fresh.state.phase,
    }
    history.update(
        fresh, extra={**dict(fresh.extra), "approvals": [*fresh.extra.get("approvals", ()), answer]}
    )
