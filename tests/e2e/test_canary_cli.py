"""End to end through the real CLI against the emulator: canary, gates, locks, kills, resume, rollback."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import boto3
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.emulator]

FAST_POLICY = """
[environments.dev.canary]
steps = [{ weight = 10, bake_minutes = 2 }, { weight = 50, bake_minutes = 2 }, { weight = 100 }]
post_promotion_minutes = 2

[environments.dev.gates]
min_latency_minutes = 2
"""


@pytest.fixture
def fast_project(project):
    text = (project / "stageflow.toml").read_text()
    start = text.index("[environments.dev.canary]")
    end = text.index("[environments.staging]")
    (project / "stageflow.toml").write_text(text[:start] + FAST_POLICY.strip() + "\n\n" + text[end:])
    return project


def run(project, state, *args, env=None, input=None):
    full = {"STAGEFLOW_STATE_DIR": str(state), **(env or {})}
    import os

    e = dict(os.environ)
    e.update(full)
    return subprocess.run(
        [sys.executable, "-m", "stageflow", "--config", str(project / "stageflow.toml"), "--local", *args],
        env=e,
        capture_output=True,
        text=True,
        input=input,
        timeout=180,
    )


def lambda_client(aws):
    return boto3.client(
        "lambda",
        endpoint_url=aws.target.endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def alias_weights(aws, fn="sample-api-dev"):
    a = lambda_client(aws).get_alias(FunctionName=fn, Name="live")
    w = {
        k: round(v * 100)
        for k, v in ((a.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}).items()
    }
    w[a["FunctionVersion"]] = 100 - sum(w.values())
    return w


def change_code(project, marker: str) -> None:
    (project / "app" / "service" / "build_marker.py").write_text(f"MARKER = {marker!r}\n")


def test_demo_deploys_and_rollback_restores_previous(project, emulator_state, aws):
    r = run(project, emulator_state, "demo")
    assert r.returncode == 0, r.stderr
    assert "deployed sample-api to dev on the local AWS emulator" in r.stdout
    assert "via the local provisioner" in r.stdout  # says plainly which built the resources
    st = json.loads(run(project, emulator_state, "--json", "status", "dev").stdout)
    assert st["phase"] == "succeeded" and st["deployment_id"] and st["weights"] == {"2": 100}
    assert [t["to"] for t in st["transitions"]][-1] == "succeeded"
    again = run(project, emulator_state, "canary", "dev")
    assert again.returncode == 0 and "nothing to deploy" in again.stdout
    rb = run(project, emulator_state, "rollback", "dev")
    assert rb.returncode == 0, rb.stderr
    assert alias_weights(aws) == {"1": 100}


def test_gate_failure_at_10_percent_rolls_back_with_numbers_everywhere(
    fast_project, emulator_state, aws, tmp_path
):
    sqs = aws.client("sqs")
    run(fast_project, emulator_state, "status", "dev")  # provisions
    topic = [
        t["TopicArn"] for t in aws.client("sns").list_topics()["Topics"] if "deploys-dev" in t["TopicArn"]
    ][0]
    q = sqs.create_queue(QueueName="n")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)
    scenario = tmp_path / "bad.json"
    scenario.write_text(
        json.dumps(
            {
                "name": "canary fails a quarter of requests",
                "seed": 3,
                "traffic_per_minute": 600,
                "stable": {"error_rate": 0.003, "latency_ms": {"median": 100, "p95": 400}},
                "canary": {"error_rate": 0.25, "latency_ms": {"median": 100, "p95": 400}},
                "expect": "rollback",
            }
        )
    )
    r = run(fast_project, emulator_state, "canary", "dev", "--scenario", str(scenario))
    assert r.returncode == 4, r.stderr
    assert "rolled back in dev" in r.stderr and "> 1.00%" in r.stderr  # the failing numbers
    assert alias_weights(aws) == {"1": 100}
    st = json.loads(run(fast_project, emulator_state, "--json", "status", "dev").stdout)
    assert st["status"] == "rolled_back" and "> 1.00%" in st["reason"]
    failing = [v for v in st["last_verdicts"] if v["decision"] == "rollback"]
    assert failing and failing[-1]["weight"] == 10
    assert any(res["outcome"] == "fail" and res["observed"] is not None for res in failing[-1]["results"])
    msgs = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    bodies = [json.loads(json.loads(m["Body"])["Message"]) for m in msgs]
    rolled = [b for b in bodies if b["kind"] == "rolled_back"]
    assert rolled and "> 1.00%" in " ".join(rolled[0]["reasons"])


def test_gate_failure_during_post_promotion_monitoring_rolls_back(
    fast_project, emulator_state, aws, tmp_path
):
    scenario = tmp_path / "late.json"
    scenario.write_text(
        json.dumps(
            {
                "name": "fails after promotion",
                "seed": 9,
                "traffic_per_minute": 600,
                "stable": {"error_rate": 0.002, "latency_ms": {"median": 100, "p95": 400}},
                "canary": {"error_rate": 0.002, "latency_ms": {"median": 100, "p95": 400}},
                "changes": [{"version": "canary", "at_minute": 4, "error_rate": 0.3}],
                "expect": "rollback",
            }
        )
    )
    r = run(fast_project, emulator_state, "canary", "dev", "--scenario", str(scenario))
    assert r.returncode == 4, r.stderr
    assert "post-promotion" in r.stderr
    st = json.loads(run(fast_project, emulator_state, "--json", "status", "dev").stdout)
    path = [t["to"] for t in st["transitions"]]
    assert "monitoring" in path and path[-2:] == ["rolling_back", "rolled_back"]
    assert st["weights"] == {"1": 100}


def test_two_deploys_at_once_exactly_one_proceeds(project, emulator_state, aws):
    # prod pauses for approval before the canary: the first run keeps the lock while it waits.
    run(project, emulator_state, "status", "prod")  # provision first so both race for the lock only
    import os

    env = dict(os.environ, STAGEFLOW_STATE_DIR=str(emulator_state))
    cmd = [
        sys.executable,
        "-m",
        "stageflow",
        "--config",
        str(project / "stageflow.toml"),
        "--local",
        "canary",
        "prod",
        "--no-input",
    ]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 6], outs
    loser = outs[[p.returncode for p in procs].index(6)]
    assert "is locked by deployment" in loser[1] and loser[1].count("\n") == 1
    st = json.loads(run(project, emulator_state, "--json", "status", "prod").stdout)
    assert st["phase"] == "awaiting_approval" and st["locked_by"] == st["deployment_id"]
    rej = run(project, emulator_state, "reject", "prod", "--reason", "test")
    assert rej.returncode == 4
    assert alias_weights(aws, "sample-api-prod") == {"1": 100}


def _check_history_complete(st):
    trans = st["transitions"]
    for a, b in zip(trans, trans[1:], strict=False):
        assert a["to"] == b["from"], trans
    assert st["status"] in ("succeeded", "rolled_back", "failed")


@pytest.mark.parametrize("kill_at", ["kill-after-publish"] + [f"kill-after-record:{n}" for n in range(1, 8)])
def test_sigkill_at_every_step_boundary_then_resume_or_rollback(fast_project, emulator_state, aws, kill_at):
    change_code(fast_project, kill_at)
    killed = run(fast_project, emulator_state, "canary", "dev", env={"STAGEFLOW_FAILPOINT": kill_at})
    assert killed.returncode == -9, (killed.stdout, killed.stderr)
    st = run(fast_project, emulator_state, "status", "dev")
    assert st.returncode == 0, st.stderr
    n = 0 if kill_at == "kill-after-publish" else int(kill_at.rsplit(":", 1)[1])
    if n < 7:
        assert "in flight" in st.stdout and "resume" in st.stdout
    use_resume = n % 2 == 0
    after = run(fast_project, emulator_state, "resume" if use_resume else "rollback", "dev")
    if kill_at == "kill-after-publish" and use_resume:
        assert after.returncode == 2 and "no traffic moved" in after.stderr
    elif n == 7:
        # killed after the final record: the run was already complete
        assert after.returncode in (0, 2), after.stderr
    else:
        assert after.returncode == 0, after.stderr
    weights = alias_weights(aws)
    assert len(weights) == 1 and list(weights.values()) == [100], weights
    final = json.loads(run(fast_project, emulator_state, "--json", "status", "dev").stdout)
    assert final["locked_by"] is None
    if final["in_flight"] is False and final["transitions"]:
        _check_history_complete(final)
    time.sleep(0)


def test_approval_pause_times_out_into_a_rollback(project, emulator_state, aws):
    first = run(project, emulator_state, "canary", "prod", "--no-input")
    assert first.returncode == 0 and "awaits approval" in first.stdout, first.stderr
    st = json.loads(run(project, emulator_state, "--json", "status", "prod").stdout)
    # the pause began three hours ago (prod's approval timeout is 120 min)
    ddb = aws.client("dynamodb")
    table = "sample-api-deployments-prod"
    key = {"pk": {"S": "sample-api#prod"}, "sk": {"S": f"DEP#{st['deployment_id']}"}}
    item = ddb.get_item(TableName=table, Key=key)["Item"]
    last = len(item["transitions"]["L"]) - 1
    ddb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression=f"SET transitions[{last}].#at = :t",
        ExpressionAttributeNames={"#at": "at"},
        ExpressionAttributeValues={":t": {"S": "2020-01-01T00:00:00.000000Z"}},
    )
    late = run(project, emulator_state, "approve", "prod", "--no-input")
    assert late.returncode == 4, late.stderr
    assert "no approval within 120 min" in late.stderr
    assert alias_weights(aws, "sample-api-prod") == {"1": 100}


def test_full_local_deploy_with_secrets_leaves_no_trace_of_them(project, emulator_state, aws):
    from tests.helpers.leakscan import scan_for_values

    values = ["pw-Zq8!x7#database-secret", "k3y-api-9f2c71d0e4", "host.internal-7731.example"]
    aws.client("secretsmanager").create_secret(
        Name="sample-api/dev/database", SecretString=json.dumps({"password": values[0], "user": "app"})
    )
    aws.client("secretsmanager").create_secret(Name="sample-api/dev/api-key", SecretString=values[1])
    aws.client("ssm").put_parameter(Name="/sample-api/dev/api/host", Value=values[2], Type="SecureString")
    cfg = project / "stageflow.toml"
    cfg.write_text(
        cfg.read_text() + "\n[environments.dev.secrets]\n"
        'DB_PASSWORD = "secretsmanager:sample-api/dev/database#password"\n'
        'API_KEY = "secretsmanager:sample-api/dev/api-key"\n'
        'API_HOST = "ssm:/sample-api/dev/api/host"\n'
    )
    r = run(project, emulator_state, "--json", "deploy", "dev")
    assert r.returncode == 0, r.stderr
    stages = {s["name"]: s for s in json.loads(r.stdout)["stages"]}
    assert stages["secrets"]["ok"] and "API_HOST, API_KEY, DB_PASSWORD" in stages["secrets"]["summary"]
    # the published version carries them
    conf = lambda_client(aws).get_function_configuration(FunctionName="sample-api-dev", Qualifier="2")
    assert conf["Environment"]["Variables"]["DB_PASSWORD"] == values[0]
    st = run(project, emulator_state, "--json", "status", "dev")
    hist = run(project, emulator_state, "--json", "history", "dev")
    hits = scan_for_values(
        [project, emulator_state],
        {
            "deploy stdout": r.stdout,
            "deploy stderr": r.stderr,
            "status": st.stdout + st.stderr,
            "history": hist.stdout + hist.stderr,
        },
        values,
    )
    assert not hits, [str(h) for h in hits]


def test_production_through_codepipeline_steps(project, emulator_state, aws):
    """deploy.yml: step 1 deploys with the pipeline's approval as the one before the canary, then each
    CodePipeline approval continues the paused canary: 10 % → 50 % → 100 %."""
    env = {"STAGEFLOW_PRE_APPROVED_BY": "codepipeline:ApprovalForProduction"}
    first = run(project, emulator_state, "--json", "deploy", "prod", env=env)
    assert first.returncode == 0, first.stderr
    st = json.loads(run(project, emulator_state, "--json", "status", "prod").stdout)
    assert st["phase"] == "awaiting_approval" and st["weights"] == {"1": 90, "2": 10}
    assert any("codepipeline:ApprovalForProduction" in t["reason"] for t in st["transitions"])
    second = run(project, emulator_state, "approve", "prod", "--no-input")
    assert second.returncode == 0, second.stderr
    assert alias_weights(aws, "sample-api-prod") == {"1": 50, "2": 50}
    third = run(project, emulator_state, "--json", "approve", "prod", "--no-input")
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["phase"] == "succeeded"
    assert alias_weights(aws, "sample-api-prod") == {"2": 100}


def test_smoke_and_bounded_load_are_recorded_in_the_deployment(project, emulator_state, aws):
    assert run(project, emulator_state, "canary", "dev").returncode == 0
    smoke = run(project, emulator_state, "--json", "smoke", "dev")
    assert smoke.returncode == 0, smoke.stderr
    data = json.loads(smoke.stdout)
    assert data["ok"] and data["status"] == 200 and data["target"].startswith("http://127.0.0.1:")
    load = run(project, emulator_state, "--json", "load", "dev", "--users", "3", "--seconds", "3")
    assert load.returncode == 0, load.stderr
    res = json.loads(load.stdout)
    assert res["requests"] > 0 and res["users"] == 3 and res["error_rate"] == 0 and res["within_gates"]
    hist = json.loads(run(project, emulator_state, "--json", "history", "dev").stdout)["deployments"]
    assert hist[0]["deployment_id"] == res["deployment_id"]
    assert hist[0]["extra"]["load"]["requests"] == res["requests"]
    bad = run(project, emulator_state, "load", "dev", "--users", "5000")  # 1..1000
    assert bad.returncode == 2 and "5000" in bad.stderr
    down = run(project, emulator_state, "smoke", "dev", "--url", "http://127.0.0.1:9")
    assert down.returncode == 3 and down.stderr.startswith("stageflow: error: smoke:")
