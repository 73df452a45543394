"""One seeded SIGKILL cycle against the Terraform-built dev environment, shared by
tests/reliability/test_kills.py and bench/reliability_kills.py.

A cycle: change the code → (for a rollback cycle: a canary paused for approval at 10 %) → the command
(`canary dev` or `rollback dev`) run with ``STAGEFLOW_FAILPOINT=kill-before|after-call:N`` (SIGKILL
just before the N-th AWS call is sent, or just after its answer came back, see ``stageflow.aws``) →
``status`` (it must say what is in flight or who holds the lock, and what to run) → what it says:
``resume`` or ``rollback`` (or ``unlock`` for a lock with no deployment) → the checks: the alias 100 %
on one version, no lock, nothing in flight, the newest deployment's transitions chain (each ``from``
is the previous ``to``) and the version serving is the one the history says.

Kill points are drawn from a seeded RNG over the AWS calls a whole run of the command makes (listed
once by :func:`calibrate` with ``STAGEFLOW_FAILPOINT_TRACE``): half of them over every call, half
over the calls that change state (:data:`WRITES`: alias updates, versions, records, the lock, notices),
where a crash hurts most (a canary run makes ~90 calls, most of them metric reads and writes).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.helpers.policy import FAST_POLICY, PAUSE_AT_10, change_code, with_policy

COMMANDS = ("canary", "rollback")


@dataclass
class Cli:
    """The real CLI as a child process, in local mode, pointed at ``deployed``'s state."""

    project: Path
    deployed: object  # tests.conftest.Deployed
    config: Path | None = None

    def run(self, *args: str, env: dict | None = None, config: Path | None = None, timeout: float = 180):
        e = dict(os.environ)
        e.update(self.deployed.env(**(env or {})))
        cfg = config or self.config or self.project / "stageflow.toml"
        return subprocess.run(
            [sys.executable, "-m", "stageflow", "--config", str(cfg), "--local", *args],
            env=e,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def prepare(project: Path) -> tuple[Path, Path]:
    """Two configs in one project: the fast canary, and the same with a pause for approval at 10 %."""
    fast = with_policy(project / "stageflow.toml", FAST_POLICY)
    paused = with_policy(fast, FAST_POLICY, PAUSE_AT_10, out=project / "stageflow-paused.toml")
    return fast, paused


@dataclass
class Plan:
    index: int
    command: str  # "canary" | "rollback"
    when: str  # "before" | "after" the N-th AWS call
    fraction: float  # where in the run: over all its calls, or over its writes when on_write
    on_write: bool  # aim at a call that changes state (alias, version, record, lock, notice)
    follow: str  # for a killed canary: "resume" or "rollback"


def plan_cycles(runs: int, seed: int) -> list[Plan]:
    rng = random.Random(seed)
    return [
        Plan(
            index=i,
            command=COMMANDS[i % 2],  # both, evenly; where and how the kill falls is seeded
            when=rng.choice(("before", "after")),
            fraction=rng.random(),
            on_write=rng.random() < 0.5,
            follow=rng.choice(("resume", "rollback")),
        )
        for i in range(runs)
    ]


@dataclass
class CycleResult:
    index: int
    command: str
    failpoint: str
    killed: bool
    killed_at: str | None  # e.g. "after 23 Lambda.UpdateAlias"
    command_rc: int
    status_said: str
    follow_up: str | None
    follow_rc: int | None
    serving: str | None
    history_says: str | None
    final_status: str | None
    clean: bool
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


def _calls(trace: Path) -> list[str]:
    if not trace.exists():
        return []
    lines = trace.read_text().splitlines()
    return [ln.split(" ", 1)[1] for ln in lines if ln and not ln.startswith("KILL")]


# the calls that change state: a kill just before or after one of these is where a crash hurts most
WRITES = frozenset(
    {
        "lambda.UpdateAlias",
        "lambda.PublishVersion",
        "lambda.UpdateFunctionCode",
        "lambda.UpdateFunctionConfiguration",
        "dynamodb.PutItem",
        "dynamodb.UpdateItem",
        "dynamodb.DeleteItem",
        "dynamodb.TransactWriteItems",
        "sns.Publish",
    }
)


def kill_point(plan: Plan, calls: list[str]) -> int:
    """N (1-based) for ``plan`` over the calls of a whole run (``calls[i]`` is call i+1)."""
    kinds = sorted({op for op in calls if op in WRITES})
    if plan.on_write and kinds:
        # a kind of write first (each as likely: an alias update is as likely as a history update),
        # then one of its occurrences
        scaled = plan.fraction * len(kinds)
        kind = kinds[min(len(kinds) - 1, int(scaled))]
        at = [i + 1 for i, op in enumerate(calls) if op == kind]
        return at[min(len(at) - 1, int((scaled % 1) * len(at)))]
    return 1 + min(len(calls) - 1, int(plan.fraction * len(calls)))


def calibrate(cli: Cli, paused_config: Path, work: Path) -> dict[str, list[str]]:
    """The AWS calls (``service.Operation``, in order) of a whole `canary dev` and a whole
    `rollback dev` of a paused canary."""
    d = cli.deployed
    d.reset()
    counts = {}
    change_code(cli.project, f"calibrate-canary-{time.time_ns()}")
    trace = work / "calibrate-canary.trace"
    r = cli.run("canary", "dev", env={"STAGEFLOW_FAILPOINT_TRACE": str(trace)})
    assert r.returncode == 0, r.stderr[-2000:]
    counts["canary"] = _calls(trace)
    change_code(cli.project, f"calibrate-rollback-{time.time_ns()}")
    pre = cli.run("canary", "dev", "--no-input", config=paused_config)
    assert pre.returncode == 0 and "awaits approval" in pre.stdout, pre.stderr[-2000:]
    trace = work / "calibrate-rollback.trace"
    r = cli.run("rollback", "dev", env={"STAGEFLOW_FAILPOINT_TRACE": str(trace)})
    assert r.returncode == 0, r.stderr[-2000:]
    counts["rollback"] = _calls(trace)
    return counts


def expected_serving(history, base: str) -> tuple[str | None, str | None]:
    """(version, why): what the history says serves, from the newest deployment and rollback event."""
    deps = history.list(limit=1)
    rollbacks = [e for e in history.events(limit=10) if e.get("kind") == "rollback"]
    ev = rollbacks[0] if rollbacks else None
    dep = deps[0] if deps else None
    if ev and (dep is None or ev["at"] >= (dep.ended_at or dep.started_at)):
        return str(ev["to_version"]), f"rollback event {ev['at']}"
    if dep is None:
        return base, "nothing recorded"
    if dep.status == "succeeded":
        return dep.version, f"{dep.deployment_id} succeeded"
    if dep.status == "rolled_back":
        return dep.previous_version or base, f"{dep.deployment_id} rolled back"
    if dep.status == "failed" and not _moved(dep):
        return base, f"{dep.deployment_id} failed before traffic moved"
    return None, f"{dep.deployment_id} is {dep.status} ({dep.phase})"


def _moved(dep) -> bool:
    from stageflow.deploy.locks import moved_traffic

    return moved_traffic(dep) and any(t.get("to") not in ("pending", "failed") for t in dep.transitions)


def run_cycle(
    cli: Cli, paused_config: Path, plan: Plan, calls: dict[str, list[str]], work: Path
) -> CycleResult:
    from stageflow.history import ACTIVE

    t0 = time.monotonic()
    d = cli.deployed
    d.reset()
    base = d.base
    problems: list[str] = []
    change_code(cli.project, f"kill-cycle-{plan.index}-{time.time_ns()}")
    if plan.command == "rollback":
        pre = cli.run("canary", "dev", "--no-input", config=paused_config)
        if pre.returncode != 0 or "awaits approval" not in pre.stdout:
            problems.append(
                f"the canary to roll back did not pause: rc {pre.returncode}: {pre.stderr[-500:]}"
            )
    n = kill_point(plan, calls[plan.command])
    failpoint = f"kill-{plan.when}-call:{n}"
    trace = work / f"cycle-{plan.index}.trace"
    trace.unlink(missing_ok=True)
    args = ("canary", "dev") if plan.command == "canary" else ("rollback", "dev")
    r = cli.run(*args, env={"STAGEFLOW_FAILPOINT": failpoint, "STAGEFLOW_FAILPOINT_TRACE": str(trace)})
    kill_lines = [
        ln for ln in (trace.read_text().splitlines() if trace.exists() else []) if ln.startswith("KILL")
    ]
    killed = r.returncode == -9
    killed_at = kill_lines[0][len("KILL ") :] if kill_lines else None
    if killed != bool(kill_lines):
        problems.append(f"exit {r.returncode} but trace says {kill_lines}")
    if not killed and r.returncode != 0:
        problems.append(f"{plan.command} not killed, exit {r.returncode}: {r.stderr[-500:]}")

    h = d.history()
    st = cli.run("status", "dev")
    said = st.stdout
    if st.returncode != 0:
        problems.append(f"status exit {st.returncode}: {st.stderr[-300:]}")
    in_flight = h.in_flight()
    lock = h.lock()
    if in_flight is not None:
        if "in flight" not in said or in_flight.deployment_id not in said:
            problems.append("status does not name the deployment in flight")
        if not any(f"stageflow {c} dev" in said for c in ("resume", "rollback", "approve")):
            problems.append("status does not say what to run")
    if lock is not None:
        if str(lock.get("holder")) not in said or "lock:" not in said:
            problems.append("status does not name the lock's holder")
        waiting = in_flight is not None and in_flight.status == "awaiting_approval"
        if killed and not waiting and lock.get("pid") and "STALE" not in said:
            problems.append("a killed holder's lock is not called stale")

    follow, follow_rc = None, None
    if in_flight is not None:
        follow = "rollback" if plan.command == "rollback" else plan.follow
        if in_flight.status == "awaiting_approval":
            follow = "rollback"
        fr = cli.run(follow, "dev")
        follow_rc = fr.returncode
        ok = fr.returncode == 0 or (
            follow == "resume" and fr.returncode == 2 and "no traffic moved" in fr.stderr
        )
        if not ok:
            problems.append(f"{follow} exit {fr.returncode}: {fr.stderr[-500:]}")
    elif lock is not None:
        follow = "unlock"
        fr = cli.run("unlock", "dev", "--reason", f"kill cycle {plan.index}: holder killed")
        follow_rc = fr.returncode
        if fr.returncode != 0:
            problems.append(f"unlock exit {fr.returncode}: {fr.stderr[-500:]}")

    weights = d.weights()
    serving = next(iter(weights)) if len(weights) == 1 else None
    if serving is None or list(weights.values()) != [100]:
        problems.append(f"alias not settled: {weights}")
    if h.lock() is not None:
        problems.append(f"lock left: {h.lock()}")
    for status in ACTIVE:
        if h.by_status(status, limit=1):
            problems.append(f"a deployment is still {status}")
    newest = h.list(limit=1)
    final_status = newest[0].status if newest else None
    if newest:
        trans = newest[0].transitions
        for a, b in zip(trans, trans[1:], strict=False):
            if a.get("to") != b.get("from"):
                problems.append(f"transitions do not chain: {a.get('to')} → {b.get('from')}")
        if trans and trans[-1].get("to") != newest[0].phase:
            problems.append(f"last transition {trans[-1].get('to')} is not the phase {newest[0].phase}")
    says, why = expected_serving(h, base)
    if says != serving:
        problems.append(f"serving v{serving} but the history says v{says} ({why})")
    return CycleResult(
        index=plan.index,
        command=plan.command,
        failpoint=failpoint,
        killed=killed,
        killed_at=killed_at,
        command_rc=r.returncode,
        status_said=" / ".join(ln.strip() for ln in said.splitlines()[1:4]),
        follow_up=follow,
        follow_rc=follow_rc,
        serving=serving,
        history_says=says,
        final_status=final_status,
        clean=not problems,
        problems=problems,
        seconds=round(time.monotonic() - t0, 2),
    )


def summarize(results: list[CycleResult], calls: dict[str, list[str]], seed: int, seconds: float) -> dict:
    """The figures: runs, kill points hit, outcomes per command, all clean yes/no."""
    per: dict[str, Counter] = {c: Counter() for c in COMMANDS}
    for r in results:
        per[r.command]["runs"] += 1
        per[r.command]["killed" if r.killed else "not_killed (N past the last call)"] += 1
        per[r.command][f"then {r.follow_up or 'nothing'} → {r.final_status}"] += 1
        per[r.command]["clean" if r.clean else "NOT clean"] += 1
    return {
        "runs": len(results),
        "seed": seed,
        "calls_per_run": {c: len(v) for c, v in calls.items()},
        "writes_per_run": {c: sum(op in WRITES for op in v) for c, v in calls.items()},
        "kill_points_hit": sum(r.killed for r in results),
        "kill_points": sorted(
            {
                r.killed_at.split(" ", 2)[0] + " " + r.killed_at.split(" ", 2)[2]
                for r in results
                if r.killed_at
            }
        ),
        "outcomes": {c: dict(v) for c, v in per.items()},
        "all_clean": all(r.clean for r in results),
        "seconds": round(seconds, 1),
        "cycles": [r.to_json() for r in results],
    }


def run_cycles(cli: Cli, runs: int, seed: int, work: Path) -> dict:
    t0 = time.monotonic()
    fast, paused = prepare(cli.project)
    cli.config = fast
    calls = calibrate(cli, paused, work)
    results = [run_cycle(cli, paused, p, calls, work) for p in plan_cycles(runs, seed)]
    cli.deployed.reset()
    return summarize(results, calls, seed, time.monotonic() - t0)


def open_deployed(state: Path, work: Path):
    """dev built by Terraform in an emulator of its own, as the tests' ``deployed_env`` fixture builds it
    (tests/conftest.py), for scripts outside pytest (bench/reliability_kills.py). The emulator and the
    environment stay in ``state`` (reused by the next call); returns (Deployed, Emulator, started)."""
    from stageflow.local.emulator import Emulator
    from tests.conftest import Deployed, _raw_outputs, make_project, run_cli

    project = make_project(work / "project")
    emu = Emulator(state)
    status, started = emu.up()
    remembered = state / "outputs" / "local-dev.json"
    took = 0.0
    if not remembered.is_file():
        t0 = time.monotonic()
        r = run_cli(
            "--config",
            str(project / "stageflow.toml"),
            "--local",
            "--json",
            "apply",
            "dev",
            env={"STAGEFLOW_STATE_DIR": str(state)},
            timeout=900,
        )
        if r.returncode != 0:
            raise RuntimeError(f"stageflow apply dev failed: {r.stderr[-2000:]}")
        took = time.monotonic() - t0
    outputs = json.loads(remembered.read_text())["outputs"]
    return (
        Deployed(project, state, status.endpoint, outputs, took, _raw_outputs(project, state)),
        emu,
        started,
    )
