"""Several functions, one release (issue 23 item 2), on the in-memory fakes: publish together, check
each new version with its own function's check, shift in step, judge together, promote and roll back
together; a kill mid-shift with the functions at different weights resumes or rolls back consistently."""

from __future__ import annotations

import json

import pytest

from stageflow.deploy import canary
from stageflow.deploy.records import Deployment
from stageflow.deploy.release import Member, Release, release_label
from stageflow.deploy.status import history_lines, status
from stageflow.errors import EnvironmentFailure, ExitCode, ReleaseRejected, UsageError
from stageflow.rollback import cli as rollback_cli
from stageflow.rollback.handler import Settings, SettingsMissing
from tests.fakes import FakeArtifact, PerFunctionSource, config_env, healthy, release_context

API_NEW, WORKER_NEW = "2", "4"  # api serves v1, worker v3: each function's own next version


def _weights(ctx):
    return {k: r.state().weights for k, r in ctx.routers.items()}


def test_a_release_publishes_every_function_shifts_them_in_step_and_promotes_them_together():
    ctx = release_context(config_env("dev"))
    res = canary.run_start(ctx, FakeArtifact("code-v2"), commit="abc")
    assert res.outcome is not None and res.outcome.state.phase == "succeeded"
    api, worker = ctx.routers["api"], ctx.routers["worker"]
    # every function's alias at the same weight at each step, each on its own versions
    assert [w for _s, _c, w in api.set_canary_calls] == [w for _s, _c, w in worker.set_canary_calls]
    assert api.set_canary_calls[0] == ("1", API_NEW, 10) and worker.set_canary_calls[0] == (
        "3",
        WORKER_NEW,
        10,
    )
    assert _weights(ctx) == {"api": {API_NEW: 100}, "worker": {WORKER_NEW: 100}}
    # one deployment record covers both
    deps = ctx.history.list()
    assert len(deps) == 1
    dep = deps[0]
    assert dep.functions == {
        "api": {"function": "svc-api-dev", "alias": "live", "from_version": "1", "to_version": API_NEW},
        "worker": {
            "function": "svc-worker-dev",
            "alias": "live",
            "from_version": "3",
            "to_version": WORKER_NEW,
        },
    }
    # each new version was checked before traffic, with its own function's check
    assert ctx.checks["api"].calls == [API_NEW] and ctx.checks["worker"].calls == [WORKER_NEW]
    assert [f["function"] for f in dep.extra["pre_traffic"]["functions"]] == ["svc-api-dev", "svc-worker-dev"]
    # the gates read every function's canary vs stable: the simulator seam was fed for both
    assert ctx.history.lock() is None


def test_a_publish_failure_of_the_second_function_moves_nothing():
    ctx = release_context(config_env("dev"))

    def broken(artifact, *, description=""):
        raise EnvironmentFailure("lambda svc-worker-dev: PublishVersion: ServiceUnavailable (injected)")

    ctx.publishers["worker"].publish = broken
    with pytest.raises(EnvironmentFailure):
        canary.run_start(ctx, FakeArtifact("code-v2"))
    assert ctx.routers["api"].moves == [] and ctx.routers["worker"].moves == []
    assert _weights(ctx) == {"api": {"1": 100}, "worker": {"3": 100}}
    dep = ctx.history.list(1)[0]
    assert dep.status == "failed" and ctx.history.lock() is None


def test_a_pre_traffic_failure_in_one_function_rejects_the_release_and_moves_nothing():
    ctx = release_context(config_env("dev"))
    ctx.checks["worker"].failing[WORKER_NEW] = "Runtime.ImportModuleError: No module named 'pydantic_core'"
    with pytest.raises(ReleaseRejected) as exc:
        canary.run_start(ctx, FakeArtifact("code-v2"))
    assert exc.value.exit_code == ExitCode.REJECTED
    line = exc.value.one_line()
    assert "svc-worker-dev:4 failed" in line and "pydantic_core" in line
    assert ctx.routers["api"].set_canary_calls == [] and ctx.routers["worker"].set_canary_calls == []
    dep = ctx.history.list(1)[0]
    assert dep.status == "rolled_back" and dep.extra["pre_traffic"]["function"] == "svc-worker-dev"
    assert ctx.checks["api"].calls == [API_NEW]  # every function was checked; the failing one is named


def _hold_until_both_started(monkeypatch, ctx, first_sleeps: float = 0.0):
    """Each function's check returns only once the other one has started (sequential checks would
    break the barrier); the first function's answer comes last when ``first_sleeps``."""
    import threading
    import time

    both = threading.Barrier(2, timeout=10)
    for i, chk in enumerate(ctx.checks.values()):
        original = chk.check

        def check(qualifier, original=original, pause=first_sleeps if i == 0 else 0.0):
            both.wait()
            time.sleep(pause)
            return original(qualifier)

        monkeypatch.setattr(chk, "check", check)


def test_every_functions_pre_traffic_check_runs_at_once(monkeypatch):
    """The release waits for the slowest function's cold start, not the sum of them."""
    ctx = release_context(config_env("dev"))
    _hold_until_both_started(monkeypatch, ctx, first_sleeps=0.2)
    res = canary.run_start(ctx, FakeArtifact("code-v2"))
    assert res.outcome is not None and res.outcome.state.phase == "succeeded"
    assert ctx.checks["api"].calls == [API_NEW] and ctx.checks["worker"].calls == [WORKER_NEW]
    # answers are judged, reported and recorded in the release's order, whichever came first
    dep = ctx.history.list(1)[0]
    assert [f["function"] for f in dep.extra["pre_traffic"]["functions"]] == ["svc-api-dev", "svc-worker-dev"]
    checked = [ln for ln in ctx.reporter.lines if ln.startswith("pre-traffic")]
    assert ["svc-api-dev" in checked[0], "svc-worker-dev" in checked[1]] == [True, True], checked


def test_a_check_that_cannot_be_made_while_the_other_runs_stops_the_release_naming_it(monkeypatch):
    ctx = release_context(config_env("dev"))
    ctx.checks["api"].raises = EnvironmentFailure("invoking svc-api-dev:2: ServiceUnavailable (injected)")
    _hold_until_both_started(monkeypatch, ctx)
    with pytest.raises(EnvironmentFailure) as exc:
        canary.run_start(ctx, FakeArtifact("code-v2"))
    assert exc.value.exit_code == ExitCode.ENVIRONMENT
    assert "svc-api-dev:2 not checked" in exc.value.one_line()
    assert ctx.checks["worker"].calls == [WORKER_NEW]
    assert ctx.routers["api"].set_canary_calls == [] and ctx.routers["worker"].set_canary_calls == []


def test_a_bug_in_one_check_is_raised_not_taken_for_a_failed_release(monkeypatch):
    ctx = release_context(config_env("dev"))
    ctx.checks["worker"].raises = KeyError("a bug")
    _hold_until_both_started(monkeypatch, ctx)
    with pytest.raises(KeyError):
        canary.run_start(ctx, FakeArtifact("code-v2"))
    assert ctx.routers["api"].set_canary_calls == [] and ctx.routers["worker"].set_canary_calls == []


def test_every_functions_look_at_the_gates_runs_at_once(monkeypatch):
    """Each look of one function returns only once the other function's look has started."""
    import threading

    from stageflow.deploy.driver import Driver

    ctx = release_context(config_env("dev"))
    both = threading.Barrier(2, timeout=10)
    original = Driver._look

    def look(self, *args, **kwargs):
        both.wait()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Driver, "_look", look)
    res = canary.run_start(ctx, FakeArtifact("code-v2"))
    assert res.outcome is not None and res.outcome.state.phase == "succeeded"
    verdicts = ctx.history.list(1)[0].verdicts
    assert verdicts and all({r["function"] for r in v.results} == {"api", "worker"} for v in verdicts)
    gates = [ln.split(":")[1].strip() for ln in ctx.reporter.lines if ln.startswith("gate dev:")]
    assert gates[:4] == ["api", "worker", "api", "worker"]  # reported in the release's order


def test_one_function_failing_a_gate_rolls_every_function_back_and_the_verdict_names_it():
    def minute(function, version, t):
        if function == "svc-worker-dev" and version == WORKER_NEW:
            return (600, 120, 50.0, 120.0, 200.0)  # 20 % errors on the worker's canary only
        return healthy(version, t)

    ctx = release_context(config_env("dev"), source=PerFunctionSource(minute))
    with pytest.raises(ReleaseRejected) as exc:
        canary.run_start(ctx, FakeArtifact("code-v2"))
    assert exc.value.exit_code == ExitCode.REJECTED
    assert "worker:" in exc.value.one_line() and "api:" not in exc.value.one_line()
    assert _weights(ctx) == {"api": {"1": 100}, "worker": {"3": 100}}
    dep = ctx.history.list(1)[0]
    assert dep.status == "rolled_back"
    verdict = ctx.history.all_verdicts(dep.deployment_id)[-1]
    assert verdict.decision == "rollback" and any(r.startswith("worker:") for r in verdict.reasons)
    assert {r["function"] for r in verdict.results} == {"api", "worker"}


def _killed_mid_shift(monkeypatch, ctx):
    """Run until step 2 (50 %) is recorded, stop before any alias moves to it (as if killed), then put
    the api alone at 50 %: the functions are at different weights, the record says 50 %."""

    def stop(state):
        return state.phase == "shifting" and state.step == 1

    monkeypatch.setattr(canary, "_failpoint", lambda: stop)
    canary.run_start(ctx, FakeArtifact("code-v2"))
    monkeypatch.setattr(canary, "_failpoint", lambda: None)
    dep = ctx.history.in_flight()
    assert dep is not None and dep.state.phase == "shifting" and dep.state.weight == 50
    ctx.routers["api"].set_canary("1", API_NEW, 50)
    assert _weights(ctx) == {"api": {"1": 50, API_NEW: 50}, "worker": {"3": 90, WORKER_NEW: 10}}
    ctx.history.release_lock(dep.deployment_id)  # its process is gone
    return dep


def test_resume_after_a_kill_mid_shift_brings_every_function_to_the_recorded_weight(monkeypatch):
    ctx = release_context(config_env("dev"))
    _killed_mid_shift(monkeypatch, ctx)
    api, worker = ctx.routers["api"], ctx.routers["worker"]
    n_api, n_worker = len(api.set_canary_calls), len(worker.set_canary_calls)
    outcome = canary.run_cont(ctx)
    # the first action of the resume: every function to the recorded 50 %
    assert api.set_canary_calls[n_api] == ("1", API_NEW, 50)
    assert worker.set_canary_calls[n_worker] == ("3", WORKER_NEW, 50)
    assert outcome.state.phase == "succeeded"
    assert _weights(ctx) == {"api": {API_NEW: 100}, "worker": {WORKER_NEW: 100}}


def test_rollback_after_a_kill_mid_shift_puts_every_function_back_on_its_stable_version(monkeypatch):
    ctx = release_context(config_env("dev"))
    dep = _killed_mid_shift(monkeypatch, ctx)
    result = rollback_cli.rollback(ctx, reason="on-call", who="oncall")
    assert _weights(ctx) == {"api": {"1": 100}, "worker": {"3": 100}}
    assert result.changed and result.deployment_id == dep.deployment_id
    assert result.functions == {
        "api": {"to_version": "1", "from_weights": {"1": 50, API_NEW: 50}},
        "worker": {"to_version": "3", "from_weights": {"3": 90, WORKER_NEW: 10}},
    }
    assert ctx.history.get(dep.deployment_id).status == "rolled_back"
    again = rollback_cli.rollback(ctx, reason="again", who="oncall")  # idempotent
    assert not again.changed


def test_rollback_with_nothing_in_flight_goes_back_to_the_last_good_release_and_to_is_refused():
    ctx = release_context(config_env("dev"))
    canary.run_start(ctx, FakeArtifact("code-v2"))
    canary.run_start(ctx, FakeArtifact("code-v3"))
    assert _weights(ctx) == {"api": {"3": 100}, "worker": {"5": 100}}
    result = rollback_cli.rollback(ctx, reason="bad release")
    assert _weights(ctx) == {"api": {API_NEW: 100}, "worker": {WORKER_NEW: 100}}
    assert result.to_version == API_NEW
    with pytest.raises(UsageError) as exc:
        rollback_cli.rollback(ctx, to="1")
    assert exc.value.exit_code == ExitCode.USAGE and "2 functions" in exc.value.one_line()
    assert _weights(ctx) == {"api": {API_NEW: 100}, "worker": {WORKER_NEW: 100}}


def test_a_release_rolled_back_from_is_never_a_rollback_target_again():
    """v2 shipped, v3 shipped and rolled back (marked bad), v4 shipped: rolling back v4 goes to v2,
    never to the release on-call already rolled back from (found by tests/e2e/test_orders_release.py)."""
    ctx = release_context(config_env("dev"))
    canary.run_start(ctx, FakeArtifact("code-v2"))
    canary.run_start(ctx, FakeArtifact("code-v3"))
    rollback_cli.rollback(ctx, reason="bad release")
    assert _weights(ctx) == {"api": {API_NEW: 100}, "worker": {WORKER_NEW: 100}}
    canary.run_start(ctx, FakeArtifact("code-v4"))
    assert _weights(ctx) == {"api": {"4": 100}, "worker": {"6": 100}}
    rollback_cli.rollback(ctx, reason="worse")
    assert _weights(ctx) == {"api": {API_NEW: 100}, "worker": {WORKER_NEW: 100}}


def test_the_alarm_rollback_rolls_back_every_function(monkeypatch):
    ctx = release_context(config_env("dev"))
    _killed_mid_shift(monkeypatch, ctx)
    alarm = {"AlarmName": "svc-worker-errors-dev", "NewStateValue": "ALARM", "NewStateReason": "errors"}
    results = rollback_cli.from_alarm_event(
        json.dumps(alarm),
        "dev",
        environments_for=lambda _a: ["dev"],
        context_for=lambda _e: ctx,
        reporter=ctx.reporter,
    )
    assert results[0].trigger == "alarm"
    assert _weights(ctx) == {"api": {"1": 100}, "worker": {"3": 100}}


def _env(**extra):
    base = {
        "STAGEFLOW_SERVICE": "svc",
        "STAGEFLOW_ENVIRONMENT": "dev",
        "STAGEFLOW_FUNCTION_NAME": "svc-api-dev",
        "STAGEFLOW_ALIAS_NAME": "live",
        "STAGEFLOW_HISTORY_TABLE": "tbl",
        "STAGEFLOW_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
        "STAGEFLOW_ALARM_NAMES": '["svc-errors-dev"]',
    }
    return {**base, **extra}


def test_the_rollback_function_reads_every_function_and_falls_back_to_the_one():
    many = Settings.from_env(_env(STAGEFLOW_FUNCTIONS='{"api": "svc-api-dev", "worker": "svc-worker-dev"}'))
    rel = many.release(object())
    assert [(m.key, m.function, m.alias) for m in rel.members] == [
        ("api", "svc-api-dev", "live"),
        ("worker", "svc-worker-dev", "live"),
    ]
    one = Settings.from_env(_env()).release(object())
    assert one.single and one.first.function == "svc-api-dev"
    for bad in ("[1]", "{}", '{"api": ""}', "not json"):
        with pytest.raises(SettingsMissing):
            Settings.from_env(_env(STAGEFLOW_FUNCTIONS=bad))


def test_status_lists_every_function_with_its_alias_weights_and_history_the_release():
    ctx = release_context(config_env("dev"))
    canary.run_start(ctx, FakeArtifact("code-v2"))
    text, data = status(ctx)
    assert data["functions"] == [
        {"key": "api", "function": "svc-api-dev", "alias": "live", "weights": {API_NEW: 100}},
        {"key": "worker", "function": "svc-worker-dev", "alias": "live", "weights": {WORKER_NEW: 100}},
    ]
    assert (
        "api: svc-api-dev:live serves v2 100%" in text
        and "worker: svc-worker-dev:live serves v4 100%" in text
    )
    lines = history_lines(ctx.history.list(), [])
    assert "functions: api v1→v2, worker v3→v4" in "\n".join(lines)


def test_a_one_function_record_written_before_functions_existed_still_loads():
    old = {
        "deployment_id": "20260101T000000Z-abcdef",
        "environment": "dev",
        "service": "svc",
        "version": "2",
        "previous_version": "1",
        "status": "succeeded",
        "phase": "succeeded",
        "started_at": "2026-01-01T00:00:00Z",
        "who": "me",
        "state": {"phase": "succeeded", "step": 2, "weight": 100},
    }
    dep = Deployment.from_json(old)
    assert dep.functions == {} and release_label(dep) == "v2"

    class Router:
        function, alias = "svc-dev", "live"

    ((member, v),) = Release((Member("svc-dev", Router()),)).versions(dep)
    assert (v.from_version, v.to_version) == ("1", "2")
    assert Deployment.from_json(dep.to_json()) == dep


def test_rollback_while_monitoring_after_the_promotion_puts_every_function_back(monkeypatch):
    ctx = release_context(config_env("dev"))
    monkeypatch.setattr(canary, "_failpoint", lambda: lambda state: state.phase == "monitoring")
    canary.run_start(ctx, FakeArtifact("code-v2"))
    assert _weights(ctx) == {"api": {API_NEW: 100}, "worker": {WORKER_NEW: 100}}  # promoted, in flight
    assert ctx.history.in_flight() is not None
    rollback_cli.rollback(ctx, reason="alarm after promotion")
    assert _weights(ctx) == {"api": {"1": 100}, "worker": {"3": 100}}


def test_the_report_shows_the_release_and_its_functions_and_dora_counts_it_once():
    from stageflow.deployment_report.data import gather
    from stageflow.deployment_report.render import human, render_html
    from stageflow.dora.compute import changes

    ctx = release_context(config_env("dev"))
    canary.run_start(ctx, FakeArtifact("code-v2"))
    dep = ctx.history.list(1)[0]
    data = gather(ctx.history, dep, ctx.env.gates)
    assert "functions: api (svc-api-dev) v1 → v2, worker (svc-worker-dev) v3 → v4" in human(data)
    page = render_html(data, charts=False)
    assert "worker (svc-worker-dev) v3 → v4" in page and "worker: error_rate" in page
    deps, events = ctx.history.since(dep.started_at and canary.parse_iso(dep.started_at))
    found = changes(deps, events)
    assert [(c.deployment_id, c.functions) for c in found] == [(dep.deployment_id, ("api", "worker"))]


def test_the_history_item_keeps_every_function_of_the_release():
    from stageflow.history.dynamo import update_request
    from stageflow.history.items import deployment_from_item, deployment_item

    funcs = {
        "api": {"function": "svc-api-dev", "alias": "live", "from_version": "1", "to_version": "2"},
        "worker": {"function": "svc-worker-dev", "alias": "live", "from_version": "3", "to_version": "3"},
    }
    dep = Deployment("20260101T000000Z-abcdef", "dev", "svc", "2", "1", "in_progress", "pending", "t", "me")
    dep = dep.with_changes(functions=funcs)
    assert deployment_from_item(deployment_item("svc#dev", dep)).functions == funcs
    req = update_request("svc#dev", dep, {"functions": funcs}, None, None, "tok")
    assert "functions" in req["ExpressionAttributeNames"].values()
