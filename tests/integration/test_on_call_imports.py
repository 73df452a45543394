"""The on-call commands stay light: `rollback`, `status` and `history`, run for real against the emulator
in a child process, import neither numpy nor the emulator side (``stageflow.local``). Against AWS (here:
the emulator's endpoint as the AWS endpoint) nothing under ``stageflow.local`` at all; in local mode only
the emulator launcher, to find the emulator's endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stageflow.deploy.publish import publish
from stageflow.deploy.traffic import AliasTraffic
from stageflow.factory import Factory
from stageflow.packaging.lambda_zip import package
from stageflow.report import Reporter
from tests.helpers.resources import make_service

pytestmark = pytest.mark.emulator

# Runs the CLI in this process, then writes its exit code and the heavy or emulator-side modules loaded.
WRAPPER = """
import json, sys
from stageflow.cli import main
rc = main(sys.argv[2:])
loaded = sorted(m for m in sys.modules if m == "numpy" or m.startswith(("numpy.", "stageflow.local")))
with open(sys.argv[1], "w") as f:
    json.dump({"rc": rc, "loaded": loaded}, f)
sys.exit(rc)
"""
AWS_CREDS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
COMMANDS = (("rollback", "dev"), ("rollback", "dev"), ("status", "dev"), ("history", "dev"))


def run_wrapped(tmp_path, project, env: dict, *args: str) -> dict:
    out = tmp_path / "loaded.json"
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(out), *args],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return json.loads(out.read_text())


def canary_in_flight(factory: Factory) -> tuple[AliasTraffic, str]:
    out = make_service(factory, "dev")
    lam = factory.aws.client("lambda")
    pub = publish(lam, out.function_name, out.alias_name, package(factory.config.root / "app"))
    traffic = AliasTraffic(lam, out.function_name, out.alias_name)
    traffic.set_canary(pub.previous_version, pub.version, 10)
    return traffic, pub.previous_version


def test_on_call_commands_on_aws_import_no_numpy_and_nothing_local(
    project, emulator, emulator_state, aws, tmp_path, monkeypatch
):
    env = {
        **AWS_CREDS,
        "STAGEFLOW_AWS_ENDPOINT": emulator.endpoint,
        "STAGEFLOW_STATE_DIR": str(emulator_state),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    f = Factory(
        config_path=project / "stageflow.toml",
        local=False,
        state_dir=emulator_state,
        reporter=Reporter(quiet=True),
    )
    traffic, stable = canary_in_flight(f)
    for cmd in COMMANDS:  # the first rollback moves traffic, the second is a no-op
        got = run_wrapped(tmp_path, project, env, "--no-local", *cmd)
        assert got == {"rc": 0, "loaded": []}, cmd
    assert traffic.state().weights == {stable: 100}


def test_on_call_commands_in_local_mode_import_no_numpy_only_the_emulator_launcher(
    project, emulator, emulator_state, aws, tmp_path
):
    f = Factory(
        config_path=project / "stageflow.toml",
        local=True,
        state_dir=emulator_state,
        reporter=Reporter(quiet=True),
    )
    traffic, stable = canary_in_flight(f)
    env = {"STAGEFLOW_STATE_DIR": str(emulator_state)}
    for cmd in COMMANDS:
        got = run_wrapped(tmp_path, project, env, "--local", *cmd)
        assert got == {"rc": 0, "loaded": ["stageflow.local", "stageflow.local.emulator"]}, cmd
    assert traffic.state().weights == {stable: 100}
