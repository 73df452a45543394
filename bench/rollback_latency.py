"""Rollback latency on the local emulator, two figures:

1. Tool time from a rollback request (an alarm event read) to the alias verified on the stable version
   (goal, issue 4: within 1 s): publish a canary at 50 %, then time ``from_alarm_event`` in-process (the
   same path as the CLI and the Lambda handler), N times.
2. The on-call command as a whole process against one AWS CLI call (goal, issue 22: ≤ 1.0×): a no-op
   ``stageflow rollback dev`` (all traffic already on stable) vs ``aws lambda update-alias`` of the same
   alias to the same version, both on the same emulator, alternated in one run so they see the same load.
   The rollback is timed in local mode (``--local``, as on the emulator) and against the emulator as the
   AWS endpoint (``--no-local``, ``STAGEFLOW_AWS_ENDPOINT``: the production import path).

The bench starts its own emulator in a temporary state directory and creates a function with an alias and
a history table there (tests/helpers/resources.py; no Terraform), and stops it at the end.
Usage: python bench/rollback_latency.py [--runs 10] [--process-runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
CREDS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _alarm_event(alarm: str) -> dict:
    message = {"AlarmName": alarm, "NewStateValue": "ALARM", "NewStateReason": "bench"}
    return {"Records": [{"Sns": {"Message": json.dumps(message)}}]}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(argv: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child itself) of one whole process."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    elapsed, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return elapsed, cpu


def _median(xs: list[float]) -> float:
    return round(statistics.median(xs), 3)


def tool_time(factory, out, pub, runs: int) -> dict:
    from stageflow.commands.canary import environments_for_alarm
    from stageflow.deploy.traffic import AliasTraffic
    from stageflow.factory import Factory
    from stageflow.report import Reporter
    from stageflow.rollback.cli import from_alarm_event

    traffic = AliasTraffic(factory.aws.client("lambda"), out.function_name, out.alias_name)
    event = _alarm_event(out.alarm_names[0])
    tool, wall = [], []
    for _ in range(runs):
        traffic.set_canary(pub.previous_version, pub.version, 50)
        g = Factory(
            config_path=REPO / "stageflow.toml",
            local=True,
            state_dir=factory.state_dir,
            reporter=Reporter(quiet=True),
        )
        t0 = time.perf_counter()
        res = from_alarm_event(
            event,
            None,
            environments_for=lambda alarm, g=g: environments_for_alarm(g, alarm),
            context_for=g.environment,
            reporter=g.reporter,
        )
        wall.append(time.perf_counter() - t0)
        tool.append(res[0].seconds_to_restore)
        assert traffic.state().weights == {pub.previous_version: 100}
    return {
        "runs": runs,
        "tool_seconds_median": _median(tool),
        "tool_seconds_max": round(max(tool), 3),
        "wall_seconds_median_including_setup": _median(wall),
        "meets_goal": max(tool) < 1.0,
    }


def process_times(state: Path, endpoint: str, out, stable: str, runs: int) -> dict:
    base = {**os.environ, **CREDS, "STAGEFLOW_STATE_DIR": str(state)}
    aws_mode = {**base, "STAGEFLOW_AWS_ENDPOINT": endpoint}
    stageflow = [sys.executable, "-m", "stageflow"]
    cli = shutil.which("aws")
    if cli is None:
        raise SystemExit("the AWS CLI (aws) is not on PATH")
    update_alias = [
        cli, "lambda", "update-alias", "--function-name", out.function_name, "--name", out.alias_name,
        "--function-version", stable, "--endpoint-url", endpoint, "--region", "us-east-1",
    ]  # fmt: skip
    kinds = {
        "aws_cli_update_alias": (update_alias, base),
        "stageflow_rollback_local": ([*stageflow, "--local", "-q", "rollback", "dev"], base),
        "stageflow_rollback_aws_endpoint": ([*stageflow, "--no-local", "-q", "rollback", "dev"], aws_mode),
    }
    for argv, env in kinds.values():  # warm the file cache; not counted
        _timed(argv, env)
    wall: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(runs):
        for name, (argv, env) in kinds.items():
            w, c = _timed(argv, env)
            wall[name].append(w)
            cpu[name].append(c)
    result = {"runs": runs, "goal_ratio": 1.0}
    for name in kinds:
        xs = wall[name]
        result[name] = {
            "median_s": _median(xs),
            "min_s": round(min(xs), 3),
            "max_s": round(max(xs), 3),
            "cpu_median_s": _median(cpu[name]),
        }
    for name in ("stageflow_rollback_local", "stageflow_rollback_aws_endpoint"):
        short = name.removeprefix("stageflow_")
        cli = "aws_cli_update_alias"
        result[f"ratio_{short}"] = round(statistics.median(wall[name]) / statistics.median(wall[cli]), 2)
        result[f"cpu_ratio_{short}"] = round(statistics.median(cpu[name]) / statistics.median(cpu[cli]), 2)
    result["meets_goal"] = (
        result["ratio_rollback_local"] <= 1.0 and result["ratio_rollback_aws_endpoint"] <= 1.0
    )
    return result


def main() -> int:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.helpers.resources import make_service

    from stageflow.commands.rehearse import rehearsal_artifact
    from stageflow.deploy.publish import publish
    from stageflow.factory import Factory
    from stageflow.local.emulator import Emulator
    from stageflow.packaging.lambda_zip import package
    from stageflow.report import Reporter

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10, help="in-process alarm-event rollbacks")
    ap.add_argument("--process-runs", type=int, default=15, help="whole-process rounds (each kind once)")
    args = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="stageflow-rollback-bench-"))
    emulator = Emulator(state)
    status, _ = emulator.up()
    try:
        f = Factory(
            config_path=REPO / "stageflow.toml", local=True, state_dir=state, reporter=Reporter(quiet=True)
        )
        out = make_service(f, "dev")
        os.environ.update({**CREDS, "STAGEFLOW_AWS_ENDPOINT": status.endpoint})
        Factory(
            config_path=REPO / "stageflow.toml", local=False, state_dir=state, reporter=Reporter(quiet=True)
        ).remember_outputs("dev", out)  # the same resources, reached as AWS at the emulator's endpoint
        lam = f.aws.client("lambda")
        artifact = rehearsal_artifact(package(REPO / "app"), f"rollback bench {time.time_ns()}")
        pub = publish(lam, out.function_name, out.alias_name, artifact)
        tool = tool_time(f, out, pub, args.runs)
        proc = process_times(state, status.endpoint, out, pub.previous_version, args.process_runs)
    finally:
        emulator.down()
        shutil.rmtree(state, ignore_errors=True)
    result = {
        "benchmark": "rollback on the local emulator over HTTP: tool time, and the on-call command as a "
        "whole process vs one AWS CLI call",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()},
        "goal_seconds": 1.0,
        **tool,
        "whole_process_vs_aws_cli": proc,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "rollback_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if tool["meets_goal"] and proc["meets_goal"] else 1


if __name__ == "__main__":
    sys.exit(main())
