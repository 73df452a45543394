"""Deploys and rollbacks under injected AWS faults, against the Terraform-built dev environment (issue 14).

Every AWS call goes through a fault proxy (tests/helpers/faultproxy.py) in front of the session's
Terraform-built emulator: the CLI child processes get it through the composition root's local endpoint
override (``STAGEFLOW_LOCAL_ENDPOINT``), the in-process cycles through the same variable. What must
hold is always read from the emulator directly:

- (a) seeded deploy + rollback cycles under 5 % mixed faults (throttle, 429, 500, 503, slow, dropped,
  lost answers) end with the alias 100 % on one version and a complete history;
- (b) persistent faults end as the runbook says: exit 3 (AWS kept failing, traffic on one version),
  4 (metrics unreadable: rolled back), 5 (even the rollback failed: paged), one line each;
- (c) faults on the rollback path: ``stageflow rollback`` under 20 % faults still ends on stable;
  persistent → exit 5 and a ``rollback_failed`` page on the topic;
- (d) the emulator restarted mid-run (a separate emulator, never the session's): exit 3 while it is
  unreachable, then an honest "state gone" (exit 2) with the recovery.

``FAULT_CYCLES`` (env ``STAGEFLOW_FAULT_CYCLES``) sets the in-process cycle count; ``make
bench-reliability`` runs the issue's 50 (bench/reliability.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.helpers import faultcycles as fc
from tests.helpers.faultproxy import Fault, FaultProxy
from tests.helpers.policy import change_code

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.emulator,
    pytest.mark.e2e,
    pytest.mark.terraform,
    pytest.mark.timeout(900),
]

FAULT_CYCLES = int(os.environ.get("STAGEFLOW_FAULT_CYCLES", "3"))
CLI_CYCLES = 1
FAST_RETRIES = {"STAGEFLOW_AWS_MAX_ATTEMPTS": "2"}  # persistent faults: fail in seconds, not minutes


@pytest.fixture
def proxy(deployed):
    p = FaultProxy(deployed.endpoint, (), seed=1)
    p.start()
    yield p
    p.stop()


@pytest.fixture
def fast(project):
    return fc.with_policy(project)


def cli(project, deployed, proxy, *args, env=None, timeout=240):
    e = dict(os.environ)
    e.update(deployed.env(STAGEFLOW_LOCAL_ENDPOINT=proxy.endpoint, **(env or {})))
    return subprocess.run(
        [sys.executable, "-m", "stageflow", "--config", str(project / "stageflow.toml"), "--local", *args],
        env=e,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_lines(r) -> list[str]:
    return [ln for ln in r.stderr.splitlines() if ln.startswith("stageflow: error:")]


def history_of(deployed):
    h = deployed.history()
    return h, h.list(limit=1)[0]


def subscribe(deployed, name: str) -> str:
    sqs, sns = deployed.aws.client("sqs"), deployed.aws.client("sns")
    q = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=deployed.outputs["topic_arn"], Protocol="sqs", Endpoint=arn)
    return q


def notices(deployed, queue: str) -> list[dict]:
    sqs = deployed.aws.client("sqs")
    out = []
    for _ in range(5):
        msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            body = json.loads(m["Body"])
            out.append(json.loads(body.get("Message", "{}")) if "Message" in body else body)
    return out


# -- (a) seeded cycles under 5 % mixed faults ------------------------------------------------------------
def test_deploy_and_rollback_cycles_under_5_percent_faults_end_on_one_version(
    fast, deployed, proxy, monkeypatch
):
    monkeypatch.setenv("STAGEFLOW_LOCAL_ENDPOINT", proxy.endpoint)
    proxy.configure(fc.mixed_faults(0.05), seed=1400)
    tally = fc.Tally()
    for i in range(FAULT_CYCLES):
        tally.cycles.append(fc.run_cycle(fast, deployed.state, deployed.aws, deployed.outputs, i, "test-"))
    tally.add_proxy(proxy)
    # through the real CLI too: child processes pointed at the proxy by STAGEFLOW_LOCAL_ENDPOINT
    for i in range(CLI_CYCLES):
        ((stable, _),) = deployed.weights().items()
        change_code(fast, f"faultrun-cli-{i}-{time.time_ns()}")
        proxy.configure(fc.mixed_faults(0.05), seed=1500 + i)
        d = cli(fast, deployed, proxy, "canary", "dev")
        assert d.returncode in (0, 4), d.stderr[-3000:]
        h, dep = history_of(deployed)
        assert fc.chain_problems(dep) == [], dep.transitions
        r = cli(fast, deployed, proxy, "rollback", "dev", "--to", stable)
        assert r.returncode == 0, r.stderr[-3000:]
        assert deployed.weights() == {stable: 100}
        assert h.lock() is None
        tally.add_proxy(proxy)
    s = tally.summary()
    assert s["all_ok"], json.dumps(s["problems"], indent=1)
    assert s["faults_injected"] >= 5, s  # the faults really happened ...
    assert 0.015 <= s["fault_rate_observed"] <= 0.10, s  # ... at about the configured rate (5 %)
    assert len(s["faults_by_kind"]) >= 3, s  # ... and of several kinds


# -- (b) persistent faults ---------------------------------------------------------------------------------
@pytest.fixture
def scripted(deployed):
    made = []

    def make(service, operation, fail, kind="503"):
        p = fc.ScriptedProxy(deployed.endpoint, service, operation, fail, kind)
        p.start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def test_an_alias_shift_that_keeps_failing_rolls_back_to_stable_exit_3(fast, deployed, scripted):
    """UpdateAlias #1 (10 %) works; the promotion's attempts (#2, #3) fail; the rollback's (#4) works."""
    base = deployed.base
    proxy = scripted("lambda", "UpdateAlias", lambda n: n in (2, 3))
    change_code(fast, f"shift-fails-{time.time_ns()}")
    r = cli(fast, deployed, proxy, "canary", "dev", env=FAST_RETRIES)
    assert r.returncode == 3, r.stderr[-3000:]
    (line,) = error_lines(r)
    assert "alias shift to 100% failed" in line and f"all traffic is on v{base}" in line, line
    assert "Traceback" not in r.stderr
    assert deployed.weights() == {base: 100}
    h, dep = history_of(deployed)
    assert dep.status == "rolled_back" and fc.chain_problems(dep) == [], dep.transitions
    assert "alias shift" in dep.transitions[-2]["reason"] and h.lock() is None


def test_update_alias_down_for_good_pages_a_person_exit_5_then_on_call_rolls_back(fast, deployed, scripted):
    base = deployed.base
    queue = subscribe(deployed, f"faultrun-page-{time.time_ns()}")
    proxy = scripted("lambda", "UpdateAlias", lambda n: n >= 2)  # the 10 % step works, nothing after
    change_code(fast, f"alias-down-{time.time_ns()}")
    r = cli(fast, deployed, proxy, "canary", "dev", env=FAST_RETRIES)
    assert r.returncode == 5, r.stderr[-3000:]
    (line,) = error_lines(r)
    assert "page a person" in line and "rollback to v" in line, line
    h, dep = history_of(deployed)
    assert dep.status == "failed" and fc.chain_problems(dep) == [], dep.transitions
    pages = [n for n in notices(deployed, queue) if n.get("kind") == "rollback_failed"]
    assert len(pages) == 1 and pages[0]["page"] is True, pages
    assert len(pages[0]["tried"]) == 3 and "rollback FAILED — page a person" in pages[0]["text"], pages
    assert len(deployed.weights()) == 2  # still split: what the page says; now on-call acts
    proxy.fail = lambda n: False  # AWS answers again
    rb = cli(fast, deployed, proxy, "rollback", "dev")
    assert rb.returncode == 0, rb.stderr[-3000:]
    assert deployed.weights() == {base: 100} and h.lock() is None


def test_metric_reads_failing_for_good_roll_back_exit_4(fast, deployed, scripted):
    base = deployed.base
    proxy = scripted("monitoring", "GetMetricData", lambda n: True)
    change_code(fast, f"metrics-down-{time.time_ns()}")
    r = cli(fast, deployed, proxy, "canary", "dev", env=FAST_RETRIES)
    assert r.returncode == 4, r.stderr[-3000:]
    (line,) = error_lines(r)
    assert "metrics unreadable" in line and "consecutive_error_limit" in line, line
    assert deployed.weights() == {base: 100}
    _, dep = history_of(deployed)
    assert dep.status == "rolled_back" and fc.chain_problems(dep) == [], dep.transitions


def test_history_down_for_good_is_exit_3_and_nothing_moves(fast, deployed, scripted):
    base, before = deployed.base, deployed.latest_version()
    h = deployed.history()
    n_before = len(h.list(limit=100))
    proxy = scripted("dynamodb", None, lambda n: True)
    change_code(fast, f"history-down-{time.time_ns()}")
    r = cli(fast, deployed, proxy, "canary", "dev", env=FAST_RETRIES)
    assert r.returncode == 3, r.stderr[-3000:]
    (line,) = error_lines(r)
    assert "ServiceUnavailable" in line, line
    assert deployed.weights() == {base: 100} and deployed.latest_version() == before  # nothing published
    assert len(h.list(limit=100)) == n_before and h.lock() is None  # history as it was


# -- (c) faults on the rollback path -------------------------------------------------------------------------
def test_rollback_under_20_percent_faults_ends_on_stable(fast, deployed, proxy, monkeypatch):
    from stageflow.deploy import canary

    monkeypatch.setenv("STAGEFLOW_LOCAL_ENDPOINT", proxy.endpoint)
    for i, seed in enumerate((2001, 2002)):
        base = deployed.weights()
        ((stable, _),) = base.items()
        proxy.configure((), seed=seed)
        res = canary.run_start(
            fc.factory(fast, deployed.state, "canary").environment("dev"),
            fc.artifact(fast, f"rb20-{i}-{time.time_ns()}"),
            who="faultrun",
        )
        assert res.outcome.state.phase == "succeeded"
        proxy.configure(fc.mixed_faults(0.20), seed=seed)
        r = cli(fast, deployed, proxy, "rollback", "dev", "--to", stable)
        assert r.returncode == 0, r.stderr[-3000:]
        assert deployed.weights() == {stable: 100}
        ev = deployed.history().events(limit=1)[0]
        assert ev["kind"] == "rollback" and ev.get("to_version", stable) == stable, ev
    assert proxy.injected_total() >= 1


def test_rollback_core_under_faults_in_process(fast, deployed, proxy, monkeypatch):
    """The rollback core (what the rollback function runs) under 5–20 % faults on a split alias."""
    from stageflow.deploy import canary
    from stageflow.rollback.cli import rollback

    monkeypatch.setenv("STAGEFLOW_LOCAL_ENDPOINT", proxy.endpoint)
    monkeypatch.setenv("STAGEFLOW_FAILPOINT", "")
    for i, rate in enumerate((0.05, 0.10, 0.20)):
        ((stable, _),) = deployed.weights().items()
        proxy.configure((), seed=i)
        ctx = fc.factory(fast, deployed.state, "canary").environment("dev")
        # stop the canary at 10 % (as if killed after its first bake began), then roll back under faults
        monkeypatch.setattr(canary, "_failpoint", lambda: lambda s: s.phase == "baking")
        res = canary.run_start(ctx, fc.artifact(fast, f"core-{i}-{time.time_ns()}"), who="faultrun")
        monkeypatch.setattr(canary, "_failpoint", lambda: None)
        assert not res.outcome.state.terminal and len(deployed.weights()) == 2
        proxy.configure(fc.mixed_faults(rate), seed=3000 + i)
        out = rollback(
            fc.factory(fast, deployed.state, "rollback").environment("dev"), reason="faults", who="t"
        )
        assert out.changed and deployed.weights() == {stable: 100}
        dep = deployed.history().get(res.outcome.deployment.deployment_id)
        assert dep.status == "rolled_back" and deployed.history().lock() is None


def test_rollback_with_update_alias_down_is_exit_5_and_pages(fast, deployed, scripted, monkeypatch):
    from stageflow.deploy import canary

    queue = subscribe(deployed, f"faultrun-rbpage-{time.time_ns()}")
    monkeypatch.setenv("STAGEFLOW_LOCAL_ENDPOINT", deployed.endpoint)
    ((stable, _),) = deployed.weights().items()
    res = canary.run_start(
        fc.factory(fast, deployed.state, "canary").environment("dev"),
        fc.artifact(fast, f"rbdown-{time.time_ns()}"),
        who="faultrun",
    )
    assert res.outcome.state.phase == "succeeded"
    serving = dict(deployed.weights())
    proxy = scripted("lambda", "UpdateAlias", lambda n: True)
    r = cli(fast, deployed, proxy, "rollback", "dev", "--to", stable, env=FAST_RETRIES)
    assert r.returncode == 5, r.stderr[-3000:]
    (line,) = error_lines(r)
    assert "UpdateAlias" in line or "ServiceUnavailable" in line, line
    assert deployed.weights() == serving  # unchanged: one version, the one the page names
    pages = [n for n in notices(deployed, queue) if n.get("kind") == "rollback_failed"]
    assert len(pages) == 1, notices(deployed, queue)
    proxy.fail = lambda n: False
    ok = cli(fast, deployed, proxy, "rollback", "dev", "--to", stable)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert deployed.weights() == {stable: 100}


# -- (d) the emulator restarted mid-run ----------------------------------------------------------------------
def test_emulator_restarted_mid_run_exit_3_then_state_gone(project, tmp_path):
    """A separate emulator (own state dir): a canary is running when the emulator dies → bounded, one
    line, exit 3; the emulator comes back empty (moto keeps state in memory) → exit 2 "state gone" with
    the recovery, for status, rollback and canary alike."""
    from stageflow.local.emulator import Emulator
    from tests.helpers.resources import make_service

    state = tmp_path / "state"
    emu = Emulator(state)
    st, _ = emu.up()
    try:
        f = fc.factory(project, state, "apply")
        make_service(f, "dev")  # stands in for Terraform's dev (cheap); outputs remembered as after an apply
        slow = FaultProxy(st.endpoint, [Fault("slow", 1.0, delay=0.15)], seed=1)
        slow.start()
        env = {
            **os.environ,
            "STAGEFLOW_STATE_DIR": str(state),
            "STAGEFLOW_LOCAL_ENDPOINT": slow.endpoint,
            **FAST_RETRIES,
        }
        argv = [sys.executable, "-m", "stageflow", "--config", str(project / "stageflow.toml"), "--local"]
        child = subprocess.Popen(
            [*argv, "canary", "dev"], env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        seen = []
        for line in child.stderr:
            seen.append(line)
            if "weight 10%" in line:
                break
        assert any("weight 10%" in ln for ln in seen), "".join(seen)[-3000:]
        emu.down()  # the emulator dies mid-canary
        t0 = time.monotonic()
        _, rest = child.communicate(timeout=120)
        took = time.monotonic() - t0
        err = "".join(seen) + rest
        assert child.returncode == 3, (child.returncode, err[-2000:])
        lines = [ln for ln in err.splitlines() if ln.startswith("stageflow: error:")]
        assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
        slow.stop()
        assert took < 90, took  # bounded by the retry policy
        # back, empty (same state directory, a new process): the tool says the state is gone
        st2, _ = emu.up()
        for args in (("status", "dev"), ("rollback", "dev"), ("history", "dev")):
            r = subprocess.run(
                [*argv, *args],
                env={**os.environ, "STAGEFLOW_STATE_DIR": str(state)},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert r.returncode == 2, (args, r.stderr[-2000:])
            (line,) = error_lines(r)
            assert "state is gone" in line and "stageflow --local deploy dev" in line, line
    finally:
        emu.down()
