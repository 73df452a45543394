"""Local mode with the hashicorp/aws provider: point every AWS endpoint of the provider at the emulator.

Terraform merges ``*_override.tf`` files into the root module, so for the duration of a local plan or
apply stageflow writes ``stageflow_local_override.tf`` into the root with the emulator as the endpoint of
every service the provider may call, dummy credentials and no account lookup, and removes it afterwards.
The child environment also carries ``AWS_ENDPOINT_URL`` (the emulator) for any service not listed, and
the endpoint is checked to be on loopback before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

from stageflow.aws import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, check_local_endpoint

OVERRIDE_NAME = "stageflow_local_override.tf"
# Endpoint keys of the AWS provider (5.x) for every service the modules and the provider itself use.
AWS_ENDPOINTS = (
    "acm",
    "apigateway",
    "cloudformation",
    "cloudwatch",
    "cloudwatchevents",
    "cloudwatchlogs",
    "codebuild",
    "codepipeline",
    "codestarconnections",
    "codestarnotifications",
    "dynamodb",
    "ec2",
    "ecr",
    "events",
    "fis",
    "iam",
    "kms",
    "lambda",
    "logs",
    "s3",
    "secretsmanager",
    "sns",
    "sqs",
    "ssm",
    "sts",
)
# The emulator's values for root variables (the terraform-endpoint seam, docs/architecture.md): no
# Lambda layers there, so the FIS extension's layer is not attached (the staging root's chaos stage);
# the local runtime's fault hooks stand in for it.
EMULATOR_VARIABLES = {"fis_extension_layer": False}
_AWS_PROVIDER = re.compile(r'provider\s+"aws"|hashicorp/aws')


def uses_aws(root: Path) -> bool:
    return any(
        _AWS_PROVIDER.search(p.read_text(encoding="utf-8", errors="replace")) for p in root.glob("*.tf")
    )


def hcl_string(value: str) -> str:
    """``value`` as an HCL string literal: JSON escapes for quotes, backslashes and control characters,
    and template sequences (``${``, ``%{``) doubled so nothing in it is interpolated."""
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def override_hcl(endpoint: str, region: str) -> str:
    check_local_endpoint(endpoint)
    lines = [
        "# Written by stageflow for a local-mode run against the emulator; removed afterwards.",
        'provider "aws" {',
        f"  region                      = {hcl_string(region)}",
        f'  access_key                  = "{LOCAL_ACCESS_KEY}"',
        f'  secret_key                  = "{LOCAL_SECRET_KEY}"',
        "  skip_credentials_validation = true",
        "  skip_metadata_api_check     = true",
        "  skip_requesting_account_id  = true",
        "  skip_region_validation      = true",
        "  s3_use_path_style           = true",
        "  endpoints {",
        *[f"    {name} = {hcl_string(endpoint)}" for name in AWS_ENDPOINTS],
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def aws_override(root: Path, endpoint: str, region: str) -> Iterator[Path | None]:
    """Write the override into ``root`` for the block's duration (nothing when the root has no AWS)."""
    with provider_override(root, override_hcl(endpoint, region)) as path:
        yield path


@contextlib.contextmanager
def provider_override(root: Path, text: str) -> Iterator[Path | None]:
    """Write ``text`` as the override file into ``root`` for the block's duration (nothing when the
    root has no AWS provider)."""
    if not uses_aws(root):
        yield None
        return
    path = root / OVERRIDE_NAME
    path.write_text(text, encoding="utf-8")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
