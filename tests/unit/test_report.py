import io
import json

from stageflow.clock import VirtualClock
from stageflow.redact import Redactor
from stageflow.report import Reporter


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_lines_and_json_are_redacted():
    red = Redactor()
    red.add("hunter2-secret")
    err, out = io.StringIO(), io.StringIO()
    r = Reporter(json_mode=True, err=err, out=out, redactor=red)
    r.info("canary", "dev", "token hunter2-secret here")
    r.child("child says hunter2-secret")
    r.result("ignored in json mode", {"v": "hunter2-secret"})
    assert "hunter2-secret" not in err.getvalue() + out.getvalue()
    assert err.getvalue().splitlines() == ["canary dev: token *** here", "child says ***"]
    assert json.loads(out.getvalue()) == {"v": "***"}


def test_empty_redactor_is_used_as_given():
    red = Redactor()
    assert Reporter(redactor=red).redactor is red


def test_wait_on_a_virtual_clock_sleeps_virtually_even_on_a_tty(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    clock = VirtualClock()
    start = clock.now()
    Reporter(err=Tty()).wait(clock, 90, "baking")
    assert (clock.now() - start).total_seconds() == 90


def test_wait_without_a_tty_is_a_plain_sleep():
    class Clock:
        slept = []

        def sleep(self, s):
            self.slept.append(s)

    c = Clock()
    Reporter(err=io.StringIO()).wait(c, 60, "baking")
    assert c.slept == [60]
