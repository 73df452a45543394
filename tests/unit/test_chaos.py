"""The chaos stage's pure parts: the experiments file, the local fault hooks, the feed's percentiles,
the FIS runner's judgement (a fake FIS client at the seam), and what an outcome says."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime

import pytest

from stageflow.chaos.feed import percentile, report_duration
from stageflow.chaos.model import BUILTIN_FILE, load_plan, parse_plan
from stageflow.chaos.run import FisChaos, Outcome
from stageflow.errors import ConfigError, EnvironmentFailure, ExitCode
from stageflow.local import faults

GOOD = {
    "suites": {"basic": ["e"]},
    "environments": {"staging": "basic"},
    "experiments": {"e": {"fault": "error", "expect": "rollback", "percent": 50}},
}


def test_the_built_in_suites_name_the_designs_faults():
    plan = load_plan(BUILTIN_FILE.parent, BUILTIN_FILE)
    basic = plan.select("staging", None, None)
    full = plan.select("staging", "full", None)
    assert {e.fault for e in basic} == {"error", "latency"}
    assert {e.fault for e in full} == {"error", "latency", "timeout", "dependency_throttle"}
    assert {e.expect for e in full} == {"rollback", "within_gates"}


def test_a_repository_file_replaces_the_built_in_one(tmp_path):
    (tmp_path / "chaos").mkdir()
    (tmp_path / "chaos" / "experiments.toml").write_text(
        '[experiments.mine]\nfault = "latency"\nlatency_ms = 50\nexpect = "within_gates"\n'
    )
    plan = load_plan(tmp_path)
    assert list(plan.experiments) == ["mine"]
    assert plan.select("dev", None, "mine")[0].latency_ms == 50


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"fault": "meteor"}, "experiments.e.fault"),
        ({"expect": "maybe"}, "experiments.e.expect"),
        ({"percent": float("nan")}, "experiments.e.percent"),
        ({"percent": 0}, "experiments.e.percent"),
        ({"percent": 101}, "experiments.e.percent"),
        ({"latency_ms": float("inf")}, "experiments.e.latency_ms"),
        ({"invocations_per_minute": 100000}, "experiments.e.invocations_per_minute"),
        ({"duration_minutes": True}, "experiments.e.duration_minutes"),
        ({"target": "everyone"}, "experiments.e.target"),
        ({"colour": "red"}, "experiments.e.colour"),
        ({"fault": "latency"}, "experiments.e.latency_ms"),  # a latency fault with no latency
    ],
)
def test_a_bad_experiment_is_a_usage_error_naming_the_key(change, key):
    data = json.loads(json.dumps(GOOD))
    data["experiments"]["e"].update(change)
    with pytest.raises(ConfigError) as err:
        parse_plan(data, "chaos/experiments.toml")
    assert f": {key}:" in err.value.message
    assert err.value.exit_code == ExitCode.USAGE


def test_suites_and_environments_must_name_what_exists():
    with pytest.raises(ConfigError, match="suites.basic: names no experiment 'x'"):
        parse_plan({**GOOD, "suites": {"basic": ["x"]}}, "f")
    with pytest.raises(ConfigError, match="environments.staging: names no suite 'nope'"):
        parse_plan({**GOOD, "environments": {"staging": "nope"}}, "f")
    plan = parse_plan(GOOD, "f")
    with pytest.raises(ConfigError, match="no chaos suite for environment 'dev'"):
        plan.select("dev", None, None)
    with pytest.raises(ConfigError, match="no experiment named 'z'"):
        plan.select("staging", None, "z")


# -- the local runtime's fault hooks -------------------------------------------------------------------
def test_a_fault_hits_only_its_function_version_and_its_share_of_invocations():
    draws = iter([0.1, 0.9])
    reg = faults.FaultRegistry(now=lambda: 100.0, draw=lambda: next(draws))
    reg.put(faults.Fault.from_json({"function": "f", "version": "3", "kind": "error", "percent": 50}, 100.0))
    assert reg.fault_for("f", "2") is None  # the stable version is untouched (no draw taken)
    assert reg.fault_for("f", "3").kind == "error"  # draw 0.1 < 50 %
    assert reg.fault_for("f", "3") is None  # draw 0.9 >= 50 %


def test_faults_expire_on_their_own_and_clear_by_version():
    now = [100.0]
    reg = faults.FaultRegistry(now=lambda: now[0], draw=lambda: 0.0)
    reg.put(faults.Fault.from_json({"function": "f", "version": "3", "kind": "error", "expires_s": 5}, 100.0))
    reg.put(faults.Fault.from_json({"function": "f", "version": "4", "kind": "error"}, 100.0))
    assert reg.clear("f", "4") == 1
    now[0] = 106.0
    assert reg.active() == []  # a killed chaos run leaves nothing behind past expires_s


@pytest.mark.parametrize(
    "body",
    [
        {"function": "f", "version": "1", "kind": "fire"},
        {"function": "f", "version": "1", "kind": "latency", "latency_ms": float("nan")},
        {"function": "f", "version": "1", "kind": "latency", "latency_ms": 10**9},
        {"function": "f", "version": "1", "kind": "error", "percent": "all"},
        {"function": "", "version": "1", "kind": "error"},
    ],
)
def test_the_control_endpoint_refuses_bad_faults_and_changes_nothing(body):
    reg = faults.FaultRegistry()
    app = faults.control_app(lambda e, s: [b"moto"], reg)
    data = json.dumps(body).encode()
    seen = {}
    out = app(
        {"PATH_INFO": faults.CONTROL_PATH, "REQUEST_METHOD": "PUT", "CONTENT_LENGTH": str(len(data)),
         "wsgi.input": io.BytesIO(data)},
        lambda status, headers: seen.update(status=status),
    )  # fmt: skip
    assert seen["status"].startswith("400"), out
    assert reg.active() == []


def test_other_paths_go_to_the_emulator():
    app = faults.control_app(lambda e, s: [b"moto"], faults.FaultRegistry())
    assert app({"PATH_INFO": "/2015-03-31/functions"}, lambda *a: None) == [b"moto"]


def test_an_error_fault_does_not_run_the_handler_and_latency_adds_to_the_duration(monkeypatch):
    slept = []
    monkeypatch.setattr(faults.time, "sleep", slept.append)
    ran = []

    def call():
        ran.append(1)
        return {"payload": "{}"}, 5.0

    err = faults.Fault("f", "3", "error")
    answer, _ms = faults.run_with_fault(err, 3.0, call)
    assert answer["error"]["errorType"] == faults.INJECTED_ERROR and not ran
    slow = faults.Fault("f", "3", "latency", latency_ms=200)
    answer, ms = faults.run_with_fault(slow, 3.0, call)
    assert answer == {"payload": "{}"} and ms == pytest.approx(205.0) and slept == [0.2]
    too_slow = faults.Fault("f", "3", "latency", latency_ms=5000)
    answer, ms = faults.run_with_fault(too_slow, 3.0, call)
    assert answer["error"]["errorType"] == "Sandbox.Timedout" and ms == 3000.0
    answer, _ = faults.run_with_fault(faults.Fault("f", "3", "timeout"), 3.0, call)
    assert answer["error"]["errorType"] == "Sandbox.Timedout"


def test_the_metric_time_travels_in_the_client_context():
    at = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
    headers = {"X-Amz-Client-Context": faults.client_context(at)}
    assert faults.metric_time(headers) == datetime(2026, 12, 1, 10, 5)  # naive UTC, as moto keeps them
    assert faults.metric_time({}) is None
    bad = base64.b64encode(b'{"custom": {"stageflow-metric-time": "soon"}}').decode()
    assert faults.metric_time({"x-amz-client-context": bad}) is None


def test_the_feed_reads_durations_from_the_report_line_and_takes_nearest_rank_percentiles():
    tail = "handled\n" + faults.report_line("abc", 12.345, 256)
    assert report_duration(tail) == pytest.approx(12.35)
    assert report_duration("no report") is None
    values = list(range(1, 21))  # 20 invocations
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (10, 19, 20)


# -- AWS: FIS, and what an outcome says ----------------------------------------------------------------
class FakeFis:
    def __init__(self, states, tags=None):
        self.states = list(states)
        self.started = []
        self.tags = tags or {"stageflow:experiment": "canary-errors", "stageflow:environment": "staging",
                             "stageflow:service": "svc"}  # fmt: skip

    def list_experiment_templates(self, **_kw):
        return {"experimentTemplates": [{"id": "EXT1", "tags": self.tags}]}

    def start_experiment(self, **kw):
        self.started.append(kw)
        return {"experiment": {"id": "EXP1"}}

    def get_experiment(self, id):  # noqa: A002 - boto3's keyword
        return {"experiment": {"state": self.states.pop(0)}}

    def stop_experiment(self, id):  # noqa: A002
        pass


def _exp(expect="rollback"):
    plan = load_plan(BUILTIN_FILE.parent, BUILTIN_FILE)
    e = plan.experiments["canary-errors"]
    return e if e.expect == expect else e.__class__(**{**e.__dict__, "expect": expect})


def test_fis_stopped_by_an_alarm_is_a_rollback_and_completion_stays_within_the_gates():
    fis = FakeFis(
        [{"status": "running"}, {"status": "stopped", "reason": "Experiment halted by stop condition"}]
    )
    out = FisChaos(fis, "svc", "staging", sleep=lambda s: None).run(_exp())
    assert fis.started[0]["experimentTemplateId"] == "EXT1"
    assert out.happened == "rollback" and out.ok
    out = FisChaos(FakeFis([{"status": "completed"}]), "svc", "staging", sleep=lambda s: None).run(_exp())
    assert out.happened == "within_gates" and not out.ok
    assert out.line().startswith("canary-errors: FAILED: expected rollback, happened within gates")


def test_no_template_for_the_experiment_is_an_environment_failure():
    fis = FakeFis([], tags={"stageflow:experiment": "other"})
    with pytest.raises(EnvironmentFailure, match="no FIS experiment template for 'canary-errors' in staging"):
        FisChaos(fis, "svc", "staging").run(_exp())


def test_an_experiment_not_run_here_is_said_so_and_does_not_fail_the_stage():
    out = Outcome("dependency-throttling", "dependency_throttle", "rollback", "not_run", "FIS runs it on AWS")
    assert out.ok and "not run" in out.line() and "FAILED" not in out.line()


def test_too_little_traffic_for_the_first_step_is_said_before_the_canary_runs():
    from stageflow.chaos.run import too_little_traffic
    from stageflow.config import load

    cfg = load(BUILTIN_FILE.parents[3] / "stageflow.toml")
    exp = load_plan(BUILTIN_FILE.parent, BUILTIN_FILE).experiments["canary-errors"]
    assert too_little_traffic(cfg.env("staging"), exp) == ""  # 60/min at 10 % for 10 min: 60 >= 50
    thin = exp.__class__(**{**exp.__dict__, "invocations_per_minute": 20})
    assert "about 20 canary invocations, the gates need 50" in too_little_traffic(cfg.env("staging"), thin)


def test_fis_chaos_on_botocores_stubber_pages_templates_by_tag_and_reads_a_stop_condition():
    """The real client's shapes: ListExperimentTemplates paged by nextToken (a template of another
    environment skipped), StartExperiment with the template id and a tag, GetExperiment until it ends."""
    import boto3
    from botocore.stub import Stubber

    fis = boto3.client(
        "fis", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    tags = {
        "stageflow:service": "svc",
        "stageflow:environment": "staging",
        "stageflow:experiment": "canary-errors",
    }
    with Stubber(fis) as stub:
        stub.add_response(
            "list_experiment_templates",
            {
                "experimentTemplates": [{"id": "EXTdev", "tags": {**tags, "stageflow:environment": "dev"}}],
                "nextToken": "p2",
            },
            {},
        )
        stub.add_response(
            "list_experiment_templates",
            {"experimentTemplates": [{"id": "EXTstg", "tags": tags}]},
            {"nextToken": "p2"},
        )
        stub.add_response(
            "start_experiment",
            {"experiment": {"id": "EXP9"}},
            {"experimentTemplateId": "EXTstg", "tags": {"stageflow:chaos": "canary-errors"}},
        )
        stub.add_response(
            "get_experiment", {"experiment": {"id": "EXP9", "state": {"status": "running"}}}, {"id": "EXP9"}
        )
        stub.add_response(
            "get_experiment",
            {
                "experiment": {
                    "id": "EXP9",
                    "state": {"status": "stopped", "reason": "Experiment stopped by stop condition"},
                }
            },
            {"id": "EXP9"},
        )
        out = FisChaos(fis, "svc", "staging", sleep=lambda s: None).run(_exp())
        stub.assert_no_pending_responses()
    assert out.happened == "rollback" and out.ok and "FIS EXP9 stopped" in out.detail
