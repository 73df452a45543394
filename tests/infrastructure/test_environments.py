"""Environment roots: the design's per-environment settings, backend, outputs contract."""

from __future__ import annotations

import pytest

from stageflow.outputs import REQUIRED
from tests.infrastructure.hcl import ENVIRONMENTS, INFRA, REPO, attr, blocks, clean, load_dir, load_vars

# REQUIREMENTS.md, "Environments": memory, retention, X-Ray, alerts, daily quota.
DESIGN = {
    "dev": {"memory": 256, "retention": 14, "xray": False, "email": False, "quota": 50},
    "staging": {"memory": 512, "retention": 30, "xray": True, "email": True, "quota": 100},
    "prod": {"memory": 512, "retention": 90, "xray": True, "email": True, "quota": 200},
}
# module argument <- root expression (the parameter file's names, and every function: var.functions)
WIRING = {
    "service_name": "var.service_name",
    "package_path": "var.package_path",
    "rollback_package_path": "var.rollback_package_path",
    "runtime": "var.runtime",
    "architectures": "var.architectures",
    "functions": "var.functions",
    "log_retention_days": "var.log_retention_days",
    "xray_enabled": "var.enable_xray_tracing",
    "daily_quota_limit": "var.daily_quota_limit",
    "alert_email": "var.alert_email",
    "environment": "var.environment",
    "canary_traffic_percent": "var.canary_traffic_percent",
    "advanced_security": "var.enable_advanced_security",
    "api_version_stage": "var.api_version_stage",
}
# what describes the service: stageflow.toml's, never in a parameter file
FROM_STAGEFLOW_TOML = (
    "service_name",
    "region",
    "package_path",
    "rollback_package_path",
    "runtime",
    "architectures",
    "log_retention_days",
    "enable_xray_tracing",
    "functions",
    "lambda_memory_size",
)


@pytest.fixture(params=ENVIRONMENTS)
def env(request):
    return request.param


def _root(env):
    return INFRA / "environments" / env


def test_parameter_file_keeps_infrastructure_only(env):
    tfvars = load_vars(_root(env) / "terraform.tfvars")
    want = DESIGN[env]
    assert tfvars["environment"] == env
    assert tfvars["daily_quota_limit"] == want["quota"]
    assert bool(tfvars.get("alert_email")) is want["email"]
    for name in ("api_version_stage", "enable_advanced_security"):
        assert name in tfvars
    if env == "prod":
        assert tfvars["canary_traffic_percent"] == 10
    assert not set(tfvars) & set(FROM_STAGEFLOW_TOML), "service settings belong in stageflow.toml"


def test_stageflow_toml_gives_the_root_the_designs_settings(env):
    """The design's memory, retention and X-Ray reach the root from stageflow.toml (the generated
    variables file), and the root declares every variable stageflow writes."""
    from stageflow.config import load
    from stageflow.terraform.variables import declared_variables, service_variables

    cfg = load(REPO / "stageflow.toml")
    values = service_variables(cfg, env, _root(env))
    want = DESIGN[env]
    (function,) = values["functions"].values()
    assert function["memory_size"] == want["memory"]
    assert values["log_retention_days"] == want["retention"]
    assert values["enable_xray_tracing"] is want["xray"]
    assert (_root(env) / values["package_path"]).resolve() == REPO / "build" / "lambda" / "sample-api.zip"
    assert set(values) <= declared_variables(_root(env))


def test_root_wires_the_settings_into_the_service_module(env):
    cfg = load_dir(_root(env))
    service = cfg.modules["service"]
    assert attr(service, "source") == "../../modules/service"
    for argument, expression in WIRING.items():
        assert attr(service, argument) == f"${{{expression}}}", argument
        if expression.startswith("var."):
            assert expression[4:] in cfg.variables, expression


def test_root_calls_the_services_own_terraform(env):
    """infrastructure/service: one module every environment root includes, with the function's role."""
    cfg = load_dir(_root(env))
    resources = cfg.modules["resources"]
    assert attr(resources, "source") == "../../service"
    assert attr(resources, "function_role_name") == "${module.service.function_role_name}"
    assert attr(resources, "function_name") == "${module.service.function_name}"
    assert attr(resources, "function_names") == "${module.service.function_names}"
    assert attr(resources, "service_name") == "${var.service_name}"
    assert attr(resources, "environment") == "${var.environment}"
    assert attr(cfg.outputs["service_resources"], "value") == "${module.resources.outputs}"
    own = load_dir(INFRA / "service")
    assert set(own.variables) == {
        "service_name",
        "environment",
        "function_name",
        "function_names",
        "function_role_name",
    }
    assert "outputs" in own.outputs


def test_root_takes_any_number_of_functions_and_outputs_them(env):
    """No "exactly one" validation any more; the root outputs every function (the contract's functions)."""
    cfg = load_dir(_root(env))
    assert not blocks(cfg.variables["functions"], "validation")
    assert attr(cfg.outputs["functions"], "value") == "${module.service.functions}"
    assert attr(cfg.outputs["function_name"], "value") == "${module.service.function_name}"


def test_root_refuses_another_environments_parameter_file(env):
    cfg = load_dir(_root(env))
    (validation,) = blocks(cfg.variables["environment"], "validation")
    assert attr(validation, "condition") == f'${{var.environment == "{env}"}}'


def test_outputs_contract_present(env):
    cfg = load_dir(_root(env))
    for name in REQUIRED:
        assert name in cfg.outputs, f"{env}: missing output {name}"
        want = f"${{module.service.{name}}}"
        if name == "alarm_names":  # the service's alarms and the front door's (modules/front_door)
            want = "${concat(module.service.alarm_names,module.front_door.alarm_names)}"
        assert attr(cfg.outputs[name], "value").replace(" ", "") == want


def test_backend_is_s3_with_locking_and_encryption(env):
    cfg = load_dir(_root(env))
    backends = [b for t in cfg.terraform for b in blocks(t, "backend")]
    assert len(backends) == 1 and [clean(k) for k in backends[0] if not k.startswith("__")] == ["s3"]
    backend = load_vars(_root(env) / "backend.hcl")
    assert set(backend) >= {"bucket", "key", "region", "dynamodb_table", "encrypt"}
    assert backend["key"] == f"sample-api/{env}/terraform.tfstate"
    assert backend["encrypt"] is True


def test_state_keys_differ_per_environment():
    keys = {load_vars(_root(e) / "backend.hcl")["key"] for e in ENVIRONMENTS}
    assert len(keys) == len(ENVIRONMENTS)


def test_roots_accept_terraform_1_0():
    for path in sorted(INFRA.rglob("*.tf")):
        text = path.read_text(encoding="utf-8")
        for newer in ("terraform_data", "optional(", "import {", "moved {", "check {", "removed {"):
            assert newer not in text, f"{path}: {newer} needs a Terraform newer than 1.0"


def test_state_module_bucket_and_lock_table():
    cfg = load_dir(INFRA / "modules" / "state")
    lock = cfg.resource("aws_dynamodb_table", "lock")
    assert attr(lock, "hash_key") == "LockID"
    assert [attr(a, "type") for a in blocks(lock, "attribute")] == ["S"]
    versioning = cfg.resource("aws_s3_bucket_versioning", "state")
    assert attr(blocks(versioning, "versioning_configuration")[0], "status") == "Enabled"
    sse = cfg.resource("aws_s3_bucket_server_side_encryption_configuration", "state")
    default = blocks(blocks(sse, "rule")[0], "apply_server_side_encryption_by_default")[0]
    assert attr(default, "sse_algorithm") == "aws:kms"
    pab = cfg.resource("aws_s3_bucket_public_access_block", "state")
    assert all(
        attr(pab, f) is True
        for f in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    )
