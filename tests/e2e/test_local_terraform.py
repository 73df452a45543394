"""Local mode with the hashicorp/aws provider available: the real environment root is applied to the
emulator by Terraform (STAGEFLOW_LOCAL_TERRAFORM=1), and the canary runs on what it built."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.emulator, pytest.mark.terraform]
REPO = Path(__file__).resolve().parents[2]
MIRROR_AWS = REPO / ".tools" / "terraform" / "mirror" / "registry.terraform.io" / "hashicorp" / "aws"


def run(project, state, *args, env=None):
    e = dict(os.environ, STAGEFLOW_STATE_DIR=str(state), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "stageflow", "--config", str(project / "stageflow.toml"), "--local", *args],
        env=e,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_terraform_builds_the_dev_environment_in_the_emulator(project, emulator_state, aws):
    if not any(MIRROR_AWS.glob("*/*/terraform-provider-aws_*")):
        # No registry ships the AWS provider; machines without it use the local provisioner.
        pytest.skip("hashicorp/aws provider is not in the offline mirror (.tools/terraform/mirror)")
    r = run(project, emulator_state, "--json", "deploy", "dev", env={"STAGEFLOW_LOCAL_TERRAFORM": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    stages = {s["name"]: s for s in json.loads(r.stdout)["stages"]}
    infra = stages["infrastructure"]
    assert infra["summary"].startswith("terraform: 33 to create") and infra["data"]["applied"] is True
    assert infra["data"]["source"] == "terraform" and len(infra["data"]["alarm_names"]) >= 6
    assert not (project / "infrastructure" / "environments" / "dev" / "stageflow_local_override.tf").exists()
    # a second deploy with nothing changed is a no-op: no Terraform change, no version, no re-scan
    again = run(project, emulator_state, "--json", "deploy", "dev", env={"STAGEFLOW_LOCAL_TERRAFORM": "1"})
    assert again.returncode == 0, again.stderr[-3000:]
    st2 = {s["name"]: s for s in json.loads(again.stdout)["stages"]}
    assert st2["infrastructure"]["summary"].startswith("terraform: no changes")
    assert st2["infrastructure"]["data"]["applied"] is False
    assert st2["canary"]["summary"].startswith("nothing to deploy")
    assert {"bandit", "checkov", "secrets"} <= set(st2["security"]["data"]["cached"])
    # the secrets stage merges values into the function's environment: Terraform leaves them alone
    lam = aws.client("lambda")
    env_vars = lam.get_function_configuration(FunctionName="sample-api-dev")["Environment"]["Variables"]
    lam.update_function_configuration(
        FunctionName="sample-api-dev", Environment={"Variables": {**env_vars, "MERGED_BY_DEPLOY": "x"}}
    )
    d = run(project, emulator_state, "drift", "dev", env={"STAGEFLOW_LOCAL_TERRAFORM": "1"})
    assert d.returncode == 0, d.stdout[-2000:] + d.stderr[-2000:]
    # the function Terraform built serves the app; a code change then goes out as a canary on it
    (project / "app" / "service" / "mark.py").write_text("MARK = 1\n")
    c = run(project, emulator_state, "--json", "canary", "dev")
    assert c.returncode == 0, c.stderr[-2000:]
    assert json.loads(c.stdout)["phase"] == "succeeded"
    st = json.loads(run(project, emulator_state, "--json", "status", "dev").stdout)
    assert st["resources"] == "terraform" and st["weights"] == {"2": 100}
    alarms = aws.client("cloudwatch").describe_alarms(AlarmNamePrefix="sample-api-error-rate-dev")[
        "MetricAlarms"
    ]
    assert alarms and alarms[0]["Metrics"]  # the metric-math error-rate alarm exists in the emulator
