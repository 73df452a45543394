"""The canary core (run_start / run_cont / driver / rollback) on in-memory fakes: no emulator, no I/O."""

from __future__ import annotations

import pytest

from stageflow.deploy import canary
from stageflow.deploy import machine as m
from stageflow.errors import ExitCode, LockedError, ReleaseRejected, RollbackFailed
from tests.fakes import (
    FakeArtifact,
    FakeRouter,
    InMemoryHistory,
    RecordingNotifier,
    ScriptedSource,
    config_env,
    failing_canary,
    fake_context,
)


def test_healthy_dev_canary_goes_10_50_100_and_records_every_transition():
    ctx = fake_context(config_env("dev"))
    res = canary.run_start(ctx, FakeArtifact("code-v2"), commit="abc")
    o = res.outcome
    assert o is not None and o.state.phase == "succeeded"
    assert ctx.traffic.moves == [{"1": 90, "2": 10}, {"1": 50, "2": 50}, {"2": 100}]
    dep = ctx.history.get(o.deployment.deployment_id)
    phases = [t["to"] for t in dep.transitions]
    assert phases[:3] == ["pending", "shifting", "baking"] and phases[-1] == "succeeded"
    assert dep.status == "succeeded" and dep.version == "2" and dep.previous_version == "1"
    assert ctx.history.lock() is None  # released
    assert ctx.notifier.kinds[0] == "started" and ctx.notifier.kinds[-1] == "succeeded"
    # the simulator seam was driven every look, with the weights in effect
    assert ctx.feed.calls and ctx.feed.calls[0][1] == {"2": 10, "1": 90}


def test_failing_canary_is_rolled_back_exit_4_and_traffic_on_stable():
    source = ScriptedSource(failing_canary(["2"]))
    ctx = fake_context(config_env("dev"), source=source)
    with pytest.raises(ReleaseRejected) as exc:
        canary.run_start(ctx, FakeArtifact("code-v2"))
    assert exc.value.exit_code == ExitCode.REJECTED
    assert ctx.traffic.state().weights == {"1": 100}
    dep = ctx.history.list(1)[0]
    assert dep.status == "rolled_back" and "error" in dep.state["reason"]
    assert "rolled_back" in ctx.notifier.kinds and ctx.history.lock() is None


def test_nothing_changed_publishes_nothing_and_releases_the_lock():
    router = FakeRouter()
    ctx = fake_context(config_env("dev"), router=router)
    res = canary.run_start(ctx, FakeArtifact("code-v1"))  # what v1 already serves
    assert res.outcome is None and router.versions == ["1"]
    dep = ctx.history.list(1)[0]
    assert dep.phase == "no_change" and dep.status == "succeeded"
    assert ctx.history.lock() is None


def test_a_configuration_change_alone_is_published():
    ctx = fake_context(config_env("dev"))
    ctx.publisher.latest_config = {"LOG_LEVEL": "debug"}  # e.g. Terraform changed $LATEST
    res = canary.run_start(ctx, FakeArtifact("code-v1"))
    assert res.published.version == "2" and res.published.changed == ("environment",)
    assert res.outcome.state.phase == "succeeded"


def test_a_held_lock_is_exit_6_and_publishes_nothing():
    history = InMemoryHistory()
    history.acquire_lock("20260101T000000Z-aaaaaa", "someone@host", canary.datetime(2026, 1, 1))
    router = FakeRouter()
    ctx = fake_context(config_env("dev"), history=history, router=router)
    with pytest.raises(LockedError) as exc:
        canary.run_start(ctx, FakeArtifact())
    assert exc.value.exit_code == ExitCode.LOCKED and "someone@host" in exc.value.one_line()
    assert router.versions == ["1"] and history.list() == []


def test_prod_pauses_for_approval_then_approve_and_reject():
    env = config_env("prod")
    ctx = fake_context(env)
    res = canary.run_start(ctx, FakeArtifact("code-v2"))
    assert res.outcome.paused and res.outcome.state.phase == "awaiting_approval"
    assert ctx.traffic.moves == []  # approval before the canary: nothing moved yet
    assert ctx.history.lock() is not None  # still held by the paused deployment
    out = canary.run_cont(ctx, "approve", who="alice")
    assert out.paused and ctx.traffic.moves == []  # prod needs two approvers: still nothing moved
    out = canary.run_cont(ctx, "approve", who="carol")
    assert out.paused and ctx.traffic.state().weights == {"1": 90, "2": 10}  # paused between steps
    with pytest.raises(ReleaseRejected):
        canary.run_cont(ctx, "reject", who="bob", reason="latency looks odd")
    assert ctx.traffic.state().weights == {"1": 100} and ctx.history.lock() is None
    dep = ctx.history.list(1)[0]
    assert any(
        "bob" in (t.get("reason") or "") or "latency looks odd" in (t.get("reason") or "")
        for t in dep.transitions
    )


def test_failed_rollback_is_exit_5_and_recorded_failed():
    router = FakeRouter()
    router.fail_restores = 5
    ctx = fake_context(config_env("dev"), router=router, source=ScriptedSource(failing_canary(["2"])))
    with pytest.raises(RollbackFailed) as exc:
        canary.run_start(ctx, FakeArtifact("code-v2"))
    assert exc.value.exit_code == ExitCode.ROLLBACK_FAILED
    assert ctx.history.list(1)[0].status == "failed"


def _stop_after(n: int | None):
    seen = {"n": 0}

    def factory():
        if n is None:
            return lambda _state: seen.__setitem__("n", seen["n"] + 1) or False

        def check(_state: m.State) -> bool:
            seen["n"] += 1
            return seen["n"] >= n

        return check

    return factory, seen


def test_a_run_stopped_after_any_recorded_state_resumes_to_the_end(monkeypatch):
    counting, seen = _stop_after(None)
    monkeypatch.setattr(canary, "_failpoint", counting)
    canary.run_start(fake_context(config_env("dev")), FakeArtifact("code-v2"))
    total = seen["n"]
    assert total >= 6  # shifting, baking, shifting, baking, shifting/monitoring, succeeded
    for kill_after in range(1, total):
        stopper, _ = _stop_after(kill_after)
        monkeypatch.setattr(canary, "_failpoint", stopper)
        ctx = fake_context(config_env("dev"))
        res = canary.run_start(ctx, FakeArtifact("code-v2"))
        assert not res.outcome.state.terminal, kill_after  # stopped as if killed
        assert ctx.history.lock() is not None
        monkeypatch.setattr(canary, "_failpoint", lambda: None)
        out = canary.run_cont(ctx)
        assert out.state.phase == "succeeded" and ctx.traffic.state().weights == {"2": 100}, kill_after
        assert ctx.history.lock() is None


def test_on_call_rollback_mid_canary_closes_the_deployment_and_restores_stable(monkeypatch):
    from stageflow.rollback.cli import rollback

    stop = {"n": 0}
    monkeypatch.setattr(
        canary, "_failpoint", lambda: lambda s: stop.__setitem__("n", stop["n"] + 1) or stop["n"] >= 4
    )
    notifier = RecordingNotifier()
    ctx = fake_context(config_env("dev"), notifier=notifier)
    canary.run_start(ctx, FakeArtifact("code-v2"))
    assert ctx.traffic.state().weights != {"1": 100}
    res = rollback(ctx, reason="customers complain", who="oncall")
    assert res.changed and res.to_version == "1" and ctx.traffic.state().weights == {"1": 100}
    dep = ctx.history.list(1)[0]
    assert dep.status == "rolled_back" and ctx.history.lock() is None
    assert ctx.history.events()[0]["kind"] == "rollback" and notifier.kinds[-2:] == [
        "rolled_back",
        "incident",
    ]
    again = rollback(ctx, reason="second alarm", trigger="alarm")
    assert not again.changed  # idempotent


# -- a failed alias shift between steps is an outcome, not stranded traffic ------------------------------
class ShiftFailingRouter(FakeRouter):
    """``set_canary`` to one of ``fail_at`` weights fails (after the client's retries, as botocore would
    report it); ``applied``: the alias moved but the answer was lost. ``fail_restores`` as in FakeRouter."""

    def __init__(self, fail_at: tuple[int, ...], *, applied: bool = False, **kw):
        super().__init__(**kw)
        self.fail_at = set(fail_at)
        self.applied = applied
        self.shift_calls: list[int] = []

    def set_canary(self, stable, canary, weight):
        self.shift_calls.append(weight)
        if weight in self.fail_at:
            if self.applied:
                super().set_canary(stable, canary, weight)
            from botocore.exceptions import ClientError

            raise ClientError(
                {
                    "Error": {"Code": "ServiceUnavailable", "Message": "injected"},
                    "ResponseMetadata": {"RetryAttempts": 4, "HTTPStatusCode": 503},
                },
                "UpdateAlias",
            )
        return super().set_canary(stable, canary, weight)


@pytest.mark.parametrize(
    ("fail_at", "applied"), [((50,), False), ((50,), True), ((100,), False), ((10,), True)]
)
def test_a_failed_alias_shift_rolls_back_to_stable_and_exits_3(fail_at, applied):
    from stageflow.errors import AwsError

    router = ShiftFailingRouter(fail_at, applied=applied)
    notifier = RecordingNotifier()
    ctx = fake_context(config_env("dev"), router=router, notifier=notifier)
    with pytest.raises(AwsError) as exc:
        canary.run_start(ctx, FakeArtifact("code-v2"))
    line = exc.value.one_line()
    assert exc.value.exit_code == ExitCode.ENVIRONMENT
    assert f"alias shift to {fail_at[0]}% failed" in line and "UpdateAlias" in line, line
    assert "all traffic is on v1" in line and "\n" not in line
    assert router.state().weights == {"1": 100}  # back on one version, the stable one
    dep = ctx.history.list(1)[0]
    assert dep.status == "rolled_back" and dep.state["fault"]
    chain = [t["to"] for t in dep.transitions]
    assert chain[-2:] == ["rolling_back", "rolled_back"], chain
    assert all(a["to"] == b["from"] for a, b in zip(dep.transitions, dep.transitions[1:], strict=False))
    assert "alias shift" in dep.transitions[-2]["reason"]
    # traffic may have moved (the step had begun): the rollback opens an incident, notified after it
    assert notifier.kinds[-2:] == ["rolled_back", "incident"] and ctx.history.lock() is None
    (inc,) = ctx.history.incidents()
    assert inc["deployment_id"] == dep.deployment_id and inc["status"] == "restored"


def test_a_failed_shift_whose_rollback_fails_too_pages_and_exits_5():
    router = ShiftFailingRouter((50,))
    router.fail_restores = 10  # UpdateAlias keeps failing: the restore too
    notifier = RecordingNotifier()
    ctx = fake_context(config_env("dev"), router=router, notifier=notifier)
    with pytest.raises(RollbackFailed) as exc:
        canary.run_start(ctx, FakeArtifact("code-v2"))
    assert exc.value.exit_code == ExitCode.ROLLBACK_FAILED
    dep = ctx.history.list(1)[0]
    assert dep.status == "failed" and [t["to"] for t in dep.transitions][-2:] == ["rolling_back", "failed"]
    page = [msg for msg in notifier.messages if msg.kind == "rollback_failed"]
    assert len(page) == 1 and "page a person" in page[0].text and page[0].data["page"] is True
    assert len(page[0].data["tried"]) == 3  # every attempt, with its error
    reason = dep.state["reason"]  # the page says what still serves
    assert "alias now:" in reason and "'1': 90" in reason and "'2': 10" in reason, reason


def test_a_flaky_restore_after_a_failed_shift_is_retried_and_ends_on_stable():
    from stageflow.errors import AwsError

    router = ShiftFailingRouter((50,))
    router.fail_restores = 2  # the third try works
    ctx = fake_context(config_env("dev"), router=router)
    with pytest.raises(AwsError):
        canary.run_start(ctx, FakeArtifact("code-v2"))
    assert router.state().weights == {"1": 100} and ctx.history.list(1)[0].status == "rolled_back"


def test_a_bug_in_the_shift_is_not_turned_into_a_rollback():
    class Buggy(FakeRouter):
        def set_canary(self, stable, canary, weight):
            raise KeyError("bug")

    ctx = fake_context(config_env("dev"), router=Buggy())
    with pytest.raises(KeyError):
        canary.run_start(ctx, FakeArtifact("code-v2"))


def test_shift_failed_is_only_valid_while_shifting():
    from datetime import UTC, datetime

    env = config_env("dev")
    with pytest.raises(m.InvalidTransition):
        m.transition(
            m.State(phase="baking"), m.ShiftFailed(datetime.now(UTC), 10, "x"), env.canary, env.approvals
        )


def test_on_call_rollback_after_a_paged_canary_finishes_it_on_that_canarys_stable():
    """v2 succeeded, then on-call went back to v1; v3's canary fails its shift and its rollback (exit 5,
    alias split v1/v3). `stageflow rollback` then restores v1 (the failed canary's stable), not v2 (the
    newest succeeded deployment)."""
    from stageflow.rollback.cli import rollback

    router = ShiftFailingRouter(())
    ctx = fake_context(config_env("dev"), router=router)
    canary.run_start(ctx, FakeArtifact("code-v2"))
    rollback(ctx, to="1", reason="on-call", who="oncall")
    router.fail_at, router.fail_restores = {50}, 10
    with pytest.raises(RollbackFailed):
        canary.run_start(ctx, FakeArtifact("code-v3"))
    assert router.state().weights == {"1": 90, "3": 10}
    router.fail_restores = 0
    res = rollback(ctx, reason="finish the paged rollback", who="oncall")
    assert res.to_version == "1" and router.state().weights == {"1": 100}
