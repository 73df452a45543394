"""How fast `stageflow --help` answers, and that no heavy library is imported for it.

Goal (issue 2): under 0.5 s. Runs the console script N times in fresh processes and records the
median and worst wall time, plus whether boto3, botocore, docker or scipy were imported.
Usage: python bench/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEAVY = ("boto3", "botocore", "docker", "scipy", "numpy", "rich", "matplotlib", "PIL")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "stageflow", "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from stageflow.cli import main\n"
            "import contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['--help'])\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    heavy = [m for m in probe.stdout.strip().split(",") if m]
    baseline = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        baseline.append(time.perf_counter() - t0)
    result = {
        "benchmark": "stageflow --help wall time",
        "goal_seconds": 0.5,
        "runs": args.runs,
        "median_seconds": round(statistics.median(times), 4),
        "max_seconds": round(max(times), 4),
        "python_startup_median_seconds": round(statistics.median(baseline), 4),
        "heavy_modules_imported": heavy,
        "meets_goal": statistics.median(times) < 0.5 and not heavy,
        "machine": f"{platform.machine()} {platform.python_version()}",
    }
    out = HERE / "results" / "cli_startup.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["meets_goal"] else 1


if __name__ == "__main__":
    sys.exit(main())
