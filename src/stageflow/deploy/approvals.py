"""The approval rule at a canary pause, pure: who still has to approve (``required`` distinct
identities, one holder of each role), why an answer cannot count (the same identity twice, an option
the pause has no use for, an option that differs from the approvals already given), and what a deadline
does. The state machine (:mod:`stageflow.deploy.machine`) applies them; the CLI refuses with them
(exit 2) before anything is recorded. Standard library only."""

from __future__ import annotations

from stageflow.config import Approvals
from stageflow.deploy.records import State, deadline_reason

__all__ = ["OPTIONS", "answer_problem", "deadline_reason", "rule_gap"]

OPTIONS: tuple[str, ...] = ("approve", "extend", "skip_to_full")


def rule_gap(answers, approvals: Approvals) -> str:
    """What the approvals given so far still lack under the rule ("" when it is met): ``required``
    distinct identities, and one approver holding each of ``roles``."""
    if any(a.get("waived") for a in answers):
        return ""
    who = {a["who"] for a in answers}
    missing = []
    if len(who) < approvals.required:
        missing.append(f"{approvals.required - len(who)} more approver(s) of {approvals.required}")
    held = {role for a in answers for role in a.get("roles") or ()}
    lacking = [role for role in approvals.roles if role not in held]
    if lacking:
        missing.append("role " + ", ".join(lacking))
    return "; ".join(missing)


def answer_problem(state: State, event) -> str:
    """Why ``event`` cannot count at this pause ("" when it can): the same identity twice, an option
    the pause has no use for, or one that differs from the approvals already given."""
    if state.phase != "awaiting_approval":
        return f"the deployment is {state.phase}, not awaiting approval"
    if any(a["who"] == event.who for a in state.answers):
        return f"{event.who} already approved this pause; the same identity does not count twice"
    if event.option not in OPTIONS:
        return f"unknown option {event.option!r}"
    if event.option != "approve" and state.approval_for == "before_canary":
        return f"{event.option.replace('_', '-')} is an option at a canary step, not before the canary"
    if event.option == "extend" and not (event.minutes and event.minutes > 0):
        return "extend needs a number of minutes"
    first = state.answers[0] if state.answers else None
    if first is not None and (first.get("option"), first.get("minutes")) != (event.option, event.minutes):
        said = _option_text(first.get("option"), first.get("minutes"))
        return f"{first['who']} approved with {said}; approve with the same option or reject"
    return ""


def _option_text(option, minutes) -> str:
    if option == "extend":
        return f"--extend {minutes:g}"
    return "--skip-to-full" if option == "skip_to_full" else "plain approve"


def identity_from_arn(arn: str) -> str:
    """The approver's identity from STS GetCallerIdentity's ARN: an assumed role's session name
    (``arn:aws:sts::1:assumed-role/Deployer/alice`` → ``alice``), a user's name
    (``arn:aws:iam::1:user/ops/bob`` → ``bob``), a federated user's name; else the whole ARN."""
    resource = arn.split(":", 5)[-1] if arn.count(":") >= 5 else arn
    kind, _, rest = resource.partition("/")
    if kind == "assumed-role" and "/" in rest:
        return rest.rsplit("/", 1)[1]
    if kind in ("user", "federated-user") and rest:
        return rest.rsplit("/", 1)[-1]
    return arn


def extend_minutes_problem(minutes: float, most: float) -> str:
    """``--extend MINUTES`` must be a finite number of minutes in 1..``most``; "" when it is."""
    if minutes != minutes or minutes in (float("inf"), float("-inf")):
        return f"--extend must be a finite number of minutes, got {minutes}"
    if not 1 <= minutes <= most:
        return f"--extend must be between 1 and {most:g} minutes, got {minutes:g}"
    return ""
