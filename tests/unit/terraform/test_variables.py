"""The service's Terraform values come from stageflow.toml: the generated variables file, exactly."""

from __future__ import annotations

import json
from pathlib import Path

from stageflow.config import load
from stageflow.report import Reporter
from stageflow.terraform.api import TerraformEndpoint, TerraformService
from stageflow.terraform.variables import (
    VAR_FILE,
    declared_variables,
    root_variables,
    service_variables,
    write_var_file,
)
from tests.conftest import REPO
from tests.unit.terraform.test_service import FakeRun, _project, _service


class PlanRun(FakeRun):
    """Also writes the plan file ``-out=`` names, as Terraform does."""

    def __call__(self, argv, **kwargs):
        for a in map(str, argv):
            if a.startswith("-out="):
                Path(a[5:]).write_bytes(b"plan")
        return super().__call__(argv, **kwargs)


CONFIG = """
[service]
name = "orders-api"
region = "eu-west-1"
source = "src"
handler = "orders.api.handler"
runtime = "python3.12"
architecture = "arm64"
timeout_s = 20

[environments.dev]
memory_mb = 384
log_retention_days = 7
xray = true

[environments.dev.environment]
LOG_LEVEL = "debug"
TABLE = "orders-api-orders-dev"

[environments.dev.secrets]
API_TOKEN = "ssm:/orders/token"

[environments.prod]
timeout_s = 25
"""


def _config(tmp_path: Path, text: str = CONFIG):
    (tmp_path / "stageflow.toml").write_text(text)
    return load(tmp_path / "stageflow.toml")


def test_every_service_value_comes_from_stageflow_toml(tmp_path):
    cfg = _config(tmp_path)
    root = tmp_path / "infrastructure" / "environments" / "dev"
    assert service_variables(cfg, "dev", root) == {
        "service_name": "orders-api",
        "region": "eu-west-1",
        "package_path": "../../../build/lambda/orders-api.zip",
        "rollback_package_path": "../../../build/lambda/stageflow-rollback.zip",
        "runtime": "python3.12",
        "architectures": ["arm64"],
        "log_retention_days": 7,
        "enable_xray_tracing": True,
        "api_throttle_rate_limit": 1000,
        "api_throttle_burst_limit": 2000,
        "api_cache_ttl_seconds": 0,
        "http_function": "",
        "functions": {
            "orders-api": {
                "handler": "orders.api.handler",
                "memory_size": 384,
                "timeout_seconds": 20,
                "environment": {"LOG_LEVEL": "debug", "TABLE": "orders-api-orders-dev"},
            }
        },
    }


def test_environment_overrides_and_the_designs_defaults(tmp_path):
    cfg = _config(tmp_path)
    prod = service_variables(cfg, "prod", tmp_path)
    fn = prod["functions"]["orders-api"]
    assert (fn["memory_size"], fn["timeout_seconds"], fn["environment"]) == (512, 25, {})
    assert (prod["log_retention_days"], prod["enable_xray_tracing"]) == (90, True)
    assert service_variables(cfg, "staging", tmp_path)["functions"]["orders-api"]["timeout_seconds"] == 20


def test_secrets_never_reach_the_variables_file(tmp_path):
    cfg = _config(tmp_path)
    text = json.dumps(service_variables(cfg, "dev", tmp_path))
    assert "API_TOKEN" not in text and "ssm:" not in text


def test_only_what_the_root_declares_is_written(tmp_path):
    cfg = _config(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.tf").write_text('variable "service_name" {}\n  variable "runtime" {\n}\nvariable "x" {}\n')
    (root / "b.tf").write_text('# variable "region" {}\nlocals { y = "variable \\"handler\\"" }\n')
    assert declared_variables(root) == {"service_name", "runtime", "x"}
    assert root_variables(cfg, "dev", root) == {"service_name": "orders-api", "runtime": "python3.12"}


def test_write_var_file_is_json_sorted_and_rewritten_only_on_change(tmp_path):
    path = write_var_file(tmp_path, {"b": 1, "a": {"z": "1", "y": "2"}})
    assert path == tmp_path / VAR_FILE
    assert json.loads(path.read_text()) == {"a": {"y": "2", "z": "1"}, "b": 1}
    assert path.read_text().index('"a"') < path.read_text().index('"b"')
    mtime = path.stat().st_mtime_ns
    write_var_file(tmp_path, {"a": {"y": "2", "z": "1"}, "b": 1})
    assert path.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [VAR_FILE]


def test_plan_passes_the_generated_file_after_the_roots_own(tmp_path):
    """Later -var-file values win: stageflow.toml's values beat a stale one left in terraform.tfvars."""
    root = tmp_path / "infra"
    root.mkdir()
    (root / "main.tf").write_text(
        'terraform {\n  backend "s3" {}\n}\nvariable "service_name" {}\nvariable "functions" {}\n'
    )
    (root / "backend.hcl").write_text('bucket = "b"\n')
    (root / "terraform.tfvars").write_text('service_name = "sample-api"\n')
    (tmp_path / "stageflow.toml").write_text(
        CONFIG.replace("[environments.dev]\n", '[environments.dev]\nterraform = { root = "infra" }\n')
    )
    run = PlanRun()
    service = TerraformService(
        config=load(tmp_path / "stageflow.toml"),
        state_dir=tmp_path / "state",
        endpoint=lambda: TerraformEndpoint("aws"),
        reporter=Reporter(quiet=True),
        run=run,
        binary=lambda: "/opt/tf/terraform",
        environ={"PATH": "/bin"},
    )
    service.plan("dev")
    argv, _cwd, env = run.sub("plan")
    var_files = [a.split("=", 1)[1] for a in argv if a.startswith("-var-file=")]
    assert var_files[0] == str(root.resolve() / "terraform.tfvars")
    generated = Path(var_files[1])
    assert len(var_files) == 2 and generated.name == VAR_FILE
    assert generated.parent == Path(env["TF_DATA_DIR"]).parent  # the environment's working directory
    values = json.loads(generated.read_text())
    assert set(values) == {"service_name", "functions"} and values["service_name"] == "orders-api"
    assert not any(k.startswith("TF_VAR_") for k in env)  # plain values: the file, not the environment


def test_a_root_that_declares_none_of_them_gets_no_file(tmp_path):
    _project(tmp_path)
    run = PlanRun()
    _service(tmp_path, TerraformEndpoint("aws"), run, {"PATH": "/bin"}).plan("dev")
    argv, _cwd, _env = run.sub("plan")
    assert not [a for a in argv if a.startswith("-var-file=")]


def test_every_function_of_a_service_with_several_reaches_terraform():
    orders = Path(__file__).resolve().parents[2] / "fixtures/services/orders/stageflow.toml"
    cfg = load(orders)
    root = cfg.root / "infrastructure" / "environments" / "dev"
    values = service_variables(cfg, "dev", root)
    assert values["functions"] == {
        "api": {
            "handler": "orders.api.handler",
            "memory_size": 256,
            "timeout_seconds": 10,
            "environment": {"GREETING": "hello from orders", "LOG_LEVEL": "DEBUG", "STAGE": "dev"},
        },
        "worker": {
            "handler": "orders.worker.handler",
            "memory_size": 512,
            "timeout_seconds": 30,
            "environment": {"BATCH_SIZE": "10", "LOG_LEVEL": "DEBUG", "STAGE": "dev"},
        },
    }
    assert (values["runtime"], values["service_name"]) == ("python3.12", "orders")
    # staging: no [environments.staging]: the functions keep their own memory, the environment's variables
    # are none
    staging = service_variables(cfg, "staging", root)["functions"]
    assert staging["api"]["environment"] == {"GREETING": "hello from orders"}
    assert staging["worker"]["memory_size"] == 512


def test_the_front_door_invokes_the_configured_http_function(tmp_path):
    """[service] http_function reaches the roots (their front door invokes that function's alias)."""
    text = CONFIG.replace('handler = "orders.api.handler"\n', "", 1)
    text += '\n[functions.api]\nhandler = "orders.api.handler"\n'
    text += '[functions.worker]\nhandler = "orders.worker.run"\n'
    text = text.replace("[service]\n", '[service]\nhttp_function = "worker"\n', 1)
    cfg = _config(tmp_path, text)
    assert service_variables(cfg, "dev", tmp_path)["http_function"] == "worker"
    for env in ("dev", "staging", "prod"):
        root = REPO / "infrastructure" / "environments" / env
        assert "http_function" in declared_variables(root), env
        main = (root / "main.tf").read_text(encoding="utf-8")
        assert "module.service.function_arns[var.http_function]" in main, env


def test_values_under_a_secrets_name_in_the_state_are_redacted_before_a_plan_prints(tmp_path):
    """An older stageflow merged a secret's value into the function's environment: the function no
    longer has it, the state still does, and the plan's refresh note would print it."""
    from stageflow.redact import REDACTOR
    from stageflow.terraform.api import _redact_state_secrets

    legacy, plain = "legacy-state-value-5e1f", "plain-log-level-debug"  # pragma: allowlist secret
    env = {"variables": {"API_TOKEN": legacy, "LOG_LEVEL": plain}}
    state = {
        "resources": [{"type": "aws_lambda_function", "instances": [{"attributes": {"environment": [env]}}]}]
    }
    tf = type("Tf", (), {"state_pull": lambda self: state})()
    _redact_state_secrets(tf, _config(tmp_path), "dev")  # dev references API_TOKEN
    assert legacy not in REDACTOR.redact(f"- API_TOKEN = {legacy}")
    assert plain in REDACTOR.redact(f"LOG_LEVEL = {plain}")  # plain variables are not secrets


def test_the_targets_own_variables_follow_stageflow_tomls_where_the_root_declares_them(tmp_path):
    """The terraform-endpoint seam's ``variables`` (the emulator: no FIS extension layer) go into the
    generated file, over stageflow.toml's, and only for a root that declares them."""
    root = tmp_path / "infra"
    root.mkdir()
    (root / "main.tf").write_text(
        'terraform {\n  backend "s3" {}\n}\nvariable "service_name" {}\nvariable "fis_extension_layer" {}\n'
    )
    (root / "backend.hcl").write_text('bucket = "b"\n')
    (tmp_path / "stageflow.toml").write_text(
        CONFIG.replace("[environments.dev]\n", '[environments.dev]\nterraform = { root = "infra" }\n')
    )
    run = PlanRun()
    own = {"fis_extension_layer": False, "not_declared": 1}
    TerraformService(
        config=load(tmp_path / "stageflow.toml"),
        state_dir=tmp_path / "state",
        endpoint=lambda: TerraformEndpoint("local", variables=own),
        reporter=Reporter(quiet=True),
        run=run,
        binary=lambda: "/opt/tf/terraform",
        environ={"PATH": "/bin"},
    ).plan("dev")
    argv, _cwd, _env = run.sub("plan")
    (generated,) = [Path(a.split("=", 1)[1]) for a in argv if a.startswith("-var-file=")]
    assert json.loads(generated.read_text()) == {"service_name": "orders-api", "fis_extension_layer": False}


def test_the_emulators_terraform_endpoint_attaches_no_fis_layer_and_reaches_fis():
    from stageflow.terraform.local_provider import AWS_ENDPOINTS, EMULATOR_VARIABLES, override_hcl

    assert EMULATOR_VARIABLES == {"fis_extension_layer": False}
    assert "fis" in AWS_ENDPOINTS and '    fis = "http://127.0.0.1:5000"' in override_hcl(
        "http://127.0.0.1:5000", "us-east-1"
    )
    staging = REPO / "infrastructure" / "environments" / "staging"
    assert "fis_extension_layer" in declared_variables(staging)
    assert not any("fis_extension_layer" in declared_variables(REPO / "infrastructure" / "environments" / e)
                   for e in ("dev", "prod"))  # fmt: skip
