"""The generated local backend pins every endpoint; the child environment is ours alone."""

from __future__ import annotations

import re

import pytest

from stageflow.errors import LocalGuardError
from stageflow.terraform.backend import local_backend_hcl, verify_local_backend
from stageflow.terraform.env import build_env
from stageflow.terraform.version import TerraformVersion

EP = "http://127.0.0.1:4566"
KW = dict(endpoint=EP, bucket="b", table="t", key="svc/dev/terraform.tfstate", region="us-east-1")


def test_local_backend_on_1_0_sets_every_flat_endpoint():
    text = local_backend_hcl(**KW, version=TerraformVersion(1, 0, 3))
    for key in ("endpoint", "dynamodb_endpoint", "iam_endpoint", "sts_endpoint"):
        assert re.search(rf'^{key} = "{re.escape(EP)}"$', text, re.M), key
    assert "force_path_style = true" in text
    assert "endpoints" not in text and "use_path_style" not in text
    for flag in ("skip_credentials_validation", "skip_metadata_api_check", "skip_region_validation"):
        assert re.search(rf"^{flag}\s+= true$", text, re.M)
    assert 'dynamodb_table = "t"' in text and 'bucket         = "b"' in text


def test_local_backend_on_1_6_and_later_uses_the_endpoints_block():
    text = local_backend_hcl(**KW, version=TerraformVersion(1, 11, 4))
    assert (
        f'endpoints = {{ s3 = "{EP}", dynamodb = "{EP}", iam = "{EP}", sts = "{EP}", sso = "{EP}" }}' in text
    )
    assert "use_path_style              = true" in text
    assert "skip_requesting_account_id  = true" in text
    assert "force_path_style" not in text and not re.search(r"^endpoint =", text, re.M)
    assert "access_key" not in text and "secret_key" not in text  # dummy creds go in the env only


@pytest.mark.parametrize(
    "endpoint", ["https://s3.amazonaws.com", "http://192.0.2.1:4566", "", "http://127.0.0.1"]
)
def test_local_backend_refuses_anything_but_the_emulator(endpoint):
    with pytest.raises(LocalGuardError):
        local_backend_hcl(**{**KW, "endpoint": endpoint}, version=TerraformVersion(1, 0, 3))


def test_verify_catches_a_missing_endpoint():
    text = local_backend_hcl(**KW, version=TerraformVersion(1, 0, 3))
    with pytest.raises(LocalGuardError):
        verify_local_backend(text.replace(f'sts_endpoint = "{EP}"\n', ""), EP)
    with pytest.raises(LocalGuardError):
        verify_local_backend(text.replace("force_path_style = true\n", ""), EP)


CALLER = {
    "PATH": "/usr/bin",
    "HOME": "/root",
    "TF_LOG": "TRACE",
    "TF_LOG_PATH": "/tmp/x",
    "TF_WORKSPACE": "prod",
    "TF_VAR_db_password": "from-the-shell",
    "TF_CLI_ARGS": "-var=x=1",
    "TF_CLI_ARGS_apply": "-auto-approve",
    "TF_CLI_CONFIG_FILE": "/root/.terraformrc",
    "TF_DATA_DIR": "/elsewhere",
    "AWS_ACCESS_KEY_ID": "AKIAREALKEY",
    "AWS_SECRET_ACCESS_KEY": "real-secret",
    "AWS_PROFILE": "prod-admin",
}


def test_env_drops_what_the_caller_set_and_forces_automation():
    env = build_env(CALLER, cli_config="/tools/terraformrc", data_dir="/w/.terraform")
    for gone in (
        "TF_LOG",
        "TF_LOG_PATH",
        "TF_WORKSPACE",
        "TF_VAR_db_password",
        "TF_CLI_ARGS",
        "TF_CLI_ARGS_apply",
    ):
        assert gone not in env
    assert env["TF_IN_AUTOMATION"] == "1" and env["TF_INPUT"] == "0" and env["CHECKPOINT_DISABLE"] == "1"
    assert env["TF_CLI_CONFIG_FILE"] == "/tools/terraformrc"
    assert env["TF_DATA_DIR"] == "/w/.terraform"
    assert env["PATH"] == "/usr/bin"
    assert env["AWS_PROFILE"] == "prod-admin"  # outside local mode the caller's AWS identity is used


def test_env_accepts_extra_from_us():
    env = build_env(CALLER, cli_config="c", extra={"TF_VAR_db_password": "from-secrets", "TF_LOG": "WARN"})
    assert env["TF_VAR_db_password"] == "from-secrets"
    assert env["TF_LOG"] == "WARN"


def test_env_in_local_mode_replaces_every_aws_variable():
    local = {
        "AWS_ACCESS_KEY_ID": "dummy",
        "AWS_SECRET_ACCESS_KEY": "dummy2",
        "AWS_PROFILE": "",
        "AWS_REGION": "us-east-1",
    }
    env = build_env(CALLER, cli_config="c", local_env=local, extra={"AWS_ACCESS_KEY_ID": "AKIAREALKEY"})
    assert env["AWS_ACCESS_KEY_ID"] == "dummy"
    assert env["AWS_SECRET_ACCESS_KEY"] == "dummy2"
    assert "AWS_PROFILE" not in env
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert env["AWS_CONFIG_FILE"] == env["AWS_SHARED_CREDENTIALS_FILE"] == "/dev/null"
