"""Issue 26 items 1-2: approvals as data (required distinct approvers, roles, the options at a canary
pause) and deadlines that act with no command run (``tick``, the scheduled handler), on the fakes and the
virtual clock."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from stageflow.deploy import canary
from stageflow.deploy.approvals import extend_minutes_problem, identity_from_arn
from stageflow.errors import ExitCode, ReleaseRejected, UsageError
from stageflow.isotime import parse_iso
from stageflow.rollback.tick import tick
from tests.fakes import FakeArtifact, config_env, fake_context


def _prod(**approvals):
    env = config_env("prod")
    return replace(env, approvals=replace(env.approvals, **approvals)) if approvals else env


def _approve(ctx, who, option="approve", minutes=None, roles=(), reason=""):
    return canary.run_cont(ctx, answer=canary.Answer("approve", who, option, minutes, roles, reason))


def _tick(ctx):
    return tick(
        ctx.env.name,
        ctx.service,
        history=ctx.history,
        traffic=ctx.traffic,
        notifier=ctx.notifier,
        reporter=ctx.reporter,
        now=ctx.clock.now(),
    )


def _at_step_pause(ctx):
    """A prod canary paused after its first step's bake (two approvals before the canary given)."""
    canary.run_start(ctx, FakeArtifact("code-v2"))
    _approve(ctx, "alice")
    out = _approve(ctx, "carol")
    assert out.paused and out.state.approval_for == "step:0"
    assert ctx.traffic.state().weights == {"1": 90, "2": 10}
    return out


def test_two_distinct_approvers_before_prod_and_the_same_identity_twice_is_refused():
    ctx = fake_context(_prod())
    res = canary.run_start(ctx, FakeArtifact("code-v2"))
    assert res.outcome.state.deadline  # the pause has its deadline from the first moment
    out = _approve(ctx, "alice", reason="tests green")
    assert out.paused and ctx.traffic.moves == [] and "1 more approver" in out.state.reason
    before = ctx.history.list(1)[0]
    with pytest.raises(UsageError) as exc:
        _approve(ctx, "alice")
    assert exc.value.exit_code == ExitCode.USAGE
    assert "alice already approved" in exc.value.one_line() and "\n" not in exc.value.one_line()
    assert ctx.history.list(1)[0] == before  # nothing changed
    _approve(ctx, "carol")
    assert ctx.traffic.moves[0] == {"1": 90, "2": 10}
    answers = ctx.history.list(1)[0].extra["approvals"]
    assert [(a["who"], a["option"]) for a in answers] == [("alice", "approve"), ("carol", "approve")]
    assert answers[0]["reason"] == "tests green" and answers[0]["at"]
    assert answers[0]["pause"] == "before_canary"


def test_roles_each_need_one_holder():
    ctx = fake_context(_prod(roles=("devops", "product")))
    canary.run_start(ctx, FakeArtifact("code-v2"))
    _approve(ctx, "alice", roles=("devops",))
    out = _approve(ctx, "bob", roles=("devops",))  # two people, but nobody from product
    assert out.paused and ctx.traffic.moves == [] and "role product" in out.state.reason
    out = _approve(ctx, "pat", roles=("product",))
    assert ctx.traffic.moves[0] == {"1": 90, "2": 10}


def test_extend_bakes_longer_at_this_step_then_goes_on_without_pausing_again():
    ctx = fake_context(_prod())
    paused = _at_step_pause(ctx)
    at = ctx.clock.now()
    _approve(ctx, "alice", "extend", 30.0)
    out = _approve(ctx, "carol", "extend", 30.0)
    dep = ctx.history.get(out.deployment.deployment_id)
    baked = [t for t in dep.transitions if "bake extended 30 min" in (t.get("reason") or "")]
    assert baked and parse_iso(baked[0]["at"]) == at  # recorded when the rule was met
    # the extension was judged, then the canary went on to 50 % (and paused there: its own step)
    assert out.paused and out.state.approval_for == "step:1" and out.state.weight == 50
    assert (ctx.clock.now() - at).total_seconds() >= 30 * 60
    assert paused.state.weight == 10


def test_an_approver_must_give_the_same_option_as_the_first():
    ctx = fake_context(_prod())
    _at_step_pause(ctx)
    _approve(ctx, "alice", "skip_to_full")
    with pytest.raises(UsageError, match="alice approved with --skip-to-full"):
        _approve(ctx, "carol")


def test_skip_to_full_goes_straight_to_100_and_is_still_monitored():
    ctx = fake_context(_prod())
    _at_step_pause(ctx)
    _approve(ctx, "alice", "skip_to_full")
    out = _approve(ctx, "carol", "skip_to_full", reason="hotfix")
    assert out.state.phase == "succeeded" and ctx.traffic.state().weights == {"2": 100}
    assert {"1": 50, "2": 50} not in ctx.traffic.moves  # 50 % skipped
    phases = [t["to"] for t in ctx.history.get(out.deployment.deployment_id).transitions]
    assert "monitoring" in phases  # promoted, then watched for the post-promotion window


def test_extend_before_the_canary_is_refused():
    ctx = fake_context(_prod())
    canary.run_start(ctx, FakeArtifact("code-v2"))
    with pytest.raises(UsageError, match="option at a canary step"):
        _approve(ctx, "alice", "extend", 10.0)


def test_reject_rolls_back_and_is_recorded():
    ctx = fake_context(_prod())
    _at_step_pause(ctx)
    with pytest.raises(ReleaseRejected):
        canary.run_cont(ctx, answer=canary.Answer("reject", "bob", reason="p99 looks odd"))
    assert ctx.traffic.state().weights == {"1": 100}
    last = ctx.history.list(1)[0].extra["approvals"][-1]
    assert last["who"] == "bob" and last["option"] == "reject" and last["reason"] == "p99 looks odd"


def test_a_deadline_at_a_canary_step_rolls_back_through_tick_with_no_command_run():
    ctx = fake_context(_prod())
    out = _at_step_pause(ctx)
    assert _tick(ctx).acted is False  # not yet
    assert ctx.traffic.state().weights == {"1": 90, "2": 10}
    ctx.clock.advance(2 * 3600 + 1)  # prod's step pause: 2 h
    res = _tick(ctx)
    assert res.acted and "rolled back" in res.text
    assert ctx.traffic.state().weights == {"1": 100}
    dep = ctx.history.get(out.deployment.deployment_id)
    assert dep.status == "rolled_back" and ctx.history.lock() is None
    assert dep.extra["approvals"][-1]["who"] == "deadline"
    assert _tick(ctx).acted is False  # idempotent: nothing in flight any more


def test_a_deadline_before_production_rejects_after_24h():
    ctx = fake_context(_prod())
    canary.run_start(ctx, FakeArtifact("code-v2"))
    ctx.clock.advance(23 * 3600)
    assert _tick(ctx).acted is False
    ctx.clock.advance(3600 + 1)
    res = _tick(ctx)
    assert res.acted and "rejected" in res.text and ctx.traffic.state().weights == {"1": 100}


def test_a_late_answer_is_refused_with_one_line_saying_what_happened():
    ctx = fake_context(_prod())
    _at_step_pause(ctx)
    ctx.clock.advance(2 * 3600 + 1)
    _tick(ctx)
    with pytest.raises(UsageError) as exc:
        _approve(ctx, "alice")
    line = exc.value.one_line()
    assert exc.value.exit_code == ExitCode.USAGE and "\n" not in line
    assert "too late" in line and "rolled_back" in line and "deadline" in line


def test_a_late_answer_with_nobody_ticking_lets_the_deadline_act_first():
    ctx = fake_context(_prod())
    _at_step_pause(ctx)
    ctx.clock.advance(2 * 3600 + 1)
    with pytest.raises(UsageError, match="too late: the approval deadline"):
        _approve(ctx, "alice")
    assert ctx.traffic.state().weights == {"1": 100}
    assert ctx.history.list(1)[0].status == "rolled_back"


@pytest.mark.parametrize(
    ("arn", "who"),
    [
        ("arn:aws:sts::123456789012:assumed-role/Deployer/alice", "alice"),
        ("arn:aws:iam::123456789012:user/ops/bob", "bob"),
        ("arn:aws:sts::123456789012:federated-user/carol", "carol"),
        ("arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:root"),
    ],
)
def test_identity_from_the_aws_caller(arn, who):
    assert identity_from_arn(arn) == who


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 0, 0.5, -3, 121])
def test_extend_minutes_must_be_finite_and_in_range(bad):
    assert extend_minutes_problem(bad, 120)


def test_extend_minutes_in_range():
    assert extend_minutes_problem(30, 120) == ""


def test_status_shows_every_answer_and_the_deadline():
    from stageflow.deploy.status import status

    ctx = fake_context(_prod())
    canary.run_start(ctx, FakeArtifact("code-v2"))
    _approve(ctx, "alice", roles=("devops",), reason="tests green")
    text, data = status(ctx)
    assert "answer: " in text and "alice (devops) approve at before_canary" in text and "tests green" in text
    assert f"deadline: {data['deadline']} (then rejected)" in text
    assert data["approvals"][0]["who"] == "alice"
