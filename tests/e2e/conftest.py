"""``tf_dev_env``: the dev environment root applied by Terraform to an emulator of its own, once per test
session (``stageflow apply dev --local`` on a fresh copy of the repository, so the build of the packages
Terraform reads is part of it). Tests that share it reset the alias and the history they touched
(:func:`reset_tf_dev_env`) instead of resetting the emulator."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, require, run_cli

MIRROR_AWS = REPO / ".tools" / "terraform" / "mirror" / "registry.terraform.io" / "hashicorp" / "aws"


@dataclass(frozen=True)
class TfDevEnv:
    project: Path  # the copy of the repository Terraform applied
    state_dir: Path  # STAGEFLOW_STATE_DIR of that emulator
    endpoint: str  # the emulator, http://127.0.0.1:PORT
    outputs: dict  # `terraform output` of the dev root (plain values)
    built_fresh: bool  # build/lambda/*.zip did not exist before `stageflow apply dev`
    apply_stderr: str

    def clients(self):
        from stageflow.aws import AwsClients, AwsTarget

        return AwsClients(AwsTarget("us-east-1", True, self.endpoint))


def copy_project(dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in ("stageflow.toml", ".secrets.baseline", ".gitignore"):
        shutil.copy(REPO / name, dst / name)
    for sub in ("app", "infrastructure", "docker"):
        shutil.copytree(REPO / sub, dst / sub, ignore=shutil.ignore_patterns(".terraform", "__pycache__"))
    git = ["git", "-c", "user.name=stageflow-tests", "-c", "user.email=tests@localhost"]
    subprocess.run(["git", "init", "-q", str(dst)], check=True)
    subprocess.run([*git, "-C", str(dst), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(dst), "-c", "commit.gpgsign=false", "commit", "-qm", "t"], check=True)
    return dst


@pytest.fixture(scope="session")
def tf_dev_env(tmp_path_factory):
    require(
        any(MIRROR_AWS.glob("*/*/terraform-provider-aws_*")),
        "hashicorp/aws provider is not in the offline mirror (.tools/terraform/mirror)",
    )
    from stageflow.factory import Factory
    from stageflow.local.emulator import Emulator
    from stageflow.report import Reporter
    from stageflow.terraform import api

    base = tmp_path_factory.mktemp("tf-dev-env")
    project = copy_project(base / "project")
    state = base / "state"
    fresh = not (project / "build" / "lambda").exists()
    env = {"STAGEFLOW_STATE_DIR": str(state), "STAGEFLOW_LOCAL_TERRAFORM": "1"}
    cfg = str(project / "stageflow.toml")
    try:
        r = run_cli("--config", cfg, "--local", "--json", "apply", "dev", env=env, cwd=project, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        f = Factory(config_path=cfg, local=True, state_dir=state, reporter=Reporter(quiet=True))
        raw = api.raw_outputs(f, "dev")
        outputs = {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in raw.items()}
        yield TfDevEnv(project, state, f.emulator.status().endpoint, outputs, fresh, r.stderr)
    finally:
        Emulator(state).down()


def reset_tf_dev_env(env: TfDevEnv, alias_version: str = "1") -> None:
    """The alias back on one version and the environment's history records gone."""
    aws = env.clients()
    out = env.outputs
    aws.client("lambda").update_alias(
        FunctionName=out["function_name"],
        Name=out["alias_name"],
        FunctionVersion=alias_version,
        RoutingConfig={"AdditionalVersionWeights": {}},
    )
    ddb = aws.client("dynamodb")
    items = ddb.scan(TableName=out["history_table"], ProjectionExpression="pk, sk").get("Items", [])
    for it in items:
        ddb.delete_item(TableName=out["history_table"], Key={"pk": it["pk"], "sk": it["sk"]})
