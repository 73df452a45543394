"""20 deploy attempts on one environment at once: exactly one runs, the other 19 exit 6 with one line
naming the holder; the history gets exactly one new deployment and the alias stays on one version."""

from __future__ import annotations

import os
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

ATTEMPTS = 20
HOLD = """
[environments.dev.approvals]
before_canary = true
between_steps = true
"""


def test_twenty_concurrent_deploys_one_runs_nineteen_exit_6_naming_the_holder(project, deployed):
    # the winner pauses for approval before the canary: its deployment keeps the lock after it exits,
    # so every other attempt meets it, however the 20 processes are scheduled
    config = with_policy(project / "stageflow.toml", FAST_POLICY, HOLD)
    change_code(project, f"race-{time.time_ns()}")
    h = deployed.history()
    before = {d.deployment_id for d in h.list(limit=100)}
    base = deployed.base
    cmd = [
        sys.executable,
        "-m",
        "stageflow",
        "--config",
        str(config),
        "--local",
        "canary",
        "dev",
        "--no-input",
    ]
    env = dict(os.environ, **deployed.env())
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(ATTEMPTS)
    ]
    deadline = t0 + 240
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=max(1, deadline - time.monotonic())))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    took = time.monotonic() - t0
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0] + [6] * (ATTEMPTS - 1), list(
        zip(codes, [o[1][-300:] for o in outs], strict=True)
    )
    winner = outs[codes.index(0)]
    assert "awaits approval" in winner[0]
    new = [d for d in h.list(limit=100) if d.deployment_id not in before]
    assert len(new) == 1, [(d.deployment_id, d.status) for d in new]
    holder = new[0].deployment_id
    for code, (out, err) in zip(codes, outs, strict=True):
        if code != 6:
            continue
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("stageflow: error: environment dev is locked by"), err
        assert f"deployment {holder} (" in lines[0] and "held for" in lines[0], lines[0]
        assert out == ""
    assert deployed.weights() == {base: 100}  # paused before the canary: nothing moved
    assert h.lock()["holder"] == holder
    # the one that runs is an ordinary deployment: rejecting it ends it and frees the lock
    rej = subprocess.run(
        [sys.executable, "-m", "stageflow", "--config", str(config), "--local", "reject", "dev"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rej.returncode == 4, rej.stderr
    assert deployed.weights() == {base: 100} and h.lock() is None
    assert took < 240
