"""A two-function release vs a one-function release on the same in-memory fakes (tests/fakes.py).

Goal (issue 23): a two-function release within 1.3x of a one-function one. On the fakes nothing waits
(virtual clock, no network), so this measures only stageflow's own per-function work: publish, check,
alias moves, and one judge per function per look (the judge's statistics dominate). The comparison
on the emulator, through the CLI (build, Lambda calls, the local runtime running each function's
pre-traffic check): bench/release_emulator.py. Usage: python bench/release_functions.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def one_run(functions: int) -> float:
    from tests.fakes import FakeArtifact, config_env, fake_context, release_context

    from stageflow.deploy import canary

    env = config_env("dev")
    ctx = fake_context(env) if functions == 1 else release_context(env)
    t0 = time.perf_counter()
    res = canary.run_start(ctx, FakeArtifact("code-v2"))
    took = time.perf_counter() - t0
    assert res.outcome is not None and res.outcome.state.phase == "succeeded"
    return took


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    one_run(1)  # warm the imports (scipy for the judge)
    times = {1: [], 2: []}
    for _ in range(args.runs):
        for n in (1, 2):
            times[n].append(one_run(n))
    med = {n: statistics.median(t) for n, t in times.items()}
    result = {
        "what": "canary run_start on the in-memory fakes, dev policy (10/50/100), healthy metrics",
        "runs": args.runs,
        "one_function_median_s": round(med[1], 4),
        "two_functions_median_s": round(med[2], 4),
        "ratio": round(med[2] / med[1], 3),
        "goal_ratio": 1.3,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    out = HERE / "results" / "release_functions.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
