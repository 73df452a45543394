"""The chaos stage on the emulator, end to end: `stageflow chaos` runs a real canary of the sample
service's zip per experiment (the local runtime runs it), sets the experiment's fault on the canary
version through the emulator's fault hooks, and drives real Invokes through the alias on the virtual
clock; the canary's gates judge the invocations' own metrics. Small canary: one 50 % step of 2 virtual
minutes, 10 invocations a minute (about 40 invocations per experiment)."""

from __future__ import annotations

import json

import pytest

from stageflow import pythons
from stageflow.factory import Factory
from stageflow.report import Reporter
from tests.helpers.resources import make_service

pytestmark = [pytest.mark.emulator, pytest.mark.e2e]

SHORT_CANARY = """
[environments.dev.canary]
steps = [{ weight = 50, bake_minutes = 2 }, { weight = 100 }]
post_promotion_minutes = 1
max_extensions = 1

[environments.dev.gates]
min_invocations = 5
min_latency_minutes = 1
"""

EXPERIMENTS = """
[suites]
acceptance = ["errors-on-canary", "latency-within-gates"]

[experiments.errors-on-canary]
fault = "error"
percent = 100
duration_minutes = 10
invocations_per_minute = 10
expect = "rollback"

[experiments.latency-within-gates]
fault = "latency"
target = "all"
latency_ms = 100
duration_minutes = 10
invocations_per_minute = 10
expect = "within_gates"

[experiments.errors-mislabelled]
fault = "error"
percent = 100
duration_minutes = 10
invocations_per_minute = 10
expect = "within_gates"
"""


@pytest.fixture
def chaos_project(project, aws, emulator_state):
    text = (project / "stageflow.toml").read_text()
    head, _, _ = text.partition("[environments.dev.canary]")
    rest = text.split("[environments.staging]", 1)[1]
    (project / "stageflow.toml").write_text(head + SHORT_CANARY + "\n[environments.staging]" + rest)
    (project / "chaos").mkdir()
    (project / "chaos" / "experiments.toml").write_text(EXPERIMENTS)
    factory = Factory(
        config_path=project / "stageflow.toml",
        local=True,
        state_dir=emulator_state,
        reporter=Reporter(quiet=True),
    )
    pythons.find(factory.config.service.runtime)  # the machine must carry the runtime's interpreter
    out = make_service(factory, "dev")  # function + alias + history table, remembered as dev's outputs
    cw = aws.client("cloudwatch")
    for name in out.alarm_names:  # the gate's alarms exist (a missing alarm counts as firing); none fires
        cw.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/Lambda",
            MetricName="Errors",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1e9,
            ComparisonOperator="GreaterThanThreshold",
        )
    return project


def _chaos(cli, project, emulator_state, *args):
    env = {"STAGEFLOW_STATE_DIR": str(emulator_state)}
    return cli("--config", str(project / "stageflow.toml"), "--local", "--json", "chaos", "dev", *args,
               env=env, timeout=300)  # fmt: skip


def test_errors_on_the_canary_roll_it_back_and_latency_within_the_gates_passes(
    chaos_project, cli, emulator_state, aws
):
    r = _chaos(cli, chaos_project, emulator_state, "--suite", "acceptance")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = json.loads(r.stdout)
    got = {e["experiment"]: e for e in data["experiments"]}
    errors, latency = got["errors-on-canary"], got["latency-within-gates"]
    assert errors["happened"] == "rollback", errors
    assert "gate errors: 100.0%" in errors["detail"] and "rolled back" in errors["detail"], errors
    assert "alarms" not in errors["detail"], errors  # the gates judged the invocations, no alarm did
    assert latency["happened"] == "within_gates", latency
    # the promoted latency experiment's version serves alone
    alias = aws.client("lambda").get_alias(FunctionName="sample-api-dev", Name="live")
    assert not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights"), alias
    # nothing left behind: the faults came off when each experiment ended
    import urllib.request

    with urllib.request.urlopen(f"{aws.target.endpoint}/_stageflow/faults", timeout=10) as resp:
        assert json.loads(resp.read())["faults"] == []


def test_an_experiment_that_does_not_do_what_it_expects_fails_the_stage_and_a_bad_name_changes_nothing(
    chaos_project, cli, emulator_state, aws
):
    lam = aws.client("lambda")
    before = lam.list_versions_by_function(FunctionName="sample-api-dev")["Versions"]
    r = _chaos(cli, chaos_project, emulator_state, "--experiment", "nope")
    assert r.returncode == 2, r.stderr
    assert "no experiment named 'nope'" in r.stderr
    assert len(lam.list_versions_by_function(FunctionName="sample-api-dev")["Versions"]) == len(before)

    r = _chaos(cli, chaos_project, emulator_state, "--experiment", "errors-mislabelled")
    assert r.returncode == 4, r.stdout[-2000:] + r.stderr[-2000:]
    assert "errors-mislabelled: FAILED: expected within gates, happened rollback" in r.stderr, r.stderr[
        -2000:
    ]
