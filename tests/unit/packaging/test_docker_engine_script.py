"""scripts/docker-engine.sh without touching the engine: usage, status, the no-way-to-start case."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "docker-engine.sh"


def _run(*args: str, state_dir: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "STAGEFLOW_DOCKER_DIR": state_dir}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)


def test_up_without_a_way_to_start_exits_3_with_the_hint():
    res = _run("up", state_dir="/proc/stageflow-cannot-create/docker")
    assert res.returncode == 3
    assert "error: cannot create /proc/stageflow-cannot-create/docker" in res.stderr
    assert "run scripts/docker-engine.sh up as root" in res.stderr


def test_status_of_nothing_is_exit_3_and_env_needs_a_record(tmp_path):
    res = _run("status", state_dir=str(tmp_path))
    assert res.returncode == 3
    assert "engine: down" in res.stderr
    assert _run("env", state_dir=str(tmp_path)).returncode == 3


def test_down_when_nothing_runs_is_harmless(tmp_path):
    res = _run("down", state_dir=str(tmp_path))
    assert res.returncode == 0
    assert "nothing of ours was running" in res.stderr


def test_unknown_command_is_usage():
    assert _run("nope", state_dir="/nonexistent").returncode == 2
