"""The driver under failing AWS calls, with in-memory fakes at its seams (history, alias, gates).

A failed metric read is "no data" for that look (the weight holds); more than the configured limit in
a row rolls back with the reason recorded. A rollback that keeps failing ends ``failed`` (exit 5) and
pages a person with every attempt it made.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from stageflow.clock import VirtualClock
from stageflow.config import parse
from stageflow.deploy import machine as m
from stageflow.deploy.driver import Driver
from stageflow.deploy.records import Deployment
from stageflow.deploy.traffic import AliasState
from stageflow.errors import AwsError, ConfigError
from stageflow.metrics.interface import Verdict
from stageflow.notify import Notifiers
from stageflow.report import Reporter
from tests.fakes import FakeCheck


class InMemoryHistory:
    def __init__(self):
        self.records: dict[str, Deployment] = {}

    def create(self, dep: Deployment) -> None:
        self.records[dep.deployment_id] = dep

    def get(self, deployment_id: str) -> Deployment | None:
        return self.records.get(deployment_id)

    def update(self, dep: Deployment, **changes) -> Deployment:
        new = dep.with_changes(keep_verdicts=10_000, **changes)  # every verdict kept on the record
        self.records[dep.deployment_id] = new
        return new


class FakeAlias:
    function = "svc-dev"
    alias = "live"

    def __init__(self, primary: str, restore_failures: int = 0):
        self.now = AliasState(primary, {})
        self.restore_failures = restore_failures
        self.restore_calls = 0

    def state(self) -> AliasState:
        return self.now

    def set_canary(self, stable, canary, weight):
        self.now = AliasState(canary, {}) if weight >= 100 else AliasState(stable, {canary: weight / 100})
        return self.now

    def restore(self, version):
        self.restore_calls += 1
        if self.restore_calls <= self.restore_failures:
            raise ClientError(
                {
                    "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                    "ResponseMetadata": {"RetryAttempts": 4},
                },
                "UpdateAlias",
            )
        self.now = AliasState(version, {})
        return self.now


class ScriptedGates:
    """Each look: an exception to raise, or a decision."""

    def __init__(self, script):
        self.script = list(script)
        self.looks = 0

    def check(self, canary, stable, start, now, *, window_complete, canary_start=None, weight=None):
        self.looks += 1
        item = self.script.pop(0) if self.script else "continue"
        if isinstance(item, BaseException):
            raise item
        return Verdict(item, (), "scripted", (f"scripted {item}",)), None, None


class Recorder:
    name = "memory"

    def __init__(self):
        self.messages = []

    def send(self, msg):
        self.messages.append(msg)


def _env(**canary):
    data = {
        "service": {"name": "svc"},
        "environments": {
            "dev": {
                "canary": {
                    "steps": [{"weight": 10, "bake_minutes": 3}, {"weight": 100}],
                    "post_promotion_minutes": 2,
                    **canary,
                }
            }
        },
    }
    return parse(data, Path("stageflow.toml"), Path(".")).env("dev")


def _run(script, *, restore_failures=0, **canary):
    env = _env(**canary)
    history = InMemoryHistory()
    alias = FakeAlias("1", restore_failures)
    gates = ScriptedGates(script)
    rec = Recorder()
    clock = VirtualClock(datetime(2026, 1, 1, tzinfo=UTC))
    driver = Driver(
        env=env,
        history=history,
        traffic=alias,
        gates=gates,
        notifier=Notifiers([rec]),
        clock=clock,
        reporter=Reporter(quiet=True),
        pre_traffic=FakeCheck(),
    )
    dep = Deployment(
        "d1", "dev", "svc", "2", "1", "in_progress", "pending", "2026-01-01T00:00:00.000000Z", "t"
    )
    history.create(dep)
    outcome = driver.run(dep)
    return outcome, history.get("d1"), alias, gates, rec


THROTTLED = ClientError(
    {
        "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
        "ResponseMetadata": {"RetryAttempts": 4},
    },
    "GetMetricData",
)
TIMEOUT = ReadTimeoutError(endpoint_url="http://127.0.0.1:1/")
OURS = AwsError("CloudWatch GetMetricData: ServiceUnavailable", code="ServiceUnavailable")


def test_a_few_failed_reads_hold_the_weight_then_the_canary_goes_on():
    outcome, rec_dep, alias, gates, _ = _run([THROTTLED, TIMEOUT, OURS, "continue", "continue", "continue"])
    assert outcome.state.phase == "succeeded" and outcome.state.errors == 0
    reasons = [t["reason"] for t in rec_dep.transitions]
    assert any("metric read failed (1/4)" in r and "ThrottlingException" in r for r in reasons)
    assert any("metric read failed (3/4)" in r for r in reasons)
    assert alias.now == AliasState("2", {})


def test_a_good_read_mid_window_resets_the_count():
    outcome, dep, *_ = _run([THROTTLED, "continue", THROTTLED, "continue"], consecutive_error_limit=1)
    assert outcome.state.phase == "succeeded"  # never two failures in a row
    assert any("metrics readable again after 1 failed reads" in t["reason"] for t in dep.transitions)


def test_more_failed_reads_than_the_limit_roll_back_with_the_reason():
    outcome, dep, alias, gates, rec = _run([THROTTLED] * 10, consecutive_error_limit=2)
    assert outcome.state.phase == "rolled_back"
    assert gates.looks == 3  # 2 tolerated, the 3rd is one too many
    assert "3 failed reads in a row > consecutive_error_limit (2)" in dep.state["reason"] or any(
        "consecutive_error_limit (2)" in t["reason"] for t in dep.transitions
    )
    assert alias.now == AliasState("1", {})  # all traffic on the stable version
    assert [msg.kind for msg in rec.messages][-1] == "rolled_back"


def test_failed_reads_wait_a_whole_interval_even_after_the_window():
    # the window ends after 3 min; reads fail from then on; each retry waits 60 s on the clock
    outcome, dep, *_ = _run(["continue", "continue", THROTTLED, THROTTLED, "continue"])
    holds = [t for t in dep.transitions if "metric read failed" in t["reason"]]
    assert [t["at"][11:16] for t in holds] == ["00:03", "00:04"]
    assert outcome.state.phase == "succeeded"


def test_a_limit_of_zero_rolls_back_on_the_first_failed_read():
    outcome, *_ = _run([OURS], consecutive_error_limit=0)
    assert outcome.state.phase == "rolled_back"


def test_a_bug_in_the_judge_is_not_swallowed():
    with pytest.raises(ZeroDivisionError):
        _run([ZeroDivisionError("bug")])


def test_a_rollback_that_fails_once_is_retried_and_succeeds():
    outcome, dep, alias, _, rec = _run(["rollback"], restore_failures=1)
    assert outcome.state.phase == "rolled_back" and alias.restore_calls == 2
    assert alias.now == AliasState("1", {})


def test_a_rollback_that_keeps_failing_pages_a_person_with_what_was_tried():
    outcome, dep, alias, _, rec = _run(["rollback"], restore_failures=99)
    assert outcome.state.phase == "failed" and alias.restore_calls == 3
    page = rec.messages[-1]
    assert page.kind == "rollback_failed"
    assert page.text.startswith("rollback FAILED — page a person")
    assert page.data["page"] is True
    assert len(page.data["tried"]) == 3
    assert all(
        "restore alias live of svc-dev to v1" in t and "ThrottlingException" in t for t in page.data["tried"]
    )
    assert "after 3 attempts" in dep.state["reason"] and "alias now:" in dep.state["reason"]
    assert dep.status == "failed"


def test_the_consecutive_error_limit_is_validated():
    with pytest.raises(ConfigError, match="consecutive_error_limit: must be at least 0"):
        _env(consecutive_error_limit=-1)
    assert _env().canary.consecutive_error_limit == 4


def test_observation_failed_outside_a_bake_is_invalid():
    from stageflow.config import Approvals

    with pytest.raises(m.InvalidTransition):
        m.transition(
            m.State(), m.ObservationFailed(datetime(2026, 1, 1, tzinfo=UTC), "x"), _env().canary, Approvals()
        )
