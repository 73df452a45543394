"""The HTTP front door end to end on the emulator: `stageflow status ENV --json`'s `url` is the loopback
front door of the stage Terraform built (modules/front_door); `curl` on it reaches the deployed zip
through the `live` alias (not the source tree); `stageflow load staging` goes through it, and the
per-version Invocations it produced are what the canary's metric source reads back.

One Terraform-built dev environment serves the session (tests/conftest.py ``deployed``); staging is
built once for this module in the same emulator.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.test_canary_cli import run
from tests.helpers import policy
from tests.helpers.policy import FAST_POLICY, change_code

pytestmark = [pytest.mark.e2e, pytest.mark.emulator, pytest.mark.terraform, pytest.mark.timeout(1200)]


ORDERS_TABLE = """
resource "aws_dynamodb_table" "orders" {
  name         = "${var.service_name}-orders-${var.environment}"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "id"
  attribute {
    name = "id"
    type = "S"
  }
}
"""


def curl(url: str) -> tuple[int, str]:
    """``curl`` itself (the acceptance's command): status code and body."""
    exe = shutil.which("curl")
    if exe is None:
        pytest.fail("curl is not installed")
    r = subprocess.run(
        [exe, "-sS", "-o", "-", "-w", "\n%{http_code}", url], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


def status_json(project, deployed, env: str) -> dict:
    r = run(project, deployed, "--json", "status", env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_status_url_answers_health_from_the_deployed_zip_through_the_alias(project, deployed):
    st = status_json(project, deployed, "dev")
    url = st["url"]
    assert url.startswith("http://127.0.0.1:") and "/_frontdoor/" in url and url.endswith("/v1-dev")
    code, body = curl(url + "/health")
    assert code == 200, body
    assert json.loads(body) == {"status": "ok", "version": "1.0.0"}  # the sample's health answer

    # the source changes, nothing is deployed: the front door still answers with the deployed zip
    init = project / "app" / "service" / "__init__.py"
    init.write_text(init.read_text().replace('"1.0.0"', '"1.0.1"'))
    assert json.loads(curl(url + "/health")[1])["version"] == "1.0.0"
    # deployed through the canary: now the alias serves the new zip
    assert run(project, deployed, "canary", "dev").returncode == 0
    assert json.loads(curl(url + "/health")[1])["version"] == "1.0.1"
    hello = json.loads(curl(url + "/hello?name=door")[1])
    serving = [v for v, w in status_json(project, deployed, "dev")["weights"].items() if w == 100]
    assert hello["message"] == "hello, door" and [hello["function_version"]] == serving

    # API Gateway's answers: the function's own 404; a stage that does not exist
    assert curl(url + "/nope")[0] == 404
    assert curl(url.rsplit("/", 1)[0] + "/no-such-stage/health")[0] == 403
    human = run(project, deployed, "status", "dev")
    assert f"url: {url}" in human.stderr + human.stdout

    # the stage Terraform built carries dev's throttling and no cache (the design: 1,000 req/s, off)
    api_id = url.split("/_frontdoor/")[1].split("/")[0]
    stage = deployed.aws.client("apigateway").get_stage(restApiId=api_id, stageName="v1-dev")
    every = stage["methodSettings"]["*/*"]
    assert (every["throttlingRateLimit"], every["throttlingBurstLimit"]) == (1000.0, 2000)
    assert not stage.get("cacheClusterEnabled") and not every["cachingEnabled"]


def test_the_front_doors_alarms_watch_its_metrics_and_veto_a_canary(project, deployed):
    """The three alarms Terraform built (modules/front_door/alarms.tf) are in the root's `alarm_names`,
    watch the metrics the front door records (same namespace and dimensions), notify the topic, and one in
    ALARM rolls a canary back: they are in the canary's alarm gate."""
    out = deployed.outputs
    url = status_json(project, deployed, "dev")["url"]
    stage = url.rsplit("/", 1)[1]
    api = [n for n in out["alarm_names"] if re.search(r"-api-(4xx|5xx|p95-latency)-dev$", n)]
    assert len(api) == 3, out["alarm_names"]
    cw = deployed.aws.client("cloudwatch")
    alarms = {a["MetricName"]: a for a in cw.describe_alarms(AlarmNames=api)["MetricAlarms"]}
    assert sorted(alarms) == ["4XXError", "5XXError", "Latency"]
    for a in alarms.values():
        assert a["Namespace"] == "AWS/ApiGateway" and a["AlarmActions"] == [out["topic_arn"]]
        dims = {d["Name"]: d["Value"] for d in a["Dimensions"]}
        assert dims["Stage"] == stage and set(dims) == {"ApiName", "Stage"}

    # a 404 through the front door is a 4XXError datapoint under the alarm's own dimensions
    start = datetime.now(UTC) - timedelta(minutes=5)
    assert curl(url + "/no-such-route")[0] == 404
    got = cw.get_metric_statistics(
        Namespace="AWS/ApiGateway",
        MetricName="4XXError",
        Dimensions=alarms["4XXError"]["Dimensions"],
        StartTime=start,
        EndTime=datetime.now(UTC) + timedelta(minutes=2),
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    assert sum(p["Sum"] for p in got) >= 1, got

    # the 5xx alarm in ALARM: the canary's gate rolls the new version back, naming it
    five = alarms["5XXError"]["AlarmName"]
    policy.with_policy(project / "stageflow.toml", FAST_POLICY)
    change_code(project, "api-5xx-alarm")
    cw.set_alarm_state(AlarmName=five, StateValue="ALARM", StateReason="test: the front door's 5xx")
    r = run(project, deployed, "canary", "dev", timeout=600)
    assert r.returncode == 4, r.stderr[-3000:]
    assert "rolled back in dev" in r.stderr and five in r.stderr
    assert deployed.weights() == {deployed.base: 100}


@pytest.fixture(scope="module")
def staging(deployed_env, tmp_path_factory):
    """staging, built by Terraform in the session's emulator and deployed by a canary (once); the
    service's own Terraform (infrastructure/service) has a DynamoDB table of its own, listed in its
    ``table_names`` output."""
    from tests.conftest import make_project

    project = make_project(tmp_path_factory.mktemp("staging") / "project")
    own = project / "infrastructure" / "service"
    (own / "orders.tf").write_text(ORDERS_TABLE)
    outputs = own / "outputs.tf"
    outputs.write_text(
        outputs.read_text().replace("value       = []", "value       = [aws_dynamodb_table.orders.name]")
    )
    assert "aws_dynamodb_table.orders.name" in outputs.read_text()
    subprocess.run(["git", "-C", str(project), "add", "-A"], check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@localhost",
            "-c",
            "commit.gpgsign=false",
            "-C",
            str(project),
            "commit",
            "-qm",
            "an orders table",
        ],
        check=True,
    )
    r = run(project, deployed_env, "apply", "staging", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run(project, deployed_env, "canary", "staging", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return project


def test_load_staging_goes_through_the_front_door_and_the_metric_source_reads_its_invocations(
    staging, deployed_env
):
    from stageflow.metrics.cloudwatch import LocalSimulatorSource

    st = status_json(staging, deployed_env, "staging")
    url, function, alias = st["url"], st["function"], st["alias"]
    assert "/_frontdoor/" in url and url.endswith("/v1-staging")
    (version,) = [v for v, w in st["weights"].items() if w == 100]  # the canary promoted it
    cw = deployed_env.aws.client("cloudwatch")
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)

    def invocations() -> int:
        end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
        return LocalSimulatorSource(cw).series(function, alias, version, start, end).invocations

    before = invocations()
    r = run(staging, deployed_env, "--json", "load", "staging", "--users", "3", "--seconds", "5")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["requests"] > 0 and res["failures"] == 0, res
    assert res["target"] == url
    # every request became one Invoke of the alias, recorded for the version that served it; locust does
    # not count the requests its users still had in flight when the run time ended (one per user at most)
    assert res["requests"] <= invocations() - before <= res["requests"] + res["users"]


def test_the_services_own_tables_get_throttling_alarms_in_the_gate(staging, deployed_env):
    """infrastructure/service's ``table_names`` reach modules/service's DynamoDB throttling alarms through
    the root (``data_table_names``), and those alarms are in the gate's ``alarm_names``."""
    out = json.loads((deployed_env.state / "outputs" / "local-staging.json").read_text())["outputs"]
    table = "sample-api-orders-staging"
    assert table in deployed_env.aws.client("dynamodb").list_tables()["TableNames"]
    (alarm,) = [n for n in out["alarm_names"] if n.endswith(f"-{table}-throttled-requests-staging")]
    (a,) = deployed_env.aws.client("cloudwatch").describe_alarms(AlarmNames=[alarm])["MetricAlarms"]
    metrics = {q["Id"]: q.get("MetricStat", {}).get("Metric", {}) for q in a["Metrics"]}
    assert {m["MetricName"] for m in metrics.values() if m} == {"ReadThrottleEvents", "WriteThrottleEvents"}
    for m in metrics.values():
        if m:
            assert m["Namespace"] == "AWS/DynamoDB" and m["Dimensions"] == [
                {"Name": "TableName", "Value": table}
            ]
    assert a["Threshold"] == 5 and a["AlarmActions"] == [out["topic_arn"]]


def test_staging_applies_the_chaos_stages_fis_templates_and_fis_chaos_finds_them_by_tag(
    staging, deployed_env
):
    """modules/chaos in the staging root, applied to the emulator (moto's FIS): one template per built-in
    experiment, found by ``FisChaos`` through its tags (another environment's name finds none), each
    targeting the service's function with the composite stop alarm over the environment's alarms; the
    function carries the FIS extension's variables but no layer (the emulator's seam), and the version
    the canary published from it runs (the load test above went through it)."""
    from stageflow.chaos.model import BUILTIN_FILE, load_plan
    from stageflow.chaos.run import FisChaos
    from stageflow.errors import EnvironmentFailure

    aws = deployed_env.aws
    fis, cw, lam = aws.client("fis"), aws.client("cloudwatch"), aws.client("lambda")
    st = status_json(staging, deployed_env, "staging")
    function = st["function"]
    arn = lam.get_function_configuration(FunctionName=function)["FunctionArn"]
    plan = load_plan(BUILTIN_FILE.parent, BUILTIN_FILE)
    runner = FisChaos(fis, "sample-api", "staging")
    ids = {name: runner.template_id(name) for name in plan.experiments}
    assert len(set(ids.values())) == len(plan.experiments) == 5
    (stop,) = cw.describe_alarms(AlarmNames=["sample-api-staging-fis-stop"], AlarmTypes=["CompositeAlarm"])[
        "CompositeAlarms"
    ]
    out = json.loads((deployed_env.state / "outputs" / "local-staging.json").read_text())["outputs"]
    for name in out["alarm_names"]:
        assert f'ALARM("{name}")' in stop["AlarmRule"]
    for name, tid in ids.items():
        t = fis.get_experiment_template(id=tid)["experimentTemplate"]
        assert t["stopConditions"] == [{"source": "aws:cloudwatch:alarm", "value": stop["AlarmArn"]}]
        assert [a["actionId"] for a in t["actions"].values()] == [plan.experiments[name].fis_action]
        assert [tg["resourceArns"] for tg in t["targets"].values()] == [[arn]]
        assert t["roleArn"].endswith(":role/sample-api-fis-staging")
    with pytest.raises(EnvironmentFailure, match="no FIS experiment template for 'canary-errors' in dev"):
        FisChaos(fis, "sample-api", "dev").template_id("canary-errors")
    # the function: the extension's variables (the deploy step keeps them: function_environment), no layer
    extension = out["function_environment"]
    assert extension["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/aws-fis/bootstrap"
    bucket = extension["AWS_FIS_CONFIGURATION_LOCATION"].removeprefix("arn:aws:s3:::").split("/")[0]
    assert bucket.startswith("sample-api-staging-fis-config-")
    aws.client("s3").head_bucket(Bucket=bucket)
    (version,) = [v for v, w in st["weights"].items() if w == 100]
    served = lam.get_function_configuration(FunctionName=function, Qualifier=version)
    assert not served.get("Layers")  # no layers on the emulator (terraform-endpoint seam)
    assert {k: served["Environment"]["Variables"][k] for k in extension} == extension
    code, _body = curl(st["url"] + "/health")
    assert code == 200  # the zip runs although AWS_LAMBDA_EXEC_WRAPPER names a wrapper that is not there
