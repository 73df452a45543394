"""On-call safety: with no AWS credentials, commands that act on what is deployed never fall back to the
emulator, protected environments are never chosen implicitly, and read-only commands start nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def run(tmp_path, *args, extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("STAGEFLOW_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none" / "credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "none" / "config"),
        AWS_EC2_METADATA_DISABLED="true",
        STAGEFLOW_STATE_DIR=str(tmp_path / "state"),
        **(extra_env or {}),
    )
    return subprocess.run(
        [sys.executable, "-m", "stageflow", "--config", str(REPO / "stageflow.toml"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("rollback", "prod"),
        ("rollback", "dev", "--to", "3"),
        ("approve", "prod"),
        ("reject", "staging"),
        ("unlock", "prod", "--reason", "stale"),
        ("resume", "dev"),
    ],
    ids=lambda a: " ".join(a),
)
def test_on_call_commands_never_fall_back_to_the_emulator(tmp_path, args):
    r = run(tmp_path, *args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stageflow: error: no AWS credentials found")
    assert "--local" in lines[0]
    assert not (tmp_path / "state").exists()  # no emulator started, nothing written


@pytest.mark.parametrize("args", [("deploy", "prod"), ("canary", "prod"), ("plan", "prod")], ids=" ".join)
def test_protected_environment_is_never_chosen_implicitly(tmp_path, args):
    r = run(tmp_path, *args)
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "prod is protected and no AWS credentials were found" in line, r.stderr
    assert not (tmp_path / "state" / "local").exists()  # the emulator was not started


@pytest.mark.parametrize("args", [("status", "dev"), ("history", "dev"), ("rollback", "dev")], ids=" ".join)
def test_read_and_on_call_commands_start_nothing_even_when_local_is_explicit(tmp_path, args):
    r = run(tmp_path, "--local", *args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "stageflow: error: the local AWS emulator is not running, so nothing is deployed there "
        "(deploy first: make demo (or stageflow --local deploy ENV))"
    )
    assert not (tmp_path / "state" / "local").exists()
