"""The rollback core on in-memory fakes: target choice, restore, verification, record, notices."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stageflow.deploy import machine as m
from stageflow.deploy.records import Deployment, State
from stageflow.deploy.traffic import AliasState
from stageflow.errors import EnvironmentFailure, ExitCode, RollbackFailed, UsageError
from stageflow.rollback import core

NOW = datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)
SRC = Path(__file__).resolve().parents[2] / "src" / "stageflow"


@dataclass
class FakeTraffic:
    primary: str
    extra: dict = field(default_factory=dict)
    versions: set = field(default_factory=lambda: {"1", "2", "3"})
    fail_restore: bool = False
    ignore_restore: bool = False
    restored: list = field(default_factory=list)
    function: str = "fn"
    alias: str = "live"

    def state(self):
        return AliasState(self.primary, dict(self.extra))

    def version_exists(self, v):
        return v in self.versions

    def require_version(self, v):
        if v not in self.versions:
            raise UsageError(f"version {v!r} of fn does not exist")

    def restore(self, v):
        self.restored.append(v)
        if self.fail_restore:
            raise EnvironmentFailure("lambda fn:live: ResourceNotFoundException: no such version")
        if not self.ignore_restore:
            self.primary, self.extra = v, {}
        return self.state()


@dataclass
class FakeHistory:
    deployments: list = field(default_factory=list)  # newest first
    evts: list = field(default_factory=list)  # newest first
    released: list = field(default_factory=list)
    incidents: list = field(default_factory=list)

    def in_flight(self):
        return next((d for d in self.deployments if d.status in ("in_progress", "awaiting_approval")), None)

    def last_known_good(self, exclude_version=None):
        return next(
            (
                d
                for d in self.deployments
                if d.status == "succeeded" and d.version != exclude_version and not d.extra.get("marked_bad")
            ),
            None,
        )

    def events(self, limit=50):
        return self.evts[:limit]

    def list(self, limit=20):
        return self.deployments[:limit]

    def get(self, dep_id):
        return next((d for d in self.deployments if d.deployment_id == dep_id), None)

    def update(self, dep, **changes):
        new = dep.with_changes(**changes)
        self.deployments = [new if d.deployment_id == dep.deployment_id else d for d in self.deployments]
        return new

    def release_lock(self, dep_id):
        self.released.append(dep_id)
        return True

    def record_event(self, kind, now, data):
        self.evts.insert(0, {"kind": kind, "at": now.isoformat(), **data})

    def record_incident(self, incident):
        self.incidents.append(incident)


class FakeNotifier:
    def __init__(self):
        self.sent = []

    def send(self, msg):
        self.sent.append(msg)


class Quiet:
    def info(self, *a):
        pass

    def warn(self, *a):
        pass


def dep(dep_id, version, status, previous=None, phase=None):
    return Deployment(
        deployment_id=dep_id,
        environment="dev",
        service="svc",
        version=version,
        previous_version=previous,
        status=status,
        phase=phase or status,
        started_at="2026-11-22T00:00:00.000000Z",
        who="t",
        state=State.from_json({"phase": phase or status, "step": 1, "weight": 10}),
    )


def run(history, traffic, **kw):
    notifier = FakeNotifier()
    req = core.RollbackRequest("dev", "svc", **kw)
    res = core.rollback(
        req,
        history=history,
        traffic=traffic,
        notifier=notifier,
        reporter=Quiet(),
        now=NOW,
        sleep=lambda s: None,
    )
    return res, notifier


def test_in_flight_canary_goes_back_to_its_previous_version_and_is_closed():
    flight = dep("d2", "3", "in_progress", previous="2", phase="baking")
    history = FakeHistory([flight, dep("d1", "2", "succeeded")])
    traffic = FakeTraffic("2", {"3": 0.1})
    res, notifier = run(history, traffic, trigger="alarm", reason="alarm x", who="alarm:x")
    assert res.changed and res.to_version == "2" and res.deployment_id == "d2"
    assert traffic.state().weights == {"2": 100}
    flight = history.deployments[0]
    assert flight.status == "rolled_back" and flight.state.phase == "rolled_back"
    # the machine's State itself (every field, errors and fault included), phase rolled_back
    assert isinstance(flight.state, m.State)
    assert (
        {"phase", "step", "weight", "reason"}
        <= set(flight.state.to_json())
        <= set(m.State.__dataclass_fields__)
    )
    assert m.State.from_json(flight.state.to_json()).phase == "rolled_back"
    assert flight.state.terminal and history.released == ["d2"]
    assert flight.transitions[-1].to_phase == "rolled_back" and flight.transitions[-1].from_phase == "baking"
    assert history.evts[0]["kind"] == "rollback" and history.evts[0]["trigger"] == "alarm"
    # every rollback that moved traffic opens an incident, linked in its notification
    assert [msg.kind for msg in notifier.sent] == ["rolled_back", "incident"]
    (inc,) = history.incidents
    assert inc["key"] == "d2" and inc["trigger"] == "alarm" and inc["restored_version"] == "2"
    assert "--postmortem d2" in notifier.sent[1].text


def test_a_run_killed_before_publishing_was_recorded_stays_on_what_serves_and_is_closed():
    """A deployment in flight with no recorded previous version never moved traffic: rolling it back
    keeps what serves (not an older last known good) and closes it."""
    flight = dep("d3", "", "in_progress", previous=None, phase="pending")
    history = FakeHistory([flight, dep("d2", "2", "succeeded"), dep("d1", "1", "succeeded")])
    traffic = FakeTraffic("2")
    res, _ = run(history, traffic, reason="killed while publishing")
    assert res.to_version == "2" and not res.changed and traffic.restored == []
    assert history.deployments[0].status == "rolled_back" and history.released == ["d3"]


def test_without_a_deployment_in_flight_it_goes_to_the_last_known_good():
    history = FakeHistory([dep("d2", "3", "succeeded"), dep("d1", "2", "succeeded")])
    res, _ = run(history, FakeTraffic("3"))
    assert res.changed and res.to_version == "2"


def test_a_second_alarm_after_a_rollback_changes_nothing():
    history = FakeHistory([dep("d2", "3", "succeeded"), dep("d1", "2", "succeeded")])
    traffic = FakeTraffic("3")
    run(history, traffic, trigger="alarm")
    res, notifier = run(history, traffic, trigger="alarm")
    assert not res.changed and res.to_version == "2" and notifier.sent == []
    assert traffic.restored == ["2"]


def test_to_a_version_that_does_not_exist_is_a_usage_error_and_no_notice_when_manual():
    history = FakeHistory([dep("d1", "2", "succeeded")])
    traffic = FakeTraffic("3")
    notifier = FakeNotifier()
    req = core.RollbackRequest("dev", "svc", to="99")
    with pytest.raises(UsageError):
        core.rollback(req, history=history, traffic=traffic, notifier=notifier, reporter=Quiet(), now=NOW)
    assert traffic.restored == [] and notifier.sent == []


def test_a_vanished_good_version_fails_before_any_change_and_pages():
    history = FakeHistory([dep("d2", "3", "succeeded"), dep("d1", "7", "succeeded")])
    traffic = FakeTraffic("3")
    notifier = FakeNotifier()
    req = core.RollbackRequest("dev", "svc", trigger="alarm", reason="alarm x")
    with pytest.raises(RollbackFailed) as err:
        core.rollback(req, history=history, traffic=traffic, notifier=notifier, reporter=Quiet(), now=NOW)
    assert err.value.exit_code == ExitCode.ROLLBACK_FAILED and traffic.restored == []
    assert [msg.kind for msg in notifier.sent] == ["rollback_failed"]
    assert "automatic rollback FAILED — page a person" in notifier.sent[0].text
    assert history.evts == []


def test_a_failed_restore_pages_even_when_manual():
    history = FakeHistory([dep("d2", "3", "succeeded"), dep("d1", "2", "succeeded")])
    traffic = FakeTraffic("3", fail_restore=True)
    notifier = FakeNotifier()
    with pytest.raises(RollbackFailed):
        core.rollback(
            core.RollbackRequest("dev", "svc"),
            history=history,
            traffic=traffic,
            notifier=notifier,
            reporter=Quiet(),
            now=NOW,
            sleep=lambda s: None,
        )
    assert notifier.sent[0].kind == "rollback_failed" and "rollback FAILED" in notifier.sent[0].text


def test_an_alias_that_does_not_move_is_a_failed_rollback():
    history = FakeHistory([dep("d2", "3", "succeeded"), dep("d1", "2", "succeeded")])
    with pytest.raises(RollbackFailed, match="alias shows"):
        run(history, FakeTraffic("3", ignore_restore=True))


def test_an_alarm_without_good_versions_pages():
    notifier = FakeNotifier()
    with pytest.raises(UsageError, match="no last known good"):
        core.rollback(
            core.RollbackRequest("dev", "svc", trigger="alarm"),
            history=FakeHistory([dep("d1", "1", "succeeded")]),
            traffic=FakeTraffic("1"),
            notifier=notifier,
            reporter=Quiet(),
            now=NOW,
            sleep=lambda s: None,
        )
    assert notifier.sent and notifier.sent[0].kind == "rollback_failed"


def _stageflow_imports(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stageflow"):
            mods.add(node.module)
            mods.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            mods.update(a.name for a in node.names if a.name.startswith("stageflow"))
    return mods


def _third_party_imports(path: Path) -> set[str]:
    import sys

    tops = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            tops.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            tops.update(a.name.split(".")[0] for a in node.names)
    return {t for t in tops if t not in sys.stdlib_module_names and t not in ("stageflow", "__future__")}


def test_the_rollback_zip_modules_are_closed_under_import_and_need_only_boto3():
    """Every stageflow module the handler imports (also inside functions) is in the zip, and nothing
    but the standard library and boto3/botocore is imported."""
    from stageflow.packaging.lambda_zip import ROLLBACK_MODULES

    listed = {
        ("stageflow/" + rel).removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for rel in ROLLBACK_MODULES
    }
    assert "stageflow" in listed and "stageflow.deploy.traffic" in listed
    for rel in ROLLBACK_MODULES:
        path = SRC / rel
        for imp in _stageflow_imports(path):
            # "from stageflow import rollback_core" names a module; "from x import name" names an attribute
            assert imp in listed or imp.rpartition(".")[0] in listed, f"{rel} imports {imp}"
        assert _third_party_imports(path) <= {"boto3", "botocore"}, rel


LAMBDA_ENV = {
    "STAGEFLOW_SERVICE": "svc",
    "STAGEFLOW_ENVIRONMENT": "dev",
    "STAGEFLOW_FUNCTION_NAME": "svc-dev",
    "STAGEFLOW_ALIAS_NAME": "live",
    "STAGEFLOW_HISTORY_TABLE": "svc-deployments-dev",
    "STAGEFLOW_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:svc-alerts-dev",
    "STAGEFLOW_ROLLBACK_ALARM": "svc-rollback-errors-dev",
    "STAGEFLOW_ALARM_NAMES": '["svc-errors-dev", "svc-error-rate-dev"]',
}


def test_the_function_names_every_missing_variable():
    from stageflow.rollback.handler import Settings, SettingsMissing

    with pytest.raises(SettingsMissing, match="STAGEFLOW_HISTORY_TABLE, STAGEFLOW_TOPIC_ARN"):
        Settings.from_env({k: v for k, v in LAMBDA_ENV.items() if "HISTORY" not in k and "TOPIC" not in k})
    assert Settings.from_env(LAMBDA_ENV).own_alarm == "svc-rollback-errors-dev"


@pytest.mark.parametrize(
    ("alarm", "state"), [("svc-errors-dev", "OK"), ("svc-rollback-errors-dev", "ALARM")], ids=["ok", "own"]
)
def test_the_function_ignores_ok_and_its_own_alarm_without_calling_aws(monkeypatch, capsys, alarm, state):
    import json

    from stageflow.rollback import handler as rollback_lambda

    for k, v in LAMBDA_ENV.items():
        monkeypatch.setenv(k, v)

    def no_clients():
        raise AssertionError("no AWS call expected")

    class Unused:
        def __getattr__(self, name):
            no_clients()

    monkeypatch.setattr(rollback_lambda, "_clients", lambda: (Unused(), Unused(), Unused(), Unused()))
    event = {"Records": [{"Sns": {"Message": json.dumps({"AlarmName": alarm, "NewStateValue": state})}}]}
    assert rollback_lambda.handler(event)["rolled_back"] == []
    assert "nothing to do" in capsys.readouterr().out


def test_after_a_rollback_the_restored_version_is_last_known_good_and_the_bad_one_is_marked():
    history = FakeHistory([dep("d3", "3", "succeeded", previous="2"), dep("d2", "2", "succeeded")])
    traffic = FakeTraffic("3")
    res, notifier = run(history, traffic, trigger="manual", reason="bad release", who="oncall")
    assert res.changed and res.to_version == "2" and traffic.state().weights == {"2": 100}
    d3 = history.get("d3")
    assert d3.extra["marked_bad"]["reason"] == "bad release" and d3.extra["marked_bad"]["to"] == "2"
    assert history.last_known_good().version == "2"  # no longer the rolled-back v3
    (inc,) = history.incidents
    assert inc["bad_version"] == "3" and inc["restored_version"] == "2" and inc["trigger"] == "manual"
    again, _ = run(history, traffic, trigger="manual", reason="twice", who="oncall")
    assert not again.changed and again.to_version == "2" and len(history.incidents) == 1


def test_a_fresh_environment_whose_only_version_serves_says_so_and_changes_nothing():
    history, traffic = FakeHistory([]), FakeTraffic("1")
    res, notifier = run(history, traffic, trigger="manual", reason="r", who="oncall")
    assert not res.changed and res.to_version == "1" and traffic.restored == []
    assert notifier.sent == [] and history.evts == [] and history.incidents == []


def test_with_only_the_serving_deployment_recorded_its_previous_version_is_the_target():
    history, traffic = FakeHistory([dep("d2", "2", "succeeded", previous="1")]), FakeTraffic("2")
    res, _ = run(history, traffic, trigger="manual", reason="r", who="oncall")
    assert res.changed and res.to_version == "1" and traffic.state().weights == {"1": 100}
