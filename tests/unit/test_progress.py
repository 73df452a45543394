"""The live bake view on a terminal (rich) and silence without one."""

from __future__ import annotations

import io

from stageflow.clock import SystemClock
from stageflow.redact import Redactor
from stageflow.report import BakeProgress, Reporter

LAST = {
    "at": "2026-11-30T10:07:00.000000Z",
    "decision": "continue",
    "results": [
        {"metric": "error_rate", "kind": "absolute", "outcome": "pass", "observed": 0.004, "baseline": 0.005,
         "threshold": 0.01, "canary_count": 512, "stable_count": 4608},
        {"metric": "latency_p95", "kind": "absolute", "outcome": "pass", "observed": 420.0, "baseline": 410.0,
         "threshold": 5000.0, "canary_count": 512, "stable_count": 4608},
        {"metric": "alarms", "kind": "alarm", "outcome": "pass", "observed": 0.0},
    ],
}  # fmt: skip
PROGRESS = BakeProgress("prod", "42", "41", "baking", 1, 3, 50, 245.0, LAST)


class Tty(io.StringIO):
    def isatty(self):
        return True


class FastClock(SystemClock):
    """A real clock whose sleep returns at once (the live view polls time.monotonic)."""

    def sleep(self, seconds):
        import time

        time.sleep(min(seconds, 0.05))


def test_progress_lines_carry_step_weight_time_left_and_the_last_numbers():
    text = "\n".join(PROGRESS.lines(next_check_s=30))
    assert "step 2/3 baking at 50% → v42 (stable v41)" in text
    assert "4:05 left in the window · next check in 0:30" in text
    assert "error_rate: canary 0.40% vs stable 0.50% (gate 1.00%) n=512/4608 pass" in text
    assert "latency_p95: canary 420 ms vs stable 410 ms (gate 5000 ms)" in text
    assert "alarms" not in text  # no numbers to show


def test_live_view_on_a_terminal_draws_the_progress(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    tty = Tty()
    Reporter(err=tty).wait(FastClock(), 0.3, "label", progress=PROGRESS)
    out = tty.getvalue()
    assert "step 2/3 baking at 50%" in out and "canary 0.40% vs stable 0.50%" in out


def test_live_view_is_redacted(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    red = Redactor()
    red.add("hunter2-secret")
    tty = Tty()
    p = BakeProgress("hunter2-secret", "42", None, "monitoring", 2, 3, 100, 60.0, None)
    Reporter(err=tty, redactor=red).wait(FastClock(), 0.2, "label", progress=p)
    assert "hunter2-secret" not in tty.getvalue() and "***" in tty.getvalue()


def test_without_a_terminal_nothing_is_drawn():
    err = io.StringIO()
    slept = []

    class Clock(SystemClock):
        def sleep(self, s):
            slept.append(s)

    Reporter(err=err).wait(Clock(), 60, "label", progress=PROGRESS)
    assert slept == [60] and err.getvalue() == ""


def test_in_ci_a_terminal_gets_no_live_view(monkeypatch):
    monkeypatch.setenv("CI", "true")
    tty = Tty()
    slept = []

    class Clock(SystemClock):
        def sleep(self, s):
            slept.append(s)

    Reporter(err=tty).wait(Clock(), 60, "label", progress=PROGRESS)
    assert slept == [60] and tty.getvalue() == ""
