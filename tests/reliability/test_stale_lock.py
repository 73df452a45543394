"""A lock whose holder died: a deploy killed by SIGKILL holds the lock; `status` calls it stale with its
age and the exact `unlock` command; a blocked deploy names the holder and its age (exit 6); `unlock`
is recorded and shown by `status` and `history`; a new deploy then proceeds.
The rules on fakes: tests/unit/deploy/test_locks.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from tests.helpers.policy import FAST_POLICY, change_code, with_policy

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.e2e,
    pytest.mark.emulator,
    pytest.mark.terraform,
    pytest.mark.timeout(1500),  # the first test of a session waits for Terraform to build dev
]


def test_a_killed_holder_is_stale_with_its_age_unlock_is_recorded_and_a_new_deploy_proceeds(
    project, deployed
):
    config = with_policy(project / "stageflow.toml", FAST_POLICY)
    env = dict(os.environ, **deployed.env())

    def run(*args, extra=None):
        return subprocess.run(
            [sys.executable, "-m", "stageflow", "--config", str(config), "--local", *args],
            env={**env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=180,
        )

    change_code(project, f"stale-{time.time_ns()}")
    killed = run("canary", "dev", extra={"STAGEFLOW_FAILPOINT": "kill-after-publish"})
    assert killed.returncode == -9, killed.stderr
    h = deployed.history()
    lock = h.lock()
    assert lock["pid"] and lock["host"] and lock["acquired"]
    holder = lock["holder"]

    st = run("--json", "status", "dev")
    data = json.loads(st.stdout)["lock"]
    assert data["holder"] == holder and data["stale"] is True, data
    assert f"pid {lock['pid']}" in data["why"] and "not running" in data["why"]
    assert data["age_seconds"] >= 0 and data["age"].endswith(("s", "min"))
    unlock_cmd = data["unlock_command"]
    assert unlock_cmd == f'stageflow unlock dev --reason "holder {holder} is gone"'
    human = run("status", "dev").stdout
    assert re.search(rf"lock: held by {holder} \(.*pid {lock['pid']} on .*\) for \d+ (s|min): STALE", human)
    assert unlock_cmd in human

    blocked = run("canary", "dev")
    assert blocked.returncode == 6
    line = blocked.stderr.strip()
    assert "\n" not in line and f"locked by deployment {holder} (" in line and "held for" in line, line

    un = run("unlock", "dev", "--reason", "the run was killed by the test")
    assert un.returncode == 0 and f"lock of deployment {holder}" in un.stdout and "closed" in un.stdout
    assert h.lock() is None and h.get(holder).status == "failed"
    after = json.loads(run("--json", "status", "dev").stdout)
    assert after["lock"] is None and after["last_lock_broken"]["holder"] == holder
    assert after["last_lock_broken"]["reason"] == "the run was killed by the test"
    hist = json.loads(run("--json", "history", "dev").stdout)
    assert any(e["kind"] == "lock_broken" and e["holder"] == holder for e in hist["events"])
    assert "lock_broken" in run("history", "dev").stdout

    base = deployed.base
    ok = run("--json", "canary", "dev")
    assert ok.returncode == 0, ok.stderr[-2000:]
    res = json.loads(ok.stdout)
    assert res["phase"] == "succeeded" and res["version"] != base
    assert deployed.weights() == {res["version"]: 100} and h.lock() is None
