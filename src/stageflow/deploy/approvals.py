"""The approval rule at a canary pause, pure: who still has to approve (``required`` distinct
identities, one holder of each role), why an answer cannot count (the same identity twice, an option
the pause has no use for, an option that differs from the approvals already given), and what a deadline
does. The state machine (:mod:`stageflow.deploy.machine`) applies them; the CLI refuses with them
(exit 2) before anything is recorded. Standard library only."""

from __future__ import annotations

from stageflow.config import Approvals
from stageflow.deploy.records import State

OPTIONS: tuple[str, ...] = ("approve", "extend", "skip_to_full")


def deadline_reason(state: State) -> str:
    """What a pause's deadline does, in words."""
    if state.approval_for == "before_canary":
        return f"no approval before the deadline ({state.deadline}): rejected"
    return f"no approval before the deadline ({state.deadline}): rolled back"


def _deadline_passed(state: State, at: datetime) -> State:
    return replace(state, phase="rolling_back", reason=deadline_reason(state))


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
    if event.option == "extend" and not (event.minutes and 0 < event.minutes):
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
