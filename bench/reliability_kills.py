"""SIGKILL at seeded AWS calls of `canary dev` and `rollback dev`, each followed by `status` and what
it says (`resume` / `rollback` / `unlock`); every run must end clean: the alias 100 % on one version,
no lock, nothing in flight, transitions that chain, the version serving the one the history says.

The same cycle as tests/reliability/test_kills.py (tests/helpers/killcycle.py), on dev built by
Terraform in an emulator of its own (state in --state-dir, reused across runs; the first build takes
~2-3 min). bench/reliability.py imports :func:`run` for bench/results/reliability.json.

Usage: python bench/reliability_kills.py [--runs 40] [--seed 7] [--state-dir DIR] [--keep]
Figures: bench/results/reliability_kills.json (runs, kill points hit, outcomes per command, all clean).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
DEFAULT_STATE = REPO / ".stageflow" / "bench-reliability-kills"


def _safe_env() -> None:
    """As the tests do: nothing here may reach a real AWS account (the CLI runs with --local)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "STAGEFLOW_LOCAL", "STAGEFLOW_STATE_DIR"):
        os.environ.pop(name, None)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/stageflow-bench/credentials"
    os.environ["AWS_CONFIG_FILE"] = "/nonexistent/stageflow-bench/config"


def run(runs: int, seed: int, *, state_dir: Path | None = None, keep: bool = True) -> dict:
    """``runs`` seeded kill cycles; the figures as a dict (see tests/helpers/killcycle.summarize)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    _safe_env()
    from tests.helpers.killcycle import Cli, open_deployed, run_cycles

    state = Path(state_dir or DEFAULT_STATE)
    state.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stageflow-kills-") as tmp:
        work = Path(tmp)
        deployed, emu, started = open_deployed(state, work)
        try:
            figures = run_cycles(Cli(deployed.project, deployed), runs, seed, work)
        finally:
            if started and not keep:
                emu.down()
    figures["first_apply_seconds"] = round(deployed.apply_seconds, 1)
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--state-dir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="leave the emulator running afterwards")
    args = ap.parse_args()
    t0 = time.monotonic()
    figures = run(args.runs, args.seed, state_dir=args.state_dir, keep=args.keep)
    result = {
        "benchmark": "reliability_kills",
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "command": f"python bench/reliability_kills.py --runs {args.runs} --seed {args.seed}",
        "wall_seconds": round(time.monotonic() - t0, 1),
        **figures,
    }
    out = HERE / "results" / "reliability_kills.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    summary = {k: result[k] for k in ("runs", "kill_points_hit", "outcomes", "all_clean", "wall_seconds")}
    print(json.dumps(summary, indent=1))
    return 0 if result["all_clean"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
