"""The canary driver against the emulator: real alias routing, real history table, fake metrics."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest

from stageflow.clock import VirtualClock
from stageflow.deploy.driver import Driver
from stageflow.deploy.gates import GateReader
from stageflow.deploy.publish import publish
from stageflow.deploy.traffic import AliasTraffic
from stageflow.factory import Factory
from stageflow.history import Deployment, DynamoHistory, iso, new_deployment_id, parse_iso
from stageflow.metrics.interface import MetricResult, MetricSource, MinuteStats, Verdict, VersionSeries
from stageflow.notify import Notifiers
from stageflow.packaging.lambda_zip import package
from stageflow.report import Reporter
from tests.helpers.resources import make_service

pytestmark = pytest.mark.emulator


class ScriptedSource(MetricSource):
    name = "scripted"

    def series(self, function, alias, version, start, end):
        return VersionSeries(version, (MinuteStats(start, 100, 0, 50, 90, 120),), self.name)


class Recorder:
    name = "memory"

    def __init__(self):
        self.messages = []

    def send(self, msg):
        self.messages.append(msg)


def make(factory_dir, emulator_state, aws, decide):
    f = Factory(
        config_path=factory_dir / "stageflow.toml",
        local=True,
        state_dir=emulator_state,
        reporter=Reporter(quiet=True),
    )
    env = f.config.env("dev")
    out = make_service(f, "dev")
    lam = f.aws.client("lambda")
    pub = publish(lam, out.function_name, out.alias_name, package(factory_dir / "app"))
    history = DynamoHistory(f.aws.client("dynamodb"), out.history_table, f.config.service.name, "dev")
    clock = VirtualClock(datetime(2026, 1, 1, tzinfo=UTC))
    observer = boto3.client(
        "lambda",
        endpoint_url=aws.target.endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    seen = []

    def judge(canary, stable, gates, firing, *, window_complete, relative=None, **_kw):
        a = observer.get_alias(FunctionName=out.function_name, Name=out.alias_name)
        weights = (a.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        seen.append((a["FunctionVersion"], dict(weights)))
        judge.relatives.append(relative)
        decision, reasons = decide(len(seen), window_complete)
        result = MetricResult(
            "error_rate",
            "absolute",
            "fail" if decision == "rollback" else "pass",
            observed=0.2 if decision == "rollback" else 0.0,
            threshold=0.01,
            canary_count=canary.invocations,
            detail="; ".join(reasons),
        )
        return Verdict(decision, (result,), "scripted", tuple(reasons))

    judge.relatives = []

    rec = Recorder()
    reader = GateReader(ScriptedSource(), None, (), env.gates, out.function_name, out.alias_name, judge)
    driver = Driver(
        env=env,
        history=history,
        traffic=AliasTraffic(lam, out.function_name, out.alias_name),
        gates=reader,
        notifier=Notifiers([rec]),
        clock=clock,
        reporter=f.reporter,
        pre_traffic=f.function_check(out.function_name),  # the local runtime runs the published zip
    )
    dep_id = new_deployment_id(clock.now())
    history.acquire_lock(dep_id, "test", clock.now())
    dep = Deployment(
        deployment_id=dep_id,
        environment="dev",
        service=f.config.service.name,
        version=pub.version,
        previous_version=pub.previous_version,
        status="in_progress",
        phase="pending",
        started_at=iso(clock.now()),
        who="test",
    )
    history.create(dep)
    return driver, dep, history, seen, rec, pub


def test_alias_goes_10_50_100_and_history_has_every_transition(project, emulator_state, aws):
    driver, dep, history, seen, rec, pub = make(
        project, emulator_state, aws, lambda n, done: ("continue", ())
    )
    outcome = driver.run(dep)
    assert outcome.state.phase == "succeeded"
    canary = pub.version
    fractions = [w.get(canary) for _, w in seen if w]
    assert fractions[0] == pytest.approx(0.1) and fractions[-1] == pytest.approx(0.5)
    assert (canary, {}) in seen  # observed at 100 % during monitoring
    # dev policy: 5 + 5 min bake, 5 min monitoring, checked every minute
    assert len(seen) == 15
    # the relative checks get both versions since the canary started in the 50 % step only
    rels = driver.gates.judge.relatives
    passed = [(round(w.get(canary, 1.0), 2), rel is not None) for (_, w), rel in zip(seen, rels, strict=True)]
    assert {f for f, has in passed if has} == {0.5}
    assert {f for f, has in passed if not has} == {0.1, 1.0}
    first_step_start = parse_iso(outcome.state.canary_start)
    rel_c, rel_s = next(rel for rel in driver.gates.judge.relatives if rel is not None)
    assert rel_c.minutes[0].start == rel_s.minutes[0].start == first_step_start
    stored = history.get(dep.deployment_id)
    path = [t["to"] for t in stored.transitions]
    assert path == ["shifting", "baking", "shifting", "baking", "shifting", "monitoring", "succeeded"]
    assert [t["weight"] for t in stored.transitions[:6]] == [10, 10, 50, 50, 100, 100]
    assert stored.verdict_count == 15 and len(stored.verdicts) == 1 and stored.status == "succeeded"
    every = history.all_verdicts(dep.deployment_id)
    assert len(every) == 15 and [v["weight"] for v in every[:5]] == [10] * 5 and every[-1]["weight"] == 100
    assert history.recent_verdicts(dep.deployment_id, 3) == every[-3:]  # newest three, oldest first
    assert [msg.kind for msg in rec.messages] == ["started", "promoted", "succeeded"]


def test_gate_failure_at_10_percent_rolls_back_with_numbers(project, emulator_state, aws):
    driver, dep, history, seen, rec, pub = make(
        project,
        emulator_state,
        aws,
        lambda n, done: ("rollback", ("gate errors: 20.0% > 1.0% (fail)",)) if n == 2 else ("continue", ()),
    )
    outcome = driver.run(dep)
    assert outcome.state.phase == "rolled_back"
    alias = driver.traffic.state()
    assert alias.settled and alias.primary == pub.previous_version
    stored = history.get(dep.deployment_id)
    assert stored.status == "rolled_back" and "20.0% > 1.0%" in stored.state["reason"]
    assert stored.verdicts[-1]["decision"] == "rollback"
    assert rec.messages[-1].kind == "rolled_back" and "20.0% > 1.0%" in rec.messages[-1].data["reasons"][0]


def test_killed_run_resumes_from_recorded_state(project, emulator_state, aws):
    driver, dep, history, seen, rec, pub = make(
        project, emulator_state, aws, lambda n, done: ("continue", ())
    )
    calls = {"n": 0}

    def stop(state):
        calls["n"] += 1
        return calls["n"] == 3  # after the 3rd recorded state: shifting to 50 %, not yet applied

    driver.stop_after = stop
    outcome = driver.run(dep)
    assert outcome.state.phase == "shifting" and outcome.state.weight == 50
    stored = history.get(dep.deployment_id)
    assert stored.phase == "shifting"
    assert driver.traffic.state().weights == {pub.previous_version: 90, pub.version: 10}  # not yet moved
    driver.stop_after = None
    final = driver.run(stored)
    assert final.state.phase == "succeeded"
    assert driver.traffic.state().weights == {pub.version: 100}
    assert [t["to"] for t in history.get(dep.deployment_id).transitions][-1] == "succeeded"


def test_lock_second_deploy_fails_fast(project, emulator_state, aws):
    from stageflow.errors import ExitCode, LockedError

    driver, dep, history, *_ = make(project, emulator_state, aws, lambda n, done: ("continue", ()))
    with pytest.raises(LockedError) as exc:
        history.acquire_lock("other", "someone", datetime.now(UTC))
    assert exc.value.exit_code == ExitCode.LOCKED and dep.deployment_id in exc.value.one_line()
    assert history.get(dep.deployment_id).state.phase == "pending"


def test_on_call_rollback_during_a_bake_stops_the_run(project, emulator_state, aws):
    from stageflow.rollback.cli import rollback

    state = {}

    def decide(n, done):
        if n == 3:  # on-call rolls back from another process while this run is baking at 10 %
            f2 = Factory(
                config_path=project / "stageflow.toml",
                local=True,
                state_dir=emulator_state,
                reporter=Reporter(quiet=True),
            )
            state["rb"] = rollback(f2.environment("dev"), reason="pager says no")
        return "continue", ()

    driver, dep, history, seen, rec, pub = make(project, emulator_state, aws, decide)
    outcome = driver.run(dep)
    assert outcome.state.phase == "rolled_back" and "pager says no" in outcome.state.reason
    assert state["rb"].changed and state["rb"].deployment_id == dep.deployment_id
    assert driver.traffic.state().weights == {pub.previous_version: 100}  # never moved forward again
    assert history.lock() is None
