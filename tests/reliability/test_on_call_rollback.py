"""On-call rolls back from another terminal while a canary waits for approval at 10 %: all traffic on
the stable version at once, the history names who and why, the lock is free, and the paused run —
answered afterwards at its prompt — ends without moving traffic again; so does a later `resume`.

The paused run is a live process at its approval prompt (a pseudo-terminal makes it interactive).
tests/unit/deploy/test_canary_core.py covers the same core on fakes; this is the CLI end to end."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from tests.helpers.policy import FAST_POLICY, PAUSE_AT_10, change_code, with_policy

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.e2e,
    pytest.mark.emulator,
    pytest.mark.terraform,
    pytest.mark.timeout(1500),  # the first test of a session waits for Terraform to build dev
]


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    end = time.monotonic() + timeout
    while needle not in seen:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {needle!r} within {timeout} s: {seen[-2000:]!r}")
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                raise AssertionError(f"ended before {needle!r}: {seen[-2000:]!r}") from None
    return seen


def test_on_call_rollback_while_a_canary_waits_at_10_percent(project, deployed):
    config = with_policy(project / "stageflow.toml", FAST_POLICY, PAUSE_AT_10)
    change_code(project, f"on-call-{time.time_ns()}")
    base, new = deployed.base, deployed.next_version()
    env = dict(os.environ, **deployed.env())
    cli = [sys.executable, "-m", "stageflow", "--config", str(config), "--local"]

    def run(*args):
        return subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=180)

    master, slave = pty.openpty()
    paused = subprocess.Popen(
        [*cli, "canary", "dev"], env=env, stdin=slave, stderr=slave, stdout=subprocess.PIPE, text=True
    )
    os.close(slave)
    try:
        _read_until(master, b"Approve?", 180)
        assert deployed.weights() == {base: 90, new: 10}
        h = deployed.history()
        dep_id = h.lock()["holder"]

        rb = run("rollback", "dev", "--reason", "customers see errors")
        assert rb.returncode == 0, rb.stderr
        assert deployed.weights() == {base: 100}
        assert f"all traffic on v{base}" in rb.stdout
        st = json.loads(run("--json", "status", "dev").stdout)
        assert st["deployment_id"] == dep_id and st["status"] == "rolled_back" and st["locked_by"] is None
        last = st["transitions"][-1]
        assert last["from"] == "awaiting_approval" and last["to"] == "rolled_back"
        assert "manual rollback by" in last["reason"] and "customers see errors" in last["reason"]
        events = json.loads(run("--json", "history", "dev").stdout)["events"]
        ev = next(e for e in events if e["kind"] == "rollback")
        assert ev["deployment_id"] == dep_id and ev["reason"] == "customers see errors" and ev["who"]
        transitions_after_rollback = len(st["transitions"])

        # the person at the paused run approves, late: it sees the rollback and moves nothing
        os.write(master, b"y\n")
        out, _ = paused.communicate(timeout=120)
        tail = b""
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            tail += chunk
        assert paused.returncode == 4, (paused.returncode, tail[-1500:])
        assert b"ended elsewhere" in tail, tail[-1500:]
        assert deployed.weights() == {base: 100}
        res = run("resume", "dev")
        assert res.returncode == 2 and "no deployment in flight" in res.stderr, res.stderr
        assert deployed.weights() == {base: 100}
        final = h.get(dep_id)
        assert final.status == "rolled_back" and len(final.transitions) == transitions_after_rollback
        assert h.lock() is None and h.in_flight() is None
    finally:
        if paused.poll() is None:
            paused.kill()
            paused.wait()
        os.close(master)
