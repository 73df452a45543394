"""From stageflow.toml alone: a service that is not sample-api, on python3.12, applied by Terraform on
the emulator with the repository's environment roots untouched (no tfvars edits). The function read
back equals stageflow.toml; then the secrets stage writes a changed plain variable and finds nothing
else different."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import REPO, make_project, require, run_cli

pytestmark = [pytest.mark.terraform, pytest.mark.emulator, pytest.mark.timeout(1200)]

CONFIG = """
[service]
name = "orders-api"
region = "us-east-1"
source = "app"
handler = "service.handler.handler"
runtime = "python3.12"
timeout_s = 20

[environments.dev]
memory_mb = 384
log_retention_days = 7
xray = true

[environments.dev.environment]
LOG_LEVEL = "info"
ORDERS_TABLE = "orders-api-orders-dev"
"""


def test_function_is_configured_from_stageflow_toml_alone(tmp_path):
    from stageflow.aws import AwsClients, AwsTarget
    from stageflow.local.emulator import Emulator

    mirror_aws = REPO / ".tools" / "terraform" / "mirror" / "registry.terraform.io" / "hashicorp" / "aws"
    require(
        any(mirror_aws.glob("*/*/terraform-provider-aws_*")), "hashicorp/aws is not in the offline mirror"
    )
    project = make_project(tmp_path / "project")
    (project / "stageflow.toml").write_text(CONFIG)
    state = tmp_path / "state"
    emu = Emulator(state)
    status, _ = emu.up()
    try:
        r = run_cli(
            "--config",
            str(project / "stageflow.toml"),
            "--local",
            "--json",
            "apply",
            "dev",
            env={"STAGEFLOW_STATE_DIR": str(state)},
            timeout=900,
        )
        assert r.returncode == 0, r.stderr[-4000:]
        # the roots were not edited: the service's values came from the generated variables file
        diff = subprocess.run(
            ["git", "-C", str(project), "status", "--porcelain", "--", "infrastructure"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert diff.stdout == ""
        outputs = json.loads((state / "outputs" / "local-dev.json").read_text())["outputs"]
        assert outputs["function_name"] == "orders-api-dev"
        aws = AwsClients(AwsTarget("us-east-1", True, status.endpoint))
        lam = aws.client("lambda")
        fn = lam.get_function_configuration(FunctionName="orders-api-dev")
        assert fn["Handler"] == "service.handler.handler"
        assert fn["Runtime"] == "python3.12"
        assert fn["Architectures"] == ["x86_64"]
        assert (fn["MemorySize"], fn["Timeout"]) == (384, 20)
        assert fn["TracingConfig"]["Mode"] == "Active"
        assert fn["Environment"]["Variables"] == {
            "SERVICE_NAME": "orders-api",
            "ENVIRONMENT": "dev",
            "PARAMETER_PREFIX": "/orders-api/dev",
            "LOG_LEVEL": "info",
            "ORDERS_TABLE": "orders-api-orders-dev",
        }
        logs = aws.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/orders-api-dev")
        assert [g["retentionInDays"] for g in logs["logGroups"]] == [7]
        published = lam.list_versions_by_function(FunctionName="orders-api-dev")["Versions"]
        v1 = next(v for v in published if v["Version"] == "1")
        assert v1["Environment"]["Variables"]["LOG_LEVEL"] == "info"  # the first version has them

        _secrets_stage_ships_a_changed_variable(project, state, lam)
    finally:
        emu.down()


def _secrets_stage_ships_a_changed_variable(project, state, lam) -> None:
    from types import SimpleNamespace

    from stageflow.factory import Factory
    from stageflow.function_config import wanted
    from stageflow.pipeline import stage_secrets
    from stageflow.report import Reporter

    (project / "stageflow.toml").write_text(CONFIG.replace('LOG_LEVEL = "info"', 'LOG_LEVEL = "debug"'))
    factory = Factory(
        config_path=project / "stageflow.toml",
        local=True,
        state_dir=state,
        reporter=Reporter(quiet=True),
        command="deploy",
    )
    said: list[str] = []
    from stageflow.outputs import FunctionTarget

    target = FunctionTarget("orders", "orders-api-dev", "live")
    infra = SimpleNamespace(
        outputs=SimpleNamespace(function_name=target.function_name, functions=(target,)), secrets={}
    )
    res = stage_secrets(factory.secret_store, infra, wanted(factory.config, "dev"), say=said.append)
    assert said == [] and res.differs == ()
    assert res.variables == ("LOG_LEVEL", "ORDERS_TABLE")
    live = lam.get_function_configuration(FunctionName="orders-api-dev")
    assert live["Environment"]["Variables"]["LOG_LEVEL"] == "debug"
    serving = lam.get_function_configuration(FunctionName="orders-api-dev", Qualifier="1")
    from stageflow.deploy.publish import differences

    assert differences(serving, live) == ("environment (LOG_LEVEL)",)  # the publisher ships it
