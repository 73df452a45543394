"""Tool time from a rollback request (an alarm event read) to the alias verified on the stable version.

Goal (issue 4): within 1 s. Against the local emulator over HTTP, on the dev environment Terraform built
there (run `make demo` first; the bench uses the repository's .stageflow state): publish a canary at
50 %, then time `from_alarm_event` (the same path as the CLI and the Lambda handler), N times.
Usage: python bench/rollback_latency.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent


def main() -> int:
    from stageflow.commands.canary import environments_for_alarm
    from stageflow.commands.rehearse import rehearsal_artifact
    from stageflow.deploy.publish import publish
    from stageflow.deploy.traffic import AliasTraffic
    from stageflow.factory import Factory
    from stageflow.packaging.lambda_zip import package
    from stageflow.report import Reporter
    from stageflow.rollback.cli import from_alarm_event

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    state = REPO / ".stageflow"
    # the environment `make demo` built (its emulator keeps running afterwards)
    f = Factory(
        config_path=REPO / "stageflow.toml",
        local=True,
        state_dir=state,
        reporter=Reporter(quiet=True),
        command="status",
    )
    try:
        out = f.outputs("dev")
        lam = f.aws.client("lambda")
        artifact = rehearsal_artifact(package(REPO / "app"), f"rollback bench {time.time_ns()}")
        pub = publish(lam, out.function_name, out.alias_name, artifact)
        traffic = AliasTraffic(lam, out.function_name, out.alias_name)
        event = {
            "Records": [
                {
                    "Sns": {
                        "Message": json.dumps(
                            {
                                "AlarmName": out.alarm_names[0],
                                "NewStateValue": "ALARM",
                                "NewStateReason": "bench",
                            }
                        )
                    }
                }
            ]
        }
        tool, wall = [], []
        for _ in range(args.runs):
            traffic.set_canary(pub.previous_version, pub.version, 50)
            g = Factory(
                config_path=REPO / "stageflow.toml",
                local=True,
                state_dir=state,
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
    finally:
        traffic.restore(pub.previous_version)
    result = {
        "benchmark": "alarm event → all traffic on the stable version (local emulator over HTTP)",
        "goal_seconds": 1.0,
        "runs": args.runs,
        "tool_seconds_median": round(statistics.median(tool), 3),
        "tool_seconds_max": round(max(tool), 3),
        "wall_seconds_median_including_setup": round(statistics.median(wall), 3),
        "meets_goal": max(tool) < 1.0,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "rollback_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["meets_goal"] else 1


if __name__ == "__main__":
    sys.exit(main())
