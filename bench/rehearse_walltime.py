"""Wall time of `stageflow rehearse --env prod` (a 60-minute production policy on the virtual clock)
for every shared scenario, and whether each gave its expected verdict. Goal (issue 5): under 15 s each.
Usage: python bench/rehearse_walltime.py [SCENARIO_DIR]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent


def main() -> int:
    sdir = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "scenarios"
    rows = []
    with tempfile.TemporaryDirectory() as state:
        env = dict(os.environ, STAGEFLOW_STATE_DIR=state)
        base = [sys.executable, "-m", "stageflow", "--config", str(REPO / "stageflow.toml"), "--local"]
        subprocess.run([*base, "local", "up"], env=env, check=True, capture_output=True)
        try:
            # not counted: the first rehearsal on a fresh emulator builds prod with Terraform (~2 min)
            t0 = time.perf_counter()
            first = sorted(sdir.glob("*.json"))[0]
            subprocess.run(
                [*base, "--json", "rehearse", "--scenario", str(first), "--env", "prod"],
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            setup_seconds = round(time.perf_counter() - t0, 1)
            for path in sorted(sdir.glob("*.json")):
                expect = json.loads(path.read_text()).get("expect")
                t0 = time.perf_counter()
                r = subprocess.run(
                    [*base, "--json", "rehearse", "--scenario", str(path), "--env", "prod"],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                wall = time.perf_counter() - t0
                out = json.loads(r.stdout) if r.stdout.strip() else {}
                ok = (out.get("verdict") == "promoted") == (expect == "promote")
                rows.append(
                    {
                        "scenario": path.name,
                        "expect": expect,
                        "verdict": out.get("verdict"),
                        "decided_at_minute": out.get("decided_at_minute"),
                        "exit": r.returncode,
                        "wall_seconds": round(wall, 2),
                        "matches": ok,
                    }
                )
                print(json.dumps(rows[-1]))
        finally:
            subprocess.run([*base, "local", "down"], env=env, capture_output=True)
    result = {
        "benchmark": "stageflow rehearse --env prod wall time",
        "goal_seconds": 15,
        "setup_seconds": setup_seconds,  # the uncounted first rehearsal that built prod with Terraform
        "rows": rows,
        "max_wall_seconds": max(r["wall_seconds"] for r in rows),
        "all_match": all(r["matches"] for r in rows),
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "rehearse_walltime.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["all_match"] and result["max_wall_seconds"] < 15 else 1


if __name__ == "__main__":
    sys.exit(main())
