"""The orders fixture service (tests/fixtures/services/orders: two functions, api and worker) as a
project of its own: the fixture, the repository's infrastructure, one commit."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO, require

ORDERS = REPO / "tests" / "fixtures" / "services" / "orders"


def require_mirror() -> None:
    mirror_aws = REPO / ".tools" / "terraform" / "mirror" / "registry.terraform.io" / "hashicorp" / "aws"
    require(
        any(mirror_aws.glob("*/*/terraform-provider-aws_*")), "hashicorp/aws is not in the offline mirror"
    )


def orders_project(dst: Path) -> Path:
    dst.mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", ".venv", ".ruff_cache", ".pytest_cache")
    shutil.copytree(ORDERS, dst, dirs_exist_ok=True, ignore=skip)
    shutil.copytree(
        REPO / "infrastructure", dst / "infrastructure", ignore=shutil.ignore_patterns(".terraform")
    )
    shutil.copy(REPO / ".gitignore", dst / ".gitignore")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(dst)], check=True)
    subprocess.run([*git, "-C", str(dst), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(dst), "commit", "-qm", "orders"], check=True)
    return dst
