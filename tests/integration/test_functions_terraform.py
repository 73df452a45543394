"""Several functions, one environment (issue 23 item 2), with real Terraform on the emulator:

- the orders fixture (two functions, api and worker) applies from its stageflow.toml alone and each
  function read back matches it (handler, runtime, memory, timeout, environment merged with the
  environment's); ``terraform output`` names both; the rollback function knows both;
- an environment built with one function before the for_each (the module at commit ``BEFORE``) plans,
  after the change, with no function replaced: only the moves (and the rollback function's new
  ``STAGEFLOW_FUNCTIONS`` variable)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile

import pytest

from tests.conftest import REPO, make_project, require, run_cli

pytestmark = [pytest.mark.terraform, pytest.mark.emulator, pytest.mark.timeout(1500)]
ORDERS = REPO / "tests" / "fixtures" / "services" / "orders"
BEFORE = "d672c99"  # main before the for_each: one function at module.service.aws_lambda_function.service


def _require_mirror() -> None:
    mirror_aws = REPO / ".tools" / "terraform" / "mirror" / "registry.terraform.io" / "hashicorp" / "aws"
    require(
        any(mirror_aws.glob("*/*/terraform-provider-aws_*")), "hashicorp/aws is not in the offline mirror"
    )


def _copy_infrastructure(dst) -> None:
    skip = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl")
    shutil.copytree(REPO / "infrastructure", dst / "infrastructure", ignore=skip)


def _orders_project(dst):
    dst.mkdir(parents=True)
    shutil.copytree(ORDERS, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
    shutil.copytree(
        REPO / "infrastructure", dst / "infrastructure", ignore=shutil.ignore_patterns(".terraform")
    )
    shutil.copy(REPO / ".gitignore", dst / ".gitignore")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(dst)], check=True)
    subprocess.run([*git, "-C", str(dst), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(dst), "commit", "-qm", "orders"], check=True)
    return dst


def _cli(project, state, *args, timeout=900):
    return run_cli(
        "--config",
        str(project / "stageflow.toml"),
        "--local",
        "--json",
        *args,
        env={"STAGEFLOW_STATE_DIR": str(state)},
        timeout=timeout,
    )


def test_orders_two_functions_from_stageflow_toml_alone(tmp_path):
    from stageflow.aws import AwsClients, AwsTarget
    from stageflow.config import load
    from stageflow.function_config import wanted_all
    from stageflow.local.emulator import Emulator

    _require_mirror()
    project = _orders_project(tmp_path / "orders")
    state = tmp_path / "state"
    emu = Emulator(state)
    status, _ = emu.up()
    try:
        r = _cli(project, state, "apply", "dev")
        assert r.returncode == 0, r.stderr[-4000:]
        outputs = json.loads((state / "outputs" / "local-dev.json").read_text())["outputs"]
        functions = {f["key"]: f for f in outputs["functions"]}
        assert {k: (f["function_name"], f["alias_name"]) for k, f in functions.items()} == {
            "api": ("orders-api-dev", "live"),
            "worker": ("orders-worker-dev", "live"),
        }
        assert outputs["function_name"] == "orders-api-dev"  # the first (sorted keys)
        alarms = outputs["alarm_names"]
        assert "orders-api-errors-dev" in alarms and "orders-worker-throttles-dev" in alarms

        aws = AwsClients(AwsTarget("eu-west-1", True, status.endpoint))
        lam = aws.client("lambda")
        specs = wanted_all(load(project / "stageflow.toml"), "dev")
        for key, name in (("api", "orders-api-dev"), ("worker", "orders-worker-dev")):
            spec, fn = specs[key], lam.get_function_configuration(FunctionName=name)
            assert (fn["Handler"], fn["Runtime"]) == (spec.handler, "python3.12"), key
            assert (fn["MemorySize"], fn["Timeout"]) == (spec.memory_mb, spec.timeout_s), key
            assert fn["Environment"]["Variables"] == {
                "SERVICE_NAME": "orders",
                "ENVIRONMENT": "dev",
                "PARAMETER_PREFIX": "/orders/dev",
                **spec.environment,
            }, key
            assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"
            logs = aws.client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")
            assert [g["logGroupName"] for g in logs["logGroups"]] == [f"/aws/lambda/{name}"]
        assert specs["api"].environment == {
            "GREETING": "hello from orders",
            "LOG_LEVEL": "DEBUG",
            "STAGE": "dev",
        }
        assert specs["worker"].memory_mb == 512 and specs["api"].timeout_s == 10

        rollback = lam.get_function_configuration(FunctionName="orders-rollback-dev")["Environment"][
            "Variables"
        ]
        assert json.loads(rollback["STAGEFLOW_FUNCTIONS"]) == {
            "api": "orders-api-dev",
            "worker": "orders-worker-dev",
        }
        assert rollback["STAGEFLOW_FUNCTION_NAME"] == "orders-api-dev"

        # the root's own `terraform output` names both functions (what the outputs store read)
        again = _cli(project, state, "plan", "dev")
        assert again.returncode == 0, again.stderr[-3000:]
        assert json.loads(again.stdout)["changes"] is False  # applied once: a second plan is a no-op
    finally:
        emu.down()


def _old_infrastructure(project) -> None:
    """The environment roots and modules as they were before the for_each (commit BEFORE)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", BEFORE, "infrastructure"],
        capture_output=True,
    )
    require(archive.returncode == 0, f"commit {BEFORE} is not in this checkout's history")
    shutil.rmtree(project / "infrastructure")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(project, filter="data")


def test_an_environment_built_with_one_function_keeps_it(tmp_path):
    """The sample's dev applied with the old module, then planned with the for_each one: no function,
    alias, log group or alarm is created, replaced or destroyed (the moves carry them over)."""
    from stageflow.local.emulator import Emulator

    _require_mirror()
    project = make_project(tmp_path / "project")
    _old_infrastructure(project)
    state = tmp_path / "state"
    emu = Emulator(state)
    emu.up()
    try:
        r = _cli(project, state, "apply", "dev")
        assert r.returncode == 0, r.stderr[-4000:]
        shutil.rmtree(project / "infrastructure")
        shutil.copytree(
            REPO / "infrastructure", project / "infrastructure", ignore=shutil.ignore_patterns(".terraform")
        )
        plan = _cli(project, state, "plan", "dev")
        assert plan.returncode == 0, plan.stderr[-4000:]
        summary = json.loads(plan.stdout)["summary"]
        changes = {(c["address"], c["action"]) for c in summary["resources"]}
        assert (
            summary["totals"]["create"] == summary["totals"]["delete"] == summary["totals"]["replace"] == 0
        ), changes
        # the rollback function learns every function (STAGEFLOW_FUNCTIONS); nothing else changes
        assert {a for a, _ in changes} <= {"module.service.aws_lambda_function.rollback"}, changes
        if "state: moved" in plan.stderr:  # Terraform 1.0: moved in the state before the plan
            assert 'aws_lambda_function.service["sample-api"]' in plan.stderr
        r = _cli(project, state, "apply", "dev")
        assert r.returncode == 0, r.stderr[-4000:]
        outputs = json.loads((state / "outputs" / "local-dev.json").read_text())["outputs"]
        assert outputs["function_name"] == "sample-api-dev"
        assert [f["key"] for f in outputs["functions"]] == ["sample-api"]
    finally:
        emu.down()
