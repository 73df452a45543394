from datetime import UTC, datetime, timedelta

import pytest

from stageflow.config import Approvals, CanaryPolicy, CanaryStep
from stageflow.deploy import machine as m

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = CanaryPolicy((CanaryStep(10, 15, True), CanaryStep(50, 15, True), CanaryStep(100, 0)), 30, 60, 2)
PROD = Approvals(before_canary=True, between_steps=True)
DEV = Approvals(False, False)
DEV_POLICY = CanaryPolicy((CanaryStep(10, 5), CanaryStep(50, 5), CanaryStep(100)), 5, 60, 1)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def kinds(actions):
    return [type(a).__name__ + (f"({a.kind})" if isinstance(a, m.Notify) else "") for a in actions]


def test_dev_happy_path_to_succeeded():
    s, acts = m.transition(m.State(), m.Start(at(0)), DEV_POLICY, DEV)
    assert (s.phase, s.weight) == ("shifting", 10)
    assert kinds(acts) == ["Notify(started)", "SetWeight"]
    s, acts = m.transition(s, m.WeightSet(at(0), 10), DEV_POLICY, DEV)
    assert s.phase == "baking" and s.window_end.startswith("2026-01-01T00:05")
    assert isinstance(acts[0], m.Observe) and not acts[0].final
    s, _ = m.transition(s, m.Checked(at(1), "continue"), DEV_POLICY, DEV)
    assert s.phase == "baking"  # mid-window: keep baking
    s, acts = m.transition(s, m.Checked(at(5), "continue"), DEV_POLICY, DEV)
    assert (s.phase, s.weight, s.step) == ("shifting", 50, 1)
    s, _ = m.transition(s, m.WeightSet(at(5), 50), DEV_POLICY, DEV)
    s, _ = m.transition(s, m.Checked(at(10), "continue"), DEV_POLICY, DEV)
    assert (s.phase, s.weight) == ("shifting", 100)
    s, acts = m.transition(s, m.WeightSet(at(10), 100), DEV_POLICY, DEV)
    assert s.phase == "monitoring" and kinds(acts) == ["Notify(promoted)", "Observe"] and acts[1].final
    s, acts = m.transition(s, m.Checked(at(15), "continue"), DEV_POLICY, DEV)
    assert s.phase == "succeeded" and s.terminal and kinds(acts) == ["Notify(succeeded)"]


def test_prod_pauses_before_canary_and_between_steps():
    s, acts = m.transition(m.State(), m.Start(at(0)), POLICY, PROD)
    assert s.phase == "awaiting_approval" and s.approval_for == "before_canary"
    assert kinds(acts) == ["Notify(started)", "Notify(approval_needed)", "AwaitApproval"]
    s, acts = m.transition(s, m.Approved(at(1), "alice"), POLICY, PROD)
    assert (s.phase, s.weight) == ("shifting", 10) and "alice" in s.reason
    s, _ = m.transition(s, m.WeightSet(at(1), 10), POLICY, PROD)
    s, acts = m.transition(s, m.Checked(at(16), "continue"), POLICY, PROD)
    assert s.phase == "awaiting_approval" and s.approval_for == "step:0"
    s, _ = m.transition(s, m.Approved(at(17), "bob"), POLICY, PROD)
    assert (s.phase, s.weight) == ("shifting", 50)


def test_reject_rolls_back():
    s, _ = m.transition(m.State(), m.Start(at(0)), POLICY, PROD)
    s, acts = m.transition(s, m.Rejected(at(1), "carol", "not today"), POLICY, PROD)
    assert s.phase == "rolling_back" and "carol" in s.reason
    assert isinstance(acts[-1], m.RollBack)
    s, acts = m.transition(s, m.RolledBack(at(1)), POLICY, PROD)
    assert s.phase == "rolled_back" and kinds(acts) == ["Notify(rolled_back)"]


@pytest.mark.parametrize("phase_setup", ["baking", "monitoring"])
def test_gate_failure_rolls_back_mid_window(phase_setup):
    s, _ = m.transition(m.State(), m.Start(at(0)), DEV_POLICY, DEV)
    s, _ = m.transition(s, m.WeightSet(at(0), 10), DEV_POLICY, DEV)
    if phase_setup == "monitoring":
        s = m.State(phase="shifting", step=2, weight=100)
        s, _ = m.transition(s, m.WeightSet(at(10), 100), DEV_POLICY, DEV)
    s, acts = m.transition(s, m.Checked(at(11), "rollback", ("gate errors: 5.0% > 1.0%",)), DEV_POLICY, DEV)
    assert s.phase == "rolling_back" and "5.0%" in s.reason
    assert isinstance(acts[-1], m.RollBack)


def test_no_data_extends_then_holds_for_a_person():
    s, _ = m.transition(m.State(), m.Start(at(0)), DEV_POLICY, DEV)
    s, _ = m.transition(s, m.WeightSet(at(0), 10), DEV_POLICY, DEV)
    s, _ = m.transition(s, m.Checked(at(5), "extend", ("no data",)), DEV_POLICY, DEV)
    assert s.phase == "baking" and s.extensions == 1 and s.window_end.startswith("2026-01-01T00:10")
    s, acts = m.transition(s, m.Checked(at(10), "extend", ("no data",)), DEV_POLICY, DEV)
    assert s.phase == "awaiting_approval" and s.approval_for == "inconclusive:0"
    s, _ = m.transition(s, m.Approved(at(11), "dave"), DEV_POLICY, DEV)
    assert (s.phase, s.weight) == ("shifting", 50)


def test_never_promotes_on_extend_mid_window():
    s, _ = m.transition(m.State(), m.Start(at(0)), DEV_POLICY, DEV)
    s, _ = m.transition(s, m.WeightSet(at(0), 10), DEV_POLICY, DEV)
    s2, _ = m.transition(s, m.Checked(at(2), "extend"), DEV_POLICY, DEV)
    assert s2 == s


def test_invalid_events_raise():
    with pytest.raises(m.InvalidTransition):
        m.transition(m.State(), m.Approved(at(0), "x"), DEV_POLICY, DEV)
    s, _ = m.transition(m.State(), m.Start(at(0)), DEV_POLICY, DEV)
    with pytest.raises(m.InvalidTransition):
        m.transition(s, m.WeightSet(at(0), 50), DEV_POLICY, DEV)  # not the weight asked for


def test_abort_from_any_live_phase_and_actions_for_resume():
    s, _ = m.transition(m.State(), m.Start(at(0)), DEV_POLICY, DEV)
    s, acts = m.transition(s, m.AbortRequested(at(0), "alarm x"), DEV_POLICY, DEV)
    assert s.phase == "rolling_back"
    assert m.actions_for(s) == [m.RollBack("alarm x")]
    assert m.actions_for(m.State(phase="shifting", step=1, weight=50)) == [m.SetWeight(50)]
    assert m.actions_for(m.State(phase="succeeded")) == []


def test_state_json_round_trip():
    s = m.State(phase="baking", step=1, weight=50, window_start="a", window_end="b", extensions=1, reason="r")
    assert m.State.from_json(s.to_json()) == s


def test_canary_start_is_the_first_weight_shift_and_survives_later_steps():
    s, _ = m.transition(m.State(), m.Start(at(0)), DEV_POLICY, DEV)
    assert s.canary_start is None
    s, _ = m.transition(s, m.WeightSet(at(1), 10), DEV_POLICY, DEV)
    assert s.canary_start == s.window_start and s.canary_start.startswith("2026-01-01T00:01")
    s, _ = m.transition(s, m.Checked(at(6), "continue"), DEV_POLICY, DEV)
    s, _ = m.transition(s, m.WeightSet(at(6), 50), DEV_POLICY, DEV)
    assert s.window_start.startswith("2026-01-01T00:06") and s.canary_start.startswith("2026-01-01T00:01")
    assert m.State.from_json(s.to_json()) == s


def test_state_from_older_records_without_canary_start():
    old = {"phase": "baking", "step": 1, "weight": 50, "window_start": "a", "window_end": "b"}
    s = m.State.from_json(old)
    assert s.canary_start is None and s.phase == "baking"
