"""Deploy + rollback cycles under injected AWS faults, shared by tests/reliability/test_deploy_faults.py
and bench/reliability.py.

A cycle runs the real core the CLI runs (``Factory`` → ``canary.run_start`` → ``rollback.rollback``) in
this process, every AWS call through a :class:`~tests.helpers.faultproxy.FaultProxy` in front of the
emulator that holds the Terraform-built environment (``STAGEFLOW_LOCAL_ENDPOINT``, the composition
root's local endpoint override). What must hold after every cycle is read *directly* from the
emulator, never through the proxy: the alias serves exactly one version at 100 %, and the deployment's
record is complete (terminal, its transitions chain from ``publishing`` to the end).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import policy
from tests.helpers.faultproxy import Fault, FaultProxy
from tests.helpers.policy import FAST_TWO_STEPS

FAST_POLICY = FAST_TWO_STEPS

# The mix of a 5 % fault rate on every AWS call: each kind's share of the 5 %.
MIX = {"throttle": 0.2, "429": 0.1, "500": 0.2, "503": 0.2, "slow": 0.1, "drop": 0.1, "drop_after": 0.1}
SLOW_DELAY_S = 0.3  # below the client's read timeout: a slow answer, not a lost one


def mixed_faults(rate: float = 0.05, service: str | None = None, operation: str | None = None) -> list[Fault]:
    """``rate`` of every matching call fails, split over the kinds of :data:`MIX`."""
    return [
        Fault(kind, rate * share, service, operation, delay=SLOW_DELAY_S)
        for kind, share in MIX.items()
        if rate * share > 0
    ]


def with_policy(project: Path, block: str = FAST_POLICY) -> Path:
    """Replace the dev canary policy of a project copy's stageflow.toml."""
    policy.with_policy(project / "stageflow.toml", block)
    return project


def factory(project: Path, state: Path, command: str):
    from stageflow.factory import Factory
    from stageflow.report import Reporter

    return Factory(
        config_path=project / "stageflow.toml",
        local=True,
        state_dir=state,
        reporter=Reporter(quiet=True),
        command=command,
    )


def artifact(project: Path, marker: str):
    """The service's package with one file that differs per cycle (so every cycle publishes)."""
    from stageflow.packaging.lambda_zip import package, with_files

    return with_files(package(project / "app"), {"faultrun_marker.py": f"MARK = {marker!r}\n".encode()})


def weights(lam, function: str, alias: str) -> dict[str, int]:
    a = lam.get_alias(FunctionName=function, Name=alias)
    extra = (a.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    w = {k: round(v * 100) for k, v in extra.items() if v > 0}
    w[a["FunctionVersion"]] = 100 - sum(w.values())
    return w


def chain_problems(dep) -> list[str]:
    """What is missing or broken in a deployment record's history (empty: complete)."""
    problems = []
    if dep.status not in ("succeeded", "rolled_back", "failed"):
        problems.append(f"status {dep.status} is not terminal")
    ts = dep.transitions
    if not ts:
        return problems + ["no transitions"]
    if ts[0].get("from") != "publishing":
        problems.append(f"first transition from {ts[0].get('from')!r}, not publishing")
    for a, b in zip(ts, ts[1:], strict=False):
        if a.get("to") != b.get("from"):
            problems.append(f"transition gap: {a.get('to')} → then from {b.get('from')}")
    if ts[-1].get("to") != dep.phase:
        problems.append(f"last transition to {ts[-1].get('to')!r} but phase {dep.phase!r}")
    if not all(t.get("at") for t in ts):
        problems.append("a transition without a time")
    if not dep.ended_at:
        problems.append("no end time")
    return problems


@dataclass
class CycleResult:
    index: int
    deploy_exit: int
    deploy_phase: str
    rollback_exit: int
    rollback_changed: bool | None
    weights: dict[str, int]
    problems: list[str]
    seconds: float
    deploy_error: str = ""
    rollback_error: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Tally:
    """Figures over many cycles, for the test's message and bench/results/reliability.json."""

    cycles: list[CycleResult] = field(default_factory=list)
    calls: Counter = field(default_factory=Counter)
    injected: Counter = field(default_factory=Counter)

    def add_proxy(self, proxy) -> None:
        for (svc, op), n in proxy.calls.items():
            self.calls[f"{svc}:{op}"] += n
        for (kind, _svc, _op), n in proxy.injected.items():
            self.injected[kind] += n

    def summary(self) -> dict:
        total_calls = sum(self.calls.values())
        total_injected = sum(self.injected.values())
        return {
            "cycles": len(self.cycles),
            "all_ok": all(c.ok for c in self.cycles),
            "failed_cycles": [c.index for c in self.cycles if not c.ok],
            "aws_calls": total_calls,
            "faults_injected": total_injected,
            "fault_rate_observed": round(total_injected / total_calls, 4) if total_calls else 0.0,
            "faults_by_kind": dict(sorted(self.injected.items())),
            "deploy_outcomes": dict(Counter(c.deploy_phase for c in self.cycles)),
            "deploy_exit_codes": dict(Counter(str(c.deploy_exit) for c in self.cycles)),
            "rollback_exit_codes": dict(Counter(str(c.rollback_exit) for c in self.cycles)),
            "seconds_per_cycle_median": sorted(c.seconds for c in self.cycles)[len(self.cycles) // 2]
            if self.cycles
            else 0.0,
            "problems": {c.index: c.problems for c in self.cycles if c.problems},
        }


def run_cycle(project: Path, state: Path, direct, outputs: dict, index: int, tag: str = "") -> CycleResult:
    """One deploy (to succeeded, or rolled back by the gates) then an on-call rollback, in process,
    through whatever ``STAGEFLOW_LOCAL_ENDPOINT`` names. ``direct``: clients on the emulator itself."""
    from stageflow.deploy import canary
    from stageflow.errors import StageflowError
    from stageflow.history import DynamoHistory
    from stageflow.rollback.cli import rollback

    assert os.environ.get("STAGEFLOW_LOCAL_ENDPOINT"), "cycles run through the proxy"
    t0 = time.monotonic()
    lam = direct.client("lambda")
    before = weights(lam, outputs["function_name"], outputs["alias_name"])
    stable = max(before, key=before.get)
    deploy_exit, phase, deploy_error, dep_id = 0, "?", "", None
    f = factory(project, state, "canary")
    try:
        ctx = f.environment("dev")
        res = canary.run_start(ctx, artifact(project, f"{tag}{index}-{time.time_ns()}"), who="faultrun")
        phase = res.outcome.state.phase if res.outcome else "no_change"
        dep_id = res.outcome.deployment.deployment_id if res.outcome else None
    except StageflowError as exc:
        deploy_exit, deploy_error = int(exc.exit_code), exc.one_line()
    rollback_exit, changed, rollback_error = 0, None, ""
    try:
        # on-call names the version that served before (the last-known-good choice is not under test)
        r = rollback(
            factory(project, state, "rollback").environment("dev"),
            to=stable,
            reason=f"faultrun cycle {index}",
            who="faultrun",
        )
        changed = r.changed
    except StageflowError as exc:
        rollback_exit, rollback_error = int(exc.exit_code), exc.one_line()
    # what holds, read from the emulator directly (no faults)
    w = weights(lam, outputs["function_name"], outputs["alias_name"])
    problems = []
    if sorted(w.values()) != [100]:
        problems.append(f"alias not on one version: {w}")
    elif rollback_exit == 0 and w != {stable: 100}:
        problems.append(f"rolled back to {w}, not to v{stable} that served before")
    history = DynamoHistory(direct.client("dynamodb"), outputs["history_table"], "sample-api", "dev")
    dep = history.get(dep_id) if dep_id else (history.list(limit=1) or [None])[0]
    if dep is None:
        problems.append("no deployment record")
    else:
        if deploy_exit == 0 and dep_id is None and phase == "no_change":
            pass
        elif deploy_exit != 0 and phase == "?":
            phase = f"{dep.phase} (exit {deploy_exit})"
        problems += chain_problems(dep)
    if history.lock() is not None:
        problems.append(f"lock left behind: {history.lock()}")
    if deploy_exit not in (0, 4):
        problems.append(f"deploy exit {deploy_exit}: {deploy_error}")
    if rollback_exit != 0:
        problems.append(f"rollback exit {rollback_exit}: {rollback_error}")
    return CycleResult(
        index,
        deploy_exit,
        phase,
        rollback_exit,
        changed,
        w,
        problems,
        round(time.monotonic() - t0, 2),
        deploy_error,
        rollback_error,
    )


class ScriptedProxy(FaultProxy):
    """Fails calls of one operation by number: ``fail(n)`` says whether the n-th call (1-based) fails."""

    def __init__(self, upstream, service, operation, fail, kind="503"):
        super().__init__(upstream, (), seed=0)
        self.rule = Fault(kind, 1.0, service, operation)
        self.fail = fail
        self.seen = 0

    def choose(self, service, operation):
        with self._lock:
            self.calls[(service, operation)] += 1
            if not self.rule.matches(service, operation):
                return None
            self.seen += 1
            if not self.fail(self.seen):
                return None
            self.injected[(self.rule.kind, service, operation)] += 1
            return self.rule
