"""Shared fixtures. Real parts where users would use them: the emulator runs as a real process over
HTTP, Terraform and Docker are real binaries. In CI (CI=true) a missing component is a failure, never
a silent skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip outside CI when a real component is missing; fail in CI, where it must be present."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required component missing in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch):
    """No test may reach a real AWS account: dummy credentials, no metadata service."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "STAGEFLOW_LOCAL",
        "STAGEFLOW_STATE_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/stageflow-tests/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/stageflow-tests/config")


@pytest.fixture(scope="session")
def emulator_state(tmp_path_factory):
    return tmp_path_factory.mktemp("stageflow-state")


@pytest.fixture(scope="session")
def emulator(emulator_state):
    """One emulator process for the session, on a free loopback port, stopped at the end."""
    from stageflow.local.emulator import Emulator

    emu = Emulator(emulator_state)
    status, _ = emu.up()
    yield status
    emu.down()


@pytest.fixture
def aws(emulator, emulator_state):
    """Clients pointed at a freshly reset emulator."""
    import urllib.request

    from stageflow.aws import AwsClients, AwsTarget

    req = urllib.request.Request(f"{emulator.endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    for stale in (emulator_state / "local").glob("outputs-*.json"):  # what Terraform built is gone
        stale.unlink()
    return AwsClients(AwsTarget("us-east-1", True, emulator.endpoint))


@pytest.fixture
def project(tmp_path):
    """A copy of the repository's config and infrastructure in a temporary directory."""
    dst = tmp_path / "project"
    dst.mkdir()
    for name in ("stageflow.toml", ".secrets.baseline", ".gitignore"):
        shutil.copy(REPO / name, dst / name)
    for sub in ("app", "infrastructure", "docker"):
        if (REPO / sub).exists():
            shutil.copytree(REPO / sub, dst / sub, ignore=shutil.ignore_patterns(".terraform", "__pycache__"))
    # a checkout with one commit, as in real use (image tags and deploy records carry the commit)
    git = [
        "git",
        "-c",
        "user.name=stageflow-tests",
        "-c",
        "user.email=tests@localhost",
        "-c",
        "commit.gpgsign=false",
    ]
    subprocess.run(["git", "init", "-q", str(dst)], check=True)
    subprocess.run([*git, "-C", str(dst), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(dst), "commit", "-qm", "test project"], check=True)
    return dst


def run_cli(
    *args: str,
    cwd: Path | None = None,
    env: dict | None = None,
    input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """Run the real `stageflow` CLI in a child process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "stageflow", *args],
        cwd=cwd,
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli
