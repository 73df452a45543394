"""The pre-traffic check (CodeDeploy's BeforeAllowTraffic) on the in-memory fakes: the new version is
invoked before any weight moves; a failure moves nothing, is recorded first and rejects the release."""

from __future__ import annotations

import platform
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from stageflow.config import load
from stageflow.deploy import canary
from stageflow.deploy import machine as m
from stageflow.deploy.status import history_lines, status
from stageflow.deployment_report.data import ReportData
from stageflow.deployment_report.render import human, render_html
from stageflow.errors import EnvironmentFailure, ExitCode, ReleaseRejected, UsageError
from stageflow.invokecheck import LambdaInvokeCheck, NotRunHere, Smoke, invoke_failure
from stageflow.wiring import function_check
from tests.conftest import REPO
from tests.fakes import FakeArtifact, FakeCheck, config_env, fake_context

IMPORT_ERROR = (
    "Runtime.ImportModuleError: Unable to import module 'notes.handler': "
    "No module named 'aws_lambda_powertools'"
)


class Killed(BaseException):
    """SIGKILL, as far as the run can tell: nothing after it happens (no notice, no lock release)."""


def _kill_after(n: int):
    seen = {"n": 0}

    def check(_state):
        seen["n"] += 1
        if seen["n"] >= n:
            raise Killed
        return False

    return lambda: check


def test_a_passing_check_runs_before_the_first_shift_and_the_canary_proceeds():
    check = FakeCheck()
    ctx = fake_context(config_env("dev"), check=check)
    order = []
    invoke, shift = check.check, ctx.traffic.set_canary
    check.check = lambda q: order.append(("check", q)) or invoke(q)
    ctx.traffic.set_canary = lambda s, c, w: order.append(("shift", w)) or shift(s, c, w)
    res = canary.run_start(ctx, FakeArtifact("code-v2"))
    assert res.outcome.state.phase == "succeeded"
    assert order[:2] == [("check", "2"), ("shift", 10)]  # the new version, before any weight moved
    dep = ctx.history.get(res.outcome.deployment.deployment_id)
    assert dep.extra["pre_traffic"]["status"] == "passed" and dep.extra["pre_traffic"]["qualifier"] == "2"
    first = dep.transitions[1]
    assert (first.from_phase, first.to_phase) == ("pending", "shifting")
    assert first.reason.startswith("pre-traffic check svc-dev:2 passed; step 1/3")
    assert ctx.notifier.kinds[0] == "started"


def test_a_failing_check_moves_no_traffic_is_recorded_and_rejects_the_release_exit_4():
    check = FakeCheck()
    check.failing["2"] = IMPORT_ERROR
    ctx = fake_context(config_env("dev"), check=check)
    with pytest.raises(ReleaseRejected) as exc:
        canary.run_start(ctx, FakeArtifact("code-v2"))
    assert exc.value.exit_code == ExitCode.REJECTED
    line = exc.value.one_line()
    assert "v2 rejected in dev: pre-traffic check: svc-dev:2 failed: " + IMPORT_ERROR in line
    assert "no traffic moved: all traffic stays on v1" in line
    assert ctx.traffic.set_canary_calls == [] and ctx.traffic.moves == []  # not even a restore
    assert ctx.traffic.state().weights == {"1": 100}
    dep = ctx.history.list(1)[0]
    assert (dep.status, dep.phase, dep.version) == ("rolled_back", "rolled_back", "2")
    last = dep.transitions[-1]
    assert (last.from_phase, last.to_phase) == ("pending", "rolled_back") and IMPORT_ERROR in last.reason
    assert dep.extra["pre_traffic"] == {
        "function": "svc-dev",
        "qualifier": "2",
        "status": "failed",
        "reason": IMPORT_ERROR,
        "executed_version": "2",
        "duration_s": 0.0,
    }
    assert ctx.notifier.kinds == ["rolled_back"] and IMPORT_ERROR in ctx.notifier.messages[0].text
    assert ctx.history.lock() is None


def test_status_history_and_report_show_the_failed_check():
    check = FakeCheck()
    check.failing["2"] = IMPORT_ERROR
    ctx = fake_context(config_env("dev"), check=check)
    with pytest.raises(ReleaseRejected):
        canary.run_start(ctx, FakeArtifact("code-v2"))
    text, data = status(ctx)
    assert f"pre-traffic check: svc-dev:2 failed: {IMPORT_ERROR}" in text
    assert data["pre_traffic"]["status"] == "failed" and data["weights"] == {"1": 100}
    dep = ctx.history.list(1)[0]
    report = ReportData(dep, (), None, None)
    assert f"pre-traffic check: svc-dev:2 failed: {IMPORT_ERROR}" in human(report)
    assert "No module named &#x27;aws_lambda_powertools&#x27;" in render_html(report, charts=False)
    lines = history_lines([dep], [])
    assert lines[0].startswith(dep.deployment_id) and "rolled_back" in lines[0]
    assert lines[1] == f"    pre-traffic check: svc-dev:2 failed: {IMPORT_ERROR}"


def test_a_kill_after_the_failed_check_was_recorded_never_moves_traffic_on_resume(monkeypatch):
    check = FakeCheck()
    check.failing["2"] = IMPORT_ERROR
    ctx = fake_context(config_env("dev"), check=check)
    monkeypatch.setattr(canary, "_failpoint", _kill_after(1))  # right after the rejection is recorded
    with pytest.raises(Killed):
        canary.run_start(ctx, FakeArtifact("code-v2"))
    dep = ctx.history.list(1)[0]
    assert dep.status == "rolled_back" and ctx.notifier.kinds == []  # recorded; nothing after it ran
    monkeypatch.setattr(canary, "_failpoint", lambda: None)
    with pytest.raises(UsageError) as exc:
        canary.run_cont(ctx)  # resume: nothing in flight
    assert exc.value.exit_code == ExitCode.USAGE
    assert ctx.traffic.set_canary_calls == [] and ctx.traffic.state().weights == {"1": 100}
    assert check.calls == ["2"]  # not checked again, not shifted
    assert ctx.history.get(dep.deployment_id) == dep  # the record is as the killed run left it


def test_a_kill_before_the_result_was_recorded_checks_again_on_resume():
    check = FakeCheck()
    check.raises = Killed()  # killed while invoking: the record still says pending
    ctx = fake_context(config_env("dev"), check=check)
    with pytest.raises(Killed):
        canary.run_start(ctx, FakeArtifact("code-v2"))
    assert ctx.history.list(1)[0].phase == "pending" and ctx.traffic.set_canary_calls == []
    check.raises = None
    check.failing["2"] = IMPORT_ERROR  # the version is broken: resume finds out before any traffic
    with pytest.raises(ReleaseRejected):
        canary.run_cont(ctx)
    assert check.calls == ["2", "2"] and ctx.traffic.set_canary_calls == []


def test_a_kill_after_a_passed_check_resumes_with_the_shift_without_checking_again(monkeypatch):
    check = FakeCheck()
    ctx = fake_context(config_env("dev"), check=check)
    monkeypatch.setattr(canary, "_failpoint", _kill_after(1))  # pending → shifting recorded
    with pytest.raises(Killed):
        canary.run_start(ctx, FakeArtifact("code-v2"))
    assert ctx.traffic.set_canary_calls == []
    monkeypatch.setattr(canary, "_failpoint", lambda: None)
    out = canary.run_cont(ctx)
    assert out.state.phase == "succeeded" and check.calls == ["2"]


def test_the_check_runs_before_a_before_canary_approval():
    check = FakeCheck()
    ctx = fake_context(config_env("prod"), check=check)
    res = canary.run_start(ctx, FakeArtifact("code-v2"))
    assert res.outcome.paused and res.outcome.state.approval_for == "before_canary"
    assert check.calls == ["2"] and ctx.traffic.set_canary_calls == []


def test_a_check_that_cannot_run_is_exit_3_one_line_recorded_and_moves_nothing():
    check = FakeCheck()
    check.raises = EnvironmentFailure(
        "svc-dev:2 cannot be invoked here: no python3.12 interpreter on this machine",
        "install CPython 3.12",
    )
    ctx = fake_context(config_env("dev"), check=check)
    with pytest.raises(EnvironmentFailure) as exc:
        canary.run_start(ctx, FakeArtifact("code-v2"))
    assert exc.value.exit_code == ExitCode.ENVIRONMENT
    assert "pre-traffic check could not run: svc-dev:2 cannot be invoked here: no python3.12 interpreter" in (
        exc.value.one_line()
    )
    assert ctx.traffic.set_canary_calls == [] and ctx.traffic.state().weights == {"1": 100}
    dep = ctx.history.list(1)[0]
    assert dep.status == "rolled_back" and dep.state.fault and dep.extra["pre_traffic"]["status"] == "error"
    assert ctx.history.lock() is None


def test_a_bug_in_the_check_is_not_turned_into_a_rejection():
    check = FakeCheck()
    check.raises = KeyError("oops")
    ctx = fake_context(config_env("dev"), check=check)
    with pytest.raises(KeyError):
        canary.run_start(ctx, FakeArtifact("code-v2"))
    assert ctx.history.list(1)[0].phase == "pending"  # resume checks again


def test_not_run_here_passes_and_says_why():
    ctx = fake_context(config_env("dev"), check=NotRunHere("svc-dev", "arm64; checked statically at build"))
    res = canary.run_start(ctx, FakeArtifact("code-v2"))
    assert res.outcome.state.phase == "succeeded"
    dep = ctx.history.list(1)[0]
    assert dep.extra["pre_traffic"]["status"] == "not run"
    assert (
        "pre-traffic dev: svc-dev:2 not run here (arm64; checked statically at build)" in ctx.reporter.lines
    )


@pytest.mark.parametrize(
    ("local", "arch", "host", "kind"),
    [
        (True, "arm64", "x86_64", NotRunHere),
        (True, "x86_64", "x86_64", LambdaInvokeCheck),
        (True, "x86_64", "aarch64", NotRunHere),
        (False, "arm64", "x86_64", LambdaInvokeCheck),  # AWS runs it
    ],
)
def test_the_factory_decides_whether_the_check_can_run_here(monkeypatch, local, arch, host, kind):
    cfg = load(REPO / "stageflow.toml")
    cfg = SimpleNamespace(
        root=cfg.root, service=SimpleNamespace(**{**vars(cfg.service), "architecture": arch})
    )
    factory = SimpleNamespace(
        config=cfg, local=local, aws=SimpleNamespace(client=lambda name: f"{name}-client")
    )
    monkeypatch.setattr(platform, "machine", lambda: host)
    check = function_check(factory, "sample-api-dev")
    assert isinstance(check, kind)
    if kind is NotRunHere:
        assert (
            check.check("3").line() == f"sample-api-dev:3 not run here ({arch}; checked statically at build)"
        )
    else:
        assert check.lambda_client == "lambda-client" and check.smoke == cfg.service.smoke


def test_the_emulators_invalid_runtime_answer_is_exit_3_naming_the_interpreter():
    message = "no python3.12 interpreter on this machine (looked on PATH and in /root/.pyenv/versions)"
    err = ClientError({"Error": {"Code": "InvalidRuntimeException", "Message": message}}, "Invoke")

    class Refusing:
        def invoke(self, **_kw):
            raise err

    check = LambdaInvokeCheck(Refusing(), "svc-dev", Smoke(), REPO, "python3.12")
    with pytest.raises(EnvironmentFailure) as exc:
        check.check("2")
    assert exc.value.exit_code == ExitCode.ENVIRONMENT
    assert exc.value.one_line() == (
        f"svc-dev:2 cannot be invoked here: {message} "
        "(install CPython 3.12 (e.g. `pyenv install 3.12` or your package manager's python3.12))"
    )
    throttled = ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow"}}, "Invoke")
    assert invoke_failure(throttled, "svc-dev:2").exit_code == ExitCode.ENVIRONMENT
    assert invoke_failure(ValueError("a bug"), "svc-dev:2") is None


def test_pre_traffic_events_are_only_valid_while_pending():
    state = m.State(phase="baking", step=0, weight=10)
    with pytest.raises(m.InvalidTransition):
        m.transition(state, m.PreTrafficFailed(canary.datetime(2026, 1, 1), "x"), *_policy())
    assert m.actions_for(m.State()) == [m.CheckBeforeTraffic()]


def _policy():
    env = config_env("dev")
    return env.canary, env.approvals
