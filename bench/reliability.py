"""Reliability figures (issue 14): deploy + rollback cycles under injected AWS faults, persistent
faults, and (when bench/reliability_kills.py exists) seeded SIGKILL runs, in one command.

Builds dev with Terraform in an emulator of its own state directory (``--state``; reused when its
outputs are remembered there, so only the first run pays the ~100-180 s apply), puts a fault proxy
(tests/helpers/faultproxy.py) on 127.0.0.1 in front of it and points stageflow at the proxy with
``STAGEFLOW_LOCAL_ENDPOINT``. Then:

1. ``--cycles`` (50) seeded deploy + rollback cycles under 5 % mixed faults on every AWS call
   (throttle, 429, 500, 503, slow, dropped, lost answers), in process through ``Factory`` /
   ``canary.run_start`` / ``rollback.rollback``, plus ``--cli-cycles`` through the real CLI; after each
   one the alias must serve exactly one version at 100 % and the record must be complete (read from
   the emulator directly);
2. persistent faults through the CLI (every promotion UpdateAlias, UpdateAlias for good, every metric
   read, every DynamoDB call, the on-call rollback with UpdateAlias down): exit code, the one error line,
   what the alias serves, whether the history chain is complete;
3. ``reliability_kills.run(runs, seed)`` of part A, when that module exists.

Writes bench/results/reliability.json.

    .venv/bin/python bench/reliability.py [--cycles 50] [--seed 14] [--state DIR] [--kill-runs 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(REPO))

FAST_RETRIES = {"STAGEFLOW_AWS_MAX_ATTEMPTS": "2"}


# -- counting the client's own retries (in-process cycles) ------------------------------------------
class RetryCounter:
    """Counts API calls (``before-call``, once per call) and HTTP attempts (``before-send``) of every
    client stageflow's factory makes: attempts - calls = retries botocore made."""

    def __init__(self):
        self.calls = 0
        self.attempts = 0

    def install(self):
        from stageflow import aws

        original = aws.AwsClients.client
        counter = self

        def client(self_, service):
            fresh = service not in self_._cache
            c = original(self_, service)
            if fresh:
                c.meta.events.register("before-call", counter._call)
                c.meta.events.register("before-send", counter._send)
            return c

        aws.AwsClients.client = client

    def _call(self, **_):
        self.calls += 1

    def _send(self, **_):
        self.attempts += 1


def build_environment(state: Path, project: Path) -> tuple[str, dict, float]:
    """The emulator of ``state`` running, dev built by Terraform there; (endpoint, outputs, apply s)."""
    from stageflow.local.emulator import Emulator

    emu = Emulator(state)
    status, _ = emu.up()
    remembered = state / "outputs" / "local-dev.json"
    if remembered.is_file():
        data = json.loads(remembered.read_text())
        if data.get("endpoint") == status.endpoint:
            return status.endpoint, data["outputs"], 0.0
    t0 = time.monotonic()
    r = cli(project, state, None, "--json", "apply", "dev", timeout=1200)
    if r.returncode != 0:
        raise SystemExit(f"bench: stageflow apply dev failed ({r.returncode}): {r.stderr[-2000:]}")
    return status.endpoint, json.loads(remembered.read_text())["outputs"], time.monotonic() - t0


def cli(project: Path, state: Path, endpoint: str | None, *args, env=None, timeout=300):
    e = {**os.environ, "STAGEFLOW_STATE_DIR": str(state), **(env or {})}
    e.pop("STAGEFLOW_LOCAL_ENDPOINT", None)
    if endpoint:
        e["STAGEFLOW_LOCAL_ENDPOINT"] = endpoint
    return subprocess.run(
        [sys.executable, "-m", "stageflow", "--config", str(project / "stageflow.toml"), "--local", *args],
        env=e,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def settle(direct, outputs, project, state, upstream):
    """Between cases: no deployment in flight, no lock, the alias on one version (a plain rollback
    without faults when it is split)."""
    from datetime import UTC, datetime

    from tests.helpers import faultcycles as fc

    from stageflow.history import DynamoHistory, iso

    h = DynamoHistory(direct.client("dynamodb"), outputs["history_table"], "sample-api", "dev")
    if len(fc.weights(direct.client("lambda"), outputs["function_name"], outputs["alias_name"])) > 1:
        cli(project, state, upstream, "rollback", "dev")
    for _ in range(5):
        dep = h.in_flight()
        if dep is None:
            break
        h.update(dep, status="failed", phase="failed", ended_at=iso(datetime.now(UTC)))
    if h.lock():
        h.break_lock("bench reset", "bench", datetime.now(UTC))


def persistent_cases(project, state, upstream, direct, outputs) -> list[dict]:
    from tests.helpers import faultcycles as fc

    from stageflow.history import DynamoHistory

    cases = [
        # name, service, operation, fail(n), command, expected exit
        ("promotion UpdateAlias fails (2 attempts), rollback works", "lambda", "UpdateAlias",
         lambda n: n in (2, 3), "canary", 3),
        ("UpdateAlias down after the first step", "lambda", "UpdateAlias", lambda n: n >= 2, "canary", 5),
        ("every metric read fails", "monitoring", "GetMetricData", lambda n: True, "canary", 4),
        ("every DynamoDB call fails (history down)", "dynamodb", None, lambda n: True, "canary", 3),
        ("on-call rollback with UpdateAlias down", "lambda", "UpdateAlias", lambda n: True, "rollback", 5),
    ]  # fmt: skip
    h = DynamoHistory(direct.client("dynamodb"), outputs["history_table"], "sample-api", "dev")
    lam = direct.client("lambda")
    results = []
    for name, service, op, fail, command, expect in cases:
        settle(direct, outputs, project, state, upstream)
        if command == "rollback":  # something to roll back: a clean canary first
            (project / "app" / "service" / "build_marker.py").write_text(f"MARKER = 'rb-{time.time_ns()}'\n")
            cli(project, state, upstream, "canary", "dev")
        (project / "app" / "service" / "build_marker.py").write_text(f"MARKER = 'p-{time.time_ns()}'\n")
        proxy = fc.ScriptedProxy(upstream, service, op, fail)
        proxy.start()
        t0 = time.monotonic()
        r = cli(project, state, proxy.endpoint, command, "dev", env=FAST_RETRIES)
        took = time.monotonic() - t0
        proxy.stop()
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("stageflow: error:")]
        w = fc.weights(lam, outputs["function_name"], outputs["alias_name"])
        dep = (h.list(limit=1) or [None])[0]
        results.append(
            {
                "case": name,
                "command": f"stageflow {command} dev",
                "fault": f"503 on every {'matching ' if op else ''}{service}:{op or '*'} call by the rule",
                "faults_injected": proxy.injected_total(),
                "expected_exit": expect,
                "exit": r.returncode,
                "ok": r.returncode == expect and len(lines) == 1 and "Traceback" not in r.stderr,
                "error_line": lines[0] if len(lines) == 1 else lines,
                "alias_after": w,
                "history_chain_complete": dep is not None and not fc.chain_problems(dep),
                "last_status": dep.status if dep else None,
                "seconds": round(took, 1),
            }
        )
    settle(direct, outputs, project, state, upstream)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=50)
    ap.add_argument("--cli-cycles", type=int, default=3)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--kill-runs", type=int, default=20)
    ap.add_argument(
        "--state",
        type=Path,
        default=Path(
            os.environ.get("STAGEFLOW_BENCH_STATE", Path(tempfile.gettempdir()) / "stageflow-bench-rel")
        ),
        help="state directory of the bench's emulator (dev is built once and reused)",
    )
    ap.add_argument("--out", type=Path, default=OUT / "reliability.json")
    args = ap.parse_args(argv)

    from tests.conftest import make_project
    from tests.helpers import faultcycles as fc
    from tests.helpers.faultproxy import FaultProxy

    from stageflow.aws import AwsClients, AwsTarget

    wall0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="stageflow-bench-rel-"))
    project = fc.with_policy(make_project(tmp / "project"))
    args.state.mkdir(parents=True, exist_ok=True)
    upstream, outputs, apply_s = build_environment(args.state, project)
    direct = AwsClients(AwsTarget("us-east-1", True, upstream))
    settle(direct, outputs, project, args.state, upstream)

    proxy = FaultProxy(upstream, (), seed=args.seed)
    proxy.start()
    os.environ["STAGEFLOW_LOCAL_ENDPOINT"] = proxy.endpoint
    retries = RetryCounter()
    retries.install()
    tally = fc.Tally()
    t_cycles = time.monotonic()
    for i in range(args.cycles):
        proxy.configure(fc.mixed_faults(args.rate), seed=args.seed * 1000 + i)
        tally.cycles.append(fc.run_cycle(project, args.state, direct, outputs, i, "bench-"))
        tally.add_proxy(proxy)
        c = tally.cycles[-1]
        print(
            f"cycle {i + 1}/{args.cycles}: deploy {c.deploy_phase} (exit {c.deploy_exit}), rollback exit "
            f"{c.rollback_exit}, alias {c.weights}, {c.seconds:.1f} s"
            + (f" PROBLEMS {c.problems}" if c.problems else ""),
            file=sys.stderr,
            flush=True,
        )
    cycles_s = time.monotonic() - t_cycles
    del os.environ["STAGEFLOW_LOCAL_ENDPOINT"]
    # through the real CLI (child processes; their retries are not counted here)
    cli_results = []
    for i in range(args.cli_cycles):
        proxy.configure(fc.mixed_faults(args.rate), seed=args.seed * 1000 + 900 + i)
        (project / "app" / "service" / "build_marker.py").write_text(f"MARKER = 'cli-{i}-{time.time_ns()}'\n")
        d = cli(project, args.state, proxy.endpoint, "canary", "dev")
        r = cli(project, args.state, proxy.endpoint, "rollback", "dev")
        tally.add_proxy(proxy)
        w = fc.weights(direct.client("lambda"), outputs["function_name"], outputs["alias_name"])
        cli_results.append(
            {
                "canary_exit": d.returncode,
                "rollback_exit": r.returncode,
                "alias_after": w,
                "ok": d.returncode in (0, 4) and r.returncode == 0 and sorted(w.values()) == [100],
            }
        )
    proxy.stop()

    persistent = persistent_cases(project, args.state, upstream, direct, outputs)

    kills = None
    kills_path = REPO / "bench" / "reliability_kills.py"
    if kills_path.is_file():
        spec = importlib.util.spec_from_file_location("reliability_kills", kills_path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        kills = mod.run(args.kill_runs, args.seed)

    summary = tally.summary()
    result = {
        "bench": "reliability",
        "command": "make bench-reliability (.venv/bin/python bench/reliability.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
        + ")",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "commit": subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "terraform_apply_seconds": round(apply_s, 1),
        "cycles": {
            "runs": args.cycles,
            "seed": args.seed,
            "fault_rate_configured": args.rate,
            "fault_rates_by_kind_configured": {k: round(args.rate * v, 4) for k, v in fc.MIX.items()},
            "slow_delay_s": fc.SLOW_DELAY_S,
            **summary,
            "client_calls": retries.calls,
            "client_attempts": retries.attempts,
            "client_retries": retries.attempts - retries.calls,
            "wall_seconds": round(cycles_s, 1),
            "per_cycle": [
                {
                    "i": c.index,
                    "deploy": c.deploy_phase,
                    "deploy_exit": c.deploy_exit,
                    "rollback_exit": c.rollback_exit,
                    "alias_after": c.weights,
                    "seconds": c.seconds,
                    **({"deploy_error": c.deploy_error} if c.deploy_error else {}),
                }
                for c in tally.cycles
            ],
        },
        "cli_cycles": cli_results,
        "persistent_faults": persistent,
        "kills": kills if kills is not None else "bench/reliability_kills.py not present (part A)",
        "wall_seconds": round(time.monotonic() - wall0, 1),
    }
    ok = (
        summary["all_ok"]
        and all(c["ok"] for c in cli_results)
        and all(p["ok"] and p["history_chain_complete"] for p in persistent)
    )
    result["all_ok"] = ok
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(
        f"reliability: {args.cycles} cycles under {args.rate:.0%} faults: "
        f"{args.cycles - len(summary['failed_cycles'])}/{args.cycles} clean, "
        f"{summary['faults_injected']} faults "
        f"injected in {summary['aws_calls']} calls, {retries.attempts - retries.calls} client retries; "
        f"persistent: {sum(p['ok'] for p in persistent)}/{len(persistent)} as documented; "
        f"{result['wall_seconds']} s → {args.out}",
        flush=True,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
