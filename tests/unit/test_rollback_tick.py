"""Issue 26 item 2: the scheduled check (EventBridge → the rollback function with ``{"stageflow": "tick"}``
→ ``tick_handler``) ends a pause whose deadline passed with no command run; before its
deadline it changes nothing. Fakes at the handler's AWS seams (its clients, the history table)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stageflow.clock import VirtualClock
from stageflow.deploy import canary
from stageflow.deploy.release import Member, Release
from stageflow.rollback import handler as rollback_lambda
from stageflow.rollback.handler import Settings
from tests.fakes import FakeArtifact, config_env, fake_context

from .test_rollback_core import LAMBDA_ENV


class FakeSns:
    def __init__(self):
        self.published: list[dict] = []

    def publish(self, **kw):
        self.published.append(kw)
        return {"MessageId": "1"}


def _paused_prod(started: datetime):
    ctx = fake_context(config_env("prod"), clock=VirtualClock(started))
    canary.run_start(ctx, FakeArtifact("code-v2"))
    for who in ("alice", "carol"):
        canary.run_cont(ctx, answer=canary.Answer("approve", who))
    assert ctx.history.in_flight().state.approval_for == "step:0"
    return ctx


def _wire(monkeypatch, ctx):
    for k, v in {**LAMBDA_ENV, "STAGEFLOW_ENVIRONMENT": "prod"}.items():
        monkeypatch.setenv(k, v)
    sns = FakeSns()
    monkeypatch.setattr(rollback_lambda, "DynamoHistory", lambda *a: ctx.history)
    monkeypatch.setattr(rollback_lambda, "_clients", lambda: (None, None, sns, None))
    monkeypatch.setattr(
        Settings, "release", lambda self, lam: Release((Member(ctx.traffic.function, ctx.traffic),))
    )
    return sns


@pytest.mark.parametrize(("hours_ago", "acts"), [(3, True), (1, False)], ids=["passed", "not-yet"])
def test_the_scheduled_check_acts_only_on_a_passed_deadline(monkeypatch, hours_ago, acts):
    # the canary paused about 15 minutes after it started; the step pause's deadline is 2 h after that
    ctx = _paused_prod(datetime.now(UTC) - timedelta(hours=hours_ago))
    sns = _wire(monkeypatch, ctx)
    result = rollback_lambda.handler({"stageflow": "tick", "source": "aws.events"})
    assert result["acted"] is acts
    dep = ctx.history.list(1)[0]
    if acts:
        assert ctx.traffic.state().weights == {"1": 100} and dep.status == "rolled_back"
        assert dep.extra["approvals"][-1]["who"] == "deadline"
        assert any("rolled" in (m.get("Subject") or "") for m in sns.published)
    else:
        assert ctx.traffic.state().weights == {"1": 90, "2": 10} and dep.status == "awaiting_approval"
        assert sns.published == []
