"""The canary as a pure state machine: ``transition(state, event, policy) -> (state, actions)``.

No I/O and no clock here: the driver performs the actions, records every new state before the next
action, and feeds back what it observed as events. Because the state alone implies what must happen
next (:func:`actions_for`), a run killed at any point can be resumed from its last recorded state.

Phases::

    pending ── pre-traffic check failed ─► rolled_back (no traffic moved)
       │ pre-traffic check passed
       ├──────► awaiting_approval (before the canary, if configured)
       │             │ approve
       ▼             ▼
    shifting(step i) ─► baking ─► [awaiting_approval] ─► shifting(step i+1) ... ─► shifting(100 %)
                          │  extend (no data)                                         │
                          │                                                           ▼
                          └─────── rollback ─► rolling_back ─► rolled_back        monitoring ─► succeeded
                                                   ▲                                  │
                                                   └──────────── rollback ◄───────────┘
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from stageflow.config import Approvals, CanaryPolicy
from stageflow.deploy.approvals import answer_problem, deadline_reason, rule_gap
from stageflow.deploy.records import TERMINAL, State
from stageflow.isotime import iso, parse_iso


# -- events: what the driver observed ----------------------------------------------------------------
@dataclass(frozen=True)
class Start:
    at: datetime


@dataclass(frozen=True)
class PreTrafficPassed:
    """The new version answered its smoke event as expected before any traffic moved (CodeDeploy's
    BeforeAllowTraffic), or could not run on this machine ("not run", which passes): begin."""

    at: datetime
    summary: str = ""
    result: Mapping[str, Any] = field(default_factory=dict)  # kept in the record (extra.pre_traffic)


@dataclass(frozen=True)
class PreTrafficFailed:
    """The new version failed its pre-traffic check (the function's own error line, or what differs
    from ``expect``), or the check could not be made (``fault``: AWS, no interpreter here): the release
    is rejected and no traffic moves."""

    at: datetime
    reason: str
    result: Mapping[str, Any] = field(default_factory=dict)
    fault: str = ""  # the check could not run: exit 3, not 4


@dataclass(frozen=True)
class WeightSet:
    at: datetime
    weight: int


@dataclass(frozen=True)
class Checked:
    at: datetime
    decision: Literal["continue", "rollback", "extend"]
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObservationFailed:
    """A look at the gates could not read the metrics (throttling, 5xx, timeout): no data, not a crash."""

    at: datetime
    error: str


@dataclass(frozen=True)
class ShiftFailed:
    """Moving the alias to the step's weight failed after the client's retries: roll back to stable
    rather than leave traffic split (or unknown) between two versions."""

    at: datetime
    weight: int
    error: str


Option = Literal["approve", "extend", "skip_to_full"]


@dataclass(frozen=True)
class Approved:
    """One approval of the pause by ``who`` (holding ``roles``). The pause goes on only when the
    approvals given so far meet the environment's rule (:func:`rule_gap`), with their ``option``:
    ``approve`` (the next step), ``extend`` (bake ``minutes`` longer at this step, judged as usual),
    ``skip_to_full`` (straight to 100 %, still monitored). ``waived``: the rule is met by this answer
    alone (a rehearsal's stand-in for the people, CodePipeline's approval upstream); recorded as such."""

    at: datetime
    who: str
    option: Option = "approve"
    minutes: float | None = None
    roles: tuple[str, ...] = ()
    reason: str = ""
    waived: bool = False


@dataclass(frozen=True)
class Rejected:
    at: datetime
    who: str
    reason: str = "rejected"


@dataclass(frozen=True)
class DeadlinePassed:
    """The pause's deadline passed with no decision: before the canary the release is rejected, at a
    canary step it is rolled back."""

    at: datetime


@dataclass(frozen=True)
class AbortRequested:
    at: datetime
    reason: str


@dataclass(frozen=True)
class RolledBack:
    at: datetime


@dataclass(frozen=True)
class Failed:
    at: datetime
    reason: str


Event = (
    Start
    | PreTrafficPassed
    | PreTrafficFailed
    | WeightSet
    | Checked
    | ObservationFailed
    | ShiftFailed
    | Approved
    | Rejected
    | DeadlinePassed
    | AbortRequested
    | RolledBack
    | Failed
)


# -- actions: what the driver must do next -------------------------------------------------------------
@dataclass(frozen=True)
class CheckBeforeTraffic:
    """Invoke the new version with its smoke event before any weight moves."""


@dataclass(frozen=True)
class SetWeight:
    weight: int  # 100 means promote: the alias points at the new version, routing cleared


@dataclass(frozen=True)
class Observe:
    until: str  # keep checking the gates until this time (iso)
    final: bool  # monitoring after promotion rather than a bake


@dataclass(frozen=True)
class AwaitApproval:
    gate: str


@dataclass(frozen=True)
class RollBack:
    reason: str


@dataclass(frozen=True)
class Notify:
    kind: Literal[
        "started", "approval_needed", "promoted", "succeeded", "rolled_back", "failed", "rollback_failed"
    ]
    message: str


Action = CheckBeforeTraffic | SetWeight | Observe | AwaitApproval | RollBack | Notify


class InvalidTransition(Exception):
    pass


def actions_for(state: State) -> list[Action]:
    """What being in ``state`` requires next: the basis of resume."""
    match state.phase:
        case "pending":
            return [CheckBeforeTraffic()]
        case "shifting":
            return [SetWeight(state.weight)]
        case "baking":
            return [Observe(state.window_end or "", final=False)]
        case "monitoring":
            return [Observe(state.window_end or "", final=True)]
        case "awaiting_approval":
            return [AwaitApproval(state.approval_for or "")]
        case "rolling_back":
            return [RollBack(state.reason)]
        case _:
            return []


def _shift_to(state: State, policy: CanaryPolicy, step: int) -> State:
    return replace(
        state,
        phase="shifting",
        step=step,
        weight=policy.steps[step].weight,
        extensions=0,
        window_start=None,
        window_end=None,
        approval_for=None,
        approved_here=False,
        deadline=None,
        answers=(),
        reason=f"step {step + 1}/{len(policy.steps)}: weight {policy.steps[step].weight}%",
    )


def _pause(state: State, gate: str, reason: str, approvals: Approvals, at: datetime) -> State:
    """Wait for people at ``gate``, until a deadline from the pause kind's one setting."""
    minutes = approvals.deadline_minutes(gate)
    return replace(
        state,
        phase="awaiting_approval",
        approval_for=gate,
        answers=(),
        deadline=iso(at + timedelta(minutes=minutes)),
        reason=f"{reason} (deadline in {minutes:g} min)",
    )


def _after_step(state: State, policy: CanaryPolicy, approvals: Approvals, at: datetime) -> State:
    """The bake of the current step passed: pause for approval if configured, else shift on."""
    step = policy.steps[state.step]
    if step.approval and not state.approved_here:
        why = f"step {state.step + 1} passed at {state.weight}%: approval needed to continue"
        return _pause(state, f"step:{state.step}", why, approvals, at)
    return _shift_to(state, policy, state.step + 1)


def transition(
    state: State, event: Event, policy: CanaryPolicy, approvals: Approvals
) -> tuple[State, list[Action]]:
    new = _next(state, event, policy, approvals)
    actions: list[Action] = []
    if new.phase != state.phase or new.step != state.step:
        if isinstance(event, Start | PreTrafficPassed):
            actions.append(Notify("started", new.reason))
        if new.phase == "awaiting_approval":
            actions.append(Notify("approval_needed", new.reason))
        elif new.phase == "monitoring":
            actions.append(Notify("promoted", new.reason))
        elif new.phase == "failed" and state.phase == "rolling_back":
            actions.append(Notify("rollback_failed", f"rollback FAILED — page a person: {new.reason}"))
        elif new.phase in ("succeeded", "rolled_back", "failed"):
            actions.append(Notify(new.phase, new.reason))
    return new, actions + actions_for(new)


def _observation_failed(state: State, event: ObservationFailed, policy: CanaryPolicy) -> State:
    """No data for this look: hold (the window does not pass on errors); more than
    ``consecutive_error_limit`` failed looks in a row roll back, as Argo Rollouts'
    consecutiveErrorLimit does."""
    errors = state.errors + 1
    limit = policy.consecutive_error_limit
    if errors > limit:
        return replace(
            state,
            phase="rolling_back",
            errors=errors,
            reason=f"metrics unreadable: {errors} failed reads in a row > consecutive_error_limit "
            f"({limit}); last: {event.error}",
        )
    return replace(
        state,
        errors=errors,
        reason=f"metric read failed ({errors}/{limit}), no data for this look, holding at "
        f"{state.weight}%: {event.error}",
    )


def _weight_set(state: State, event: WeightSet, policy: CanaryPolicy) -> State:
    """The alias took the step's weight: bake there, or monitor after promotion to 100 %."""
    at, w = event.at, event.weight
    if w >= 100:
        end = at + timedelta(minutes=policy.post_promotion_minutes)
        return replace(
            state,
            phase="monitoring",
            window_start=iso(at),
            window_end=iso(end),
            reason=f"promoted to 100%: monitoring for {policy.post_promotion_minutes:g} min",
        )
    bake = policy.steps[state.step].bake_minutes
    end = at + timedelta(minutes=bake)
    return replace(
        state,
        phase="baking",
        window_start=iso(at),
        window_end=iso(end),
        canary_start=state.canary_start or (iso(at) if w > 0 else None),
        reason=f"baking at {w}% for {bake:g} min",
    )


def _baking_checked(state: State, event: Checked, policy: CanaryPolicy, approvals: Approvals) -> State:
    """A look during a bake: roll back, hold until the window ends, go on, or extend when the data
    is not enough to judge (then a person decides)."""
    at, decision, reasons = event.at, event.decision, event.reasons
    if decision == "rollback":
        return replace(state, phase="rolling_back", reason="; ".join(reasons) or "gate failed")
    if at < parse_iso(state.window_end):
        return state
    if decision == "continue":
        return _after_step(state, policy, approvals, at)
    # extend: not enough data to judge at the end of the window
    if state.extensions < policy.max_extensions:
        bake = max(policy.steps[state.step].bake_minutes, policy.check_interval_seconds / 60)
        end = parse_iso(state.window_end) + timedelta(minutes=bake)
        return replace(
            state,
            window_end=iso(end),
            extensions=state.extensions + 1,
            reason=f"inconclusive ({'; '.join(reasons)}): bake extended "
            f"{state.extensions + 1}/{policy.max_extensions}",
        )
    why = (
        f"still inconclusive after {policy.max_extensions} extensions: "
        "a person must decide (approve to continue, reject to roll back)"
    )
    return _pause(state, f"inconclusive:{state.step}", why, approvals, at)


def _begin(
    state: State, event: Start | PreTrafficPassed, policy: CanaryPolicy, approvals: Approvals
) -> State:
    """The canary begins (its pre-traffic check passed): an approval before it, or the first step."""
    if approvals.before_canary:
        new = _pause(
            state, "before_canary", "approval needed before the canary takes traffic", approvals, event.at
        )
    else:
        new = _shift_to(state, policy, 0)
    if isinstance(event, PreTrafficPassed) and event.summary:
        return replace(new, reason=f"pre-traffic check {event.summary}; {new.reason}")
    return new


def _next(state: State, event: Event, policy: CanaryPolicy, approvals: Approvals) -> State:
    phase = state.phase
    if isinstance(event, Failed):
        return replace(state, phase="failed", reason=event.reason)
    if isinstance(event, AbortRequested) and phase not in TERMINAL and phase != "rolling_back":
        return replace(state, phase="rolling_back", reason=event.reason)
    if isinstance(event, ShiftFailed) and phase == "shifting":
        return replace(
            state,
            phase="rolling_back",
            fault=event.error,
            reason=f"alias shift to {event.weight}% failed: {event.error}",
        )
    if isinstance(event, ObservationFailed) and phase in ("baking", "monitoring"):
        return _observation_failed(state, event, policy)
    if isinstance(event, Checked) and state.errors and phase in ("baking", "monitoring"):
        state = replace(state, errors=0, reason=f"metrics readable again after {state.errors} failed reads")
    match phase, event:
        case "pending", Start() | PreTrafficPassed():
            return _begin(state, event, policy, approvals)
        case "pending", PreTrafficFailed(reason=why, fault=fault):
            return replace(
                state,
                phase="rolled_back",
                weight=0,
                fault=fault,
                reason=f"pre-traffic check{' could not run' if fault else ''}: {why}",
            )
        case "shifting", WeightSet(weight=w) if w == state.weight:
            return _weight_set(state, event, policy)
        case "baking", Checked():
            return _baking_checked(state, event, policy, approvals)
        case "monitoring", Checked(at=at, decision=decision, reasons=reasons):
            if decision == "rollback":
                return replace(
                    state,
                    phase="rolling_back",
                    reason="post-promotion: " + ("; ".join(reasons) or "gate failed"),
                )
            if at < parse_iso(state.window_end):
                return state
            return replace(state, phase="succeeded", reason="monitoring window passed")
        case "awaiting_approval", Approved() | Rejected() if _late(state, event):
            return _deadline_passed(state, event.at)
        case "awaiting_approval", DeadlinePassed(at=at) if _late(state, event):
            return _deadline_passed(state, at)
        case "awaiting_approval", Approved():
            return _approved(state, event, policy, approvals)
        case "awaiting_approval", Rejected(who=who, reason=why):
            return replace(state, phase="rolling_back", deadline=None, reason=f"rejected by {who}: {why}")
        case "rolling_back", RolledBack():
            return replace(state, phase="rolled_back", weight=0)
    raise InvalidTransition(f"{type(event).__name__} is not valid in phase {phase!r}")


# -- approvals ---------------------------------------------------------------------------------------
def _late(state: State, event: Approved | Rejected | DeadlinePassed) -> bool:
    return state.deadline is not None and event.at >= parse_iso(state.deadline)


def _deadline_passed(state: State, at: datetime) -> State:
    return replace(state, phase="rolling_back", reason=deadline_reason(state))


def _approved(state: State, event: Approved, policy: CanaryPolicy, approvals: Approvals) -> State:
    problem = answer_problem(state, event)
    if problem:
        raise InvalidTransition(problem)
    answer = {
        "who": event.who,
        "roles": list(event.roles),
        "option": event.option,
        "minutes": event.minutes,
        "at": iso(event.at),
        "reason": event.reason,
        **({"waived": True} if event.waived else {}),
    }
    answers = (*state.answers, answer)
    gap = rule_gap(answers, approvals)
    names = ", ".join(a["who"] for a in answers)
    if gap:
        return replace(state, answers=answers, reason=f"approved by {names}; waiting for {gap}")
    gate = state.approval_for or ""
    done = replace(state, answers=(), deadline=None, approved_here=True)
    if event.option == "extend":
        end = event.at + timedelta(minutes=event.minutes or 0)
        return replace(
            done,
            phase="baking",
            approval_for=None,
            window_end=iso(end),
            reason=f"approved by {names}: bake extended {event.minutes:g} min at {state.weight}%",
        )
    if event.option == "skip_to_full":
        last = len(policy.steps) - 1
        return replace(_shift_to(state, policy, last), reason=f"approved by {names}: straight to 100%")
    if gate == "before_canary":
        return replace(_shift_to(state, policy, 0), reason=f"approved by {names}: step 1")
    if gate.startswith("inconclusive:"):
        return replace(
            _shift_to(state, policy, state.step + 1) if state.step + 1 < len(policy.steps) else done,
            reason=f"approved by {names} despite inconclusive data",
        )
    return replace(_shift_to(state, policy, state.step + 1), reason=f"approved by {names}")
