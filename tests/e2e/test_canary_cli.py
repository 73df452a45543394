"""End to end through the real CLI against the Terraform-built dev environment in the emulator:
deploy, canary, gates, locks, kills, resume, rollback, secrets, approvals.

One environment serves the session (tests/conftest.py ``deployed``): each test runs from its own
project copy, the alias starts settled on whatever served last, and version numbers are relative.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import policy
from tests.helpers.policy import APPROVALS, FAST_POLICY, change_code

# the first test of a session waits for the shared environment: Terraform builds it (tests/conftest.py)
pytestmark = [pytest.mark.e2e, pytest.mark.emulator, pytest.mark.terraform, pytest.mark.timeout(1200)]


def with_policy(project, *blocks: str):
    policy.with_policy(project / "stageflow.toml", *blocks)
    return project


@pytest.fixture
def fast_project(project):
    return with_policy(project, FAST_POLICY)


def run(project, deployed, *args, env=None, input=None, timeout=300):
    e = dict(os.environ)
    e.update(deployed.env(**(env or {})))
    return subprocess.run(
        [sys.executable, "-m", "stageflow", "--config", str(project / "stageflow.toml"), "--local", *args],
        env=e,
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
    )


def status(project, deployed) -> dict:
    r = run(project, deployed, "--json", "status", "dev")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_the_environment_is_terraforms_and_a_second_deploy_changes_nothing(project, deployed):
    """What `make demo` builds: every resource of the root by Terraform, state and lock in the emulator;
    deploying the same tree a second time plans no changes and publishes no version."""
    s3 = deployed.aws.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="stageflow-local-tfstate").get("Contents", [])]
    assert "sample-api/dev/terraform.tfstate" in keys
    state = json.loads(
        s3.get_object(Bucket="stageflow-local-tfstate", Key="sample-api/dev/terraform.tfstate")["Body"].read()
    )
    instances = [
        (f"{r['type']}.{r['name']}", i["attributes"])
        for r in state["resources"]
        if r["mode"] == "managed"
        for i in r["instances"]
    ]
    assert len(instances) >= 30, len(instances)
    taggable = [(name, a.get("tags_all") or a.get("tags")) for name, a in instances if "tags_all" in a]
    assert len(taggable) >= 10
    assert all((tags or {}).get("ManagedBy") == "terraform" for _, tags in taggable), taggable
    fn = deployed.lam().get_function(FunctionName=deployed.function)
    assert fn["Tags"].get("ManagedBy") == "terraform"
    # the session's environment may serve what an earlier test module deployed: the first deploy of this
    # tree converges it (and fills the security scan cache of this project copy)
    first = run(project, deployed, "--json", "deploy", "dev")
    assert first.returncode == 0, first.stderr[-3000:]
    before = deployed.latest_version()
    r = run(project, deployed, "--json", "deploy", "dev")
    assert r.returncode == 0, r.stderr[-3000:]
    stages = {s["name"]: s for s in json.loads(r.stdout)["stages"]}
    assert stages["infrastructure"]["data"]["applied"] is False, stages["infrastructure"]
    assert stages["infrastructure"]["summary"].startswith("terraform: no changes")
    assert stages["canary"]["summary"].startswith("nothing to deploy"), stages["canary"]
    assert deployed.latest_version() == before
    # unchanged inputs are not re-scanned
    assert {"bandit", "checkov", "secrets"} <= set(stages["security"]["data"]["cached"])
    # the secrets stage merges values into the function's environment: Terraform leaves them alone
    lam = deployed.lam()
    env_vars = lam.get_function_configuration(FunctionName=deployed.function)["Environment"]["Variables"]
    lam.update_function_configuration(
        FunctionName=deployed.function, Environment={"Variables": {**env_vars, "MERGED_BY_DEPLOY": "x"}}
    )
    d = run(project, deployed, "drift", "dev")
    assert d.returncode == 0, d.stdout[-2000:] + d.stderr[-2000:]
    lam.update_function_configuration(FunctionName=deployed.function, Environment={"Variables": env_vars})
    assert not (project / "infrastructure" / "environments" / "dev" / "stageflow_local_override.tf").exists()


def test_canary_status_and_rollback(project, deployed):
    base, new = deployed.base, deployed.next_version()
    change_code(project, "canary-status-rollback")
    r = run(project, deployed, "--json", "canary", "dev")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["phase"] == "succeeded"
    st = status(project, deployed)
    assert st["phase"] == "succeeded" and st["weights"] == {new: 100} and st["resources"] == "terraform"
    assert [t["to"] for t in st["transitions"]][-1] == "succeeded"
    again = run(project, deployed, "canary", "dev")
    assert again.returncode == 0 and "nothing to deploy" in again.stdout, again.stderr
    rb = run(project, deployed, "rollback", "dev")
    assert rb.returncode == 0, rb.stderr
    assert deployed.weights() == {base: 100}


def test_gate_failure_at_10_percent_rolls_back_with_numbers_everywhere(fast_project, deployed, tmp_path):
    sqs = deployed.aws.client("sqs")
    q = sqs.create_queue(QueueName="notifications-10pct")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    deployed.aws.client("sns").subscribe(
        TopicArn=deployed.outputs["topic_arn"], Protocol="sqs", Endpoint=qarn
    )
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
    change_code(fast_project, "bad-at-10")
    r = run(fast_project, deployed, "canary", "dev", "--scenario", str(scenario))
    assert r.returncode == 4, r.stderr
    assert "rolled back in dev" in r.stderr and "> 1.00%" in r.stderr  # the failing numbers
    assert deployed.weights() == {deployed.base: 100}
    st = status(fast_project, deployed)
    assert st["status"] == "rolled_back" and "> 1.00%" in st["reason"]
    failing = [v for v in st["last_verdicts"] if v["decision"] == "rollback"]
    assert failing and failing[-1]["weight"] == 10
    assert any(res["outcome"] == "fail" and res["observed"] is not None for res in failing[-1]["results"])
    msgs = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    bodies = [json.loads(json.loads(m["Body"])["Message"]) for m in msgs]
    rolled = [b for b in bodies if b["kind"] == "rolled_back"]
    assert rolled and "> 1.00%" in " ".join(rolled[0]["reasons"])


def test_gate_failure_during_post_promotion_monitoring_rolls_back(fast_project, deployed, tmp_path):
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
    change_code(fast_project, "late-failure")
    r = run(fast_project, deployed, "canary", "dev", "--scenario", str(scenario))
    assert r.returncode == 4, r.stderr
    assert "post-promotion" in r.stderr
    st = status(fast_project, deployed)
    path = [t["to"] for t in st["transitions"]]
    assert "monitoring" in path and path[-2:] == ["rolling_back", "rolled_back"]
    assert st["weights"] == {deployed.base: 100}


def _check_history_complete(st):
    trans = st["transitions"]
    for a, b in zip(trans, trans[1:], strict=False):
        assert a["to"] == b["from"], trans
    assert st["status"] in ("succeeded", "rolled_back", "failed")


# Step boundaries whose handling is special: killed after publishing (resume closes it, exit 2), in the
# middle (rollback), after the final record (the lock is released by the next command). Kills at
# seeded random points between any two AWS calls: tests/reliability/test_kills.py.
@pytest.mark.parametrize("kill_at", ["kill-after-publish", "kill-after-record:3", "kill-after-record:7"])
def test_sigkill_at_every_step_boundary_then_resume_or_rollback(fast_project, deployed, kill_at):
    change_code(fast_project, kill_at)
    killed = run(fast_project, deployed, "canary", "dev", env={"STAGEFLOW_FAILPOINT": kill_at})
    assert killed.returncode == -9, (killed.stdout, killed.stderr)
    st = run(fast_project, deployed, "status", "dev")
    assert st.returncode == 0, st.stderr
    n = 0 if kill_at == "kill-after-publish" else int(kill_at.rsplit(":", 1)[1])
    if n < 7:
        assert "in flight" in st.stdout and "resume" in st.stdout
    use_resume = n % 2 == 0
    after = run(fast_project, deployed, "resume" if use_resume else "rollback", "dev")
    if kill_at == "kill-after-publish" and use_resume:
        assert after.returncode == 2 and "no traffic moved" in after.stderr
    elif n == 7:
        # killed after the final record: the run was already complete
        assert after.returncode in (0, 2), after.stderr
    else:
        assert after.returncode == 0, after.stderr
    weights = deployed.weights()
    assert len(weights) == 1 and list(weights.values()) == [100], weights
    final = status(fast_project, deployed)
    assert final["locked_by"] is None
    if final["in_flight"] is False and final["transitions"]:
        _check_history_complete(final)


def test_approval_pause_times_out_and_a_late_answer_is_refused(project, deployed):
    """The pause before the canary has a recorded deadline; it passes with nobody answering: the late
    approve finds the deadline acted first (the release rejected, no traffic moved) and is refused with
    one line, exit 2, changing nothing more. (At a canary step the deadline rolls back:
    tests/e2e/test_approvals_cli.py.)"""
    with_policy(project, APPROVALS, FAST_POLICY)
    change_code(project, "timeout")
    first = run(project, deployed, "canary", "dev", "--no-input")
    assert first.returncode == 0 and "awaits approval" in first.stdout, first.stderr
    st = status(project, deployed)
    assert st["deadline"], st
    # the pause's deadline passed long ago
    ddb = deployed.aws.client("dynamodb")
    table = deployed.outputs["history_table"]
    key = {"pk": {"S": "sample-api#dev"}, "sk": {"S": f"DEP#{st['deployment_id']}"}}
    ddb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET #state.#deadline = :t",
        ExpressionAttributeNames={"#state": "state", "#deadline": "deadline"},
        ExpressionAttributeValues={":t": {"S": "2020-01-01T00:00:00.000000Z"}},
    )
    late = run(project, deployed, "approve", "dev", "--no-input")
    assert late.returncode == 2, late.stderr
    line = late.stderr.strip().splitlines()[-1]
    assert "too late" in line and "rejected" in line and "changed nothing" in line, line
    assert deployed.weights() == {deployed.base: 100}
    assert status(project, deployed)["phase"] != "awaiting_approval"


def test_a_changed_secret_value_alone_reaches_traffic_and_leaves_no_trace(project, deployed):
    """The design's secrets path: each secret reaches the function as a reference pinned to the store's
    version (``STAGEFLOW_SECRET_<NAME>``), never its value; a value changed in the store (code unchanged)
    is a new pinned reference, so the next deploy publishes a new version through the canary; the
    function reads the value at run time; no value in output or files."""
    from tests.helpers.leakscan import scan_for_values

    values = ["pw-Zq8!x7#database-secret", "k3y-api-9f2c71d0e4", "host.internal-7731.example"]
    rotated = "pw-Rotated-44e1c9!database"
    sm, ssm = deployed.aws.client("secretsmanager"), deployed.aws.client("ssm")
    tag = os.urandom(3).hex()  # the shared emulator may hold secrets of an earlier run
    db = f"sample-api/dev/database-{tag}"
    sm.create_secret(Name=db, SecretString=json.dumps({"password": values[0], "user": "app"}))
    sm.create_secret(Name=f"sample-api/dev/api-key-{tag}", SecretString=values[1])
    ssm.put_parameter(Name=f"/sample-api/dev/api/host-{tag}", Value=values[2], Type="SecureString")
    cfg = project / "stageflow.toml"
    cfg.write_text(
        cfg.read_text() + "\n[environments.dev.secrets]\n"
        f'DB_PASSWORD = "secretsmanager:{db}#password"\n'
        f'API_KEY = "secretsmanager:sample-api/dev/api-key-{tag}"\n'
        f'API_HOST = "ssm:/sample-api/dev/api/host-{tag}"\n'
    )
    r = run(project, deployed, "--json", "deploy", "dev")
    assert r.returncode == 0, r.stderr[-3000:]
    stages = {s["name"]: s for s in json.loads(r.stdout)["stages"]}
    assert stages["secrets"]["ok"] and "API_HOST, API_KEY, DB_PASSWORD" in stages["secrets"]["summary"]
    first_version = next(iter(deployed.weights()))
    variables = deployed.lam().get_function_configuration(
        FunctionName=deployed.function, Qualifier=first_version
    )["Environment"]["Variables"]
    refs = {k: v for k, v in variables.items() if k.startswith("STAGEFLOW_SECRET_")}
    assert set(refs) == {f"STAGEFLOW_SECRET_{n}" for n in ("DB_PASSWORD", "API_KEY", "API_HOST")}
    assert "DB_PASSWORD" not in variables and not any(v in json.dumps(variables) for v in values)
    # only the value changes in the store: a new pinned reference, a new version through the canary
    sm.put_secret_value(SecretId=db, SecretString=json.dumps({"password": rotated, "user": "app"}))
    second_version = deployed.next_version()
    r2 = run(project, deployed, "--json", "deploy", "dev")
    assert r2.returncode == 0, r2.stderr[-3000:]
    canary_stage = {s["name"]: s for s in json.loads(r2.stdout)["stages"]}["canary"]
    assert canary_stage["data"]["published"] is True and canary_stage["data"]["version"] == second_version
    variables2 = deployed.lam().get_function_configuration(
        FunctionName=deployed.function, Qualifier=second_version
    )["Environment"]["Variables"]
    assert variables2["STAGEFLOW_SECRET_DB_PASSWORD"] != refs["STAGEFLOW_SECRET_DB_PASSWORD"]
    assert variables2["STAGEFLOW_SECRET_API_KEY"] == refs["STAGEFLOW_SECRET_API_KEY"]
    assert rotated not in json.dumps(variables2)
    assert deployed.weights() == {second_version: 100}
    st = run(project, deployed, "--json", "status", "dev")
    hist = run(project, deployed, "--json", "history", "dev")
    texts = {
        "deploy stdout": r.stdout + r2.stdout,
        "deploy stderr": r.stderr + r2.stderr,
        "status": st.stdout + st.stderr,
        "history": hist.stdout + hist.stderr,
    }
    hits = scan_for_values([project, deployed.state], texts, values + [rotated])
    # on failure, what came just before each hit (never the value itself)
    assert not hits, [(str(h), texts.get(h.where, "")[max(0, h.offset - 300) : h.offset]) for h in hits]


def test_production_through_codepipeline_steps(project, deployed):
    """deploy.yml: step 1 deploys with the pipeline's approval as the one before the canary, then each
    CodePipeline approval continues the paused canary: 10 % → 50 % → 100 %."""
    with_policy(project, APPROVALS, FAST_POLICY)
    change_code(project, "codepipeline")
    base, new = deployed.base, deployed.next_version()
    env = {"STAGEFLOW_PRE_APPROVED_BY": "codepipeline:ApprovalForProduction"}
    first = run(project, deployed, "--json", "deploy", "dev", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    st = status(project, deployed)
    assert st["phase"] == "awaiting_approval" and st["weights"] == {base: 90, new: 10}
    assert any("codepipeline:ApprovalForProduction" in t["reason"] for t in st["transitions"])
    second = run(project, deployed, "approve", "dev", "--no-input")
    assert second.returncode == 0, second.stderr
    assert deployed.weights() == {base: 50, new: 50}
    third = run(project, deployed, "--json", "approve", "dev", "--no-input")
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["phase"] == "succeeded"
    assert deployed.weights() == {new: 100}


def test_smoke_and_bounded_load_are_recorded_in_the_deployment(project, deployed):
    change_code(project, "smoke")
    assert run(project, deployed, "canary", "dev").returncode == 0
    smoke = run(project, deployed, "--json", "smoke", "dev")
    assert smoke.returncode == 0, smoke.stderr
    data = json.loads(smoke.stdout)  # the function through its alias, with [service] smoke's event
    assert (data["qualifier"], data["status"]) == ("live", "passed") and data["executed_version"]
    load = run(project, deployed, "--json", "load", "dev", "--users", "3", "--seconds", "3")
    assert load.returncode == 0, load.stderr
    res = json.loads(load.stdout)
    assert res["requests"] > 0 and res["users"] == 3 and res["error_rate"] == 0 and res["within_gates"]
    hist = json.loads(run(project, deployed, "--json", "history", "dev").stdout)["deployments"]
    assert hist[0]["deployment_id"] == res["deployment_id"]
    assert hist[0]["extra"]["load"]["requests"] == res["requests"]
    bad = run(project, deployed, "load", "dev", "--users", "5000")  # 1..1000
    assert bad.returncode == 2 and "5000" in bad.stderr
    down = run(project, deployed, "smoke", "dev", "--url", "http://127.0.0.1:9")
    assert down.returncode == 3 and down.stderr.startswith("stageflow: error: smoke:")
