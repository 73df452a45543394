"""Many rehearsals on one long-lived emulator: does the Nth take as long as the first? (issue 13)

Starts one emulator (its own state directory), then runs ``stageflow rehearse --env prod`` (the
60-minute production policy on the virtual clock) N times in a row with the same scenario, each as a
whole process, as a team rehearsing a library of scenarios in CI would. Records per run: wall time,
the stageflow process's CPU time and the emulator's CPU time (from /proc), the verdict.

    .venv/bin/python bench/rehearse_repeat.py [--runs 100] [--scenario FILE]

Writes bench/results/rehearse_repeat.json and .md. Goals: median wall <= 10 s; last/first <= 1.2
(first and last are each the median of 5 runs, so one noisy run on a shared machine does not decide).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "results"
TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument(
        "--scenario", type=Path, default=REPO.parent / "shared" / "scenarios" / "healthy-identical.json"
    )
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument(
        "--from-log", type=Path, help="only summarize the JSON lines an earlier (partial) run printed"
    )
    a = ap.parse_args(argv)
    if a.from_log:
        rows = [json.loads(x) for x in a.from_log.read_text().splitlines() if x.startswith('{"run"')]
        return summarize(rows, a.scenario.name, a.out, a.runs)
    rows = []
    with tempfile.TemporaryDirectory() as state:
        env = dict(os.environ, STAGEFLOW_STATE_DIR=state)
        base = [sys.executable, "-m", "stageflow", "--config", str(REPO / "stageflow.toml"), "--local"]
        subprocess.run([*base, "local", "up"], env=env, check=True, capture_output=True)
        try:
            emu_pid = int(
                json.loads(
                    subprocess.run(
                        [*base, "--json", "local", "status"],
                        env=env,
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                )["pid"]
            )
            # not counted: the first rehearsal on a fresh emulator builds the prod environment with
            # Terraform (about two minutes); the runs measure rehearsals, not that apply
            t0 = time.perf_counter()
            warm = subprocess.run(
                [*base, "--json", "rehearse", "--scenario", str(a.scenario), "--env", "prod"],
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            setup = {"setup_seconds": round(time.perf_counter() - t0, 1), "exit": warm.returncode}
            print(json.dumps(setup), flush=True)
            for i in range(a.runs):
                emu0 = _cpu(emu_pid)
                ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                r = subprocess.run(
                    [*base, "--json", "rehearse", "--scenario", str(a.scenario), "--env", "prod"],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                wall = time.perf_counter() - t0
                ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                out = json.loads(r.stdout) if r.stdout.strip() else {}
                rows.append(
                    {
                        "run": i + 1,
                        "wall_seconds": round(wall, 2),
                        "stageflow_cpu_seconds": round(
                            ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 2
                        ),
                        "emulator_cpu_seconds": round(_cpu(emu_pid) - emu0, 2),
                        "verdict": out.get("verdict"),
                        "exit": r.returncode,
                        "load_avg_1min": round(os.getloadavg()[0], 1),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
        finally:
            subprocess.run([*base, "local", "down"], env=env, capture_output=True)
    return summarize(rows, a.scenario.name, a.out, a.runs, setup)


def summarize(rows: list[dict], scenario: str, out: Path, planned: int, setup: dict | None = None) -> int:
    def med(key, part):
        return round(statistics.median(r[key] for r in part), 2)

    k = min(5, len(rows))
    first, last = rows[:k], rows[-k:]
    summary = {
        "runs": len(rows),
        "planned_runs": planned,
        "scenario": scenario,
        "median_wall_seconds": med("wall_seconds", rows),
        "first_wall_seconds": med("wall_seconds", first),
        "last_wall_seconds": med("wall_seconds", last),
        "first_cpu_seconds": med("stageflow_cpu_seconds", first) + med("emulator_cpu_seconds", first),
        "last_cpu_seconds": med("stageflow_cpu_seconds", last) + med("emulator_cpu_seconds", last),
        "all_promoted": all(r["verdict"] == "promoted" for r in rows),
        "cpus": os.cpu_count(),
        "setup": setup,  # the uncounted first rehearsal that built the environment with Terraform
    }
    summary["last_over_first_wall"] = round(summary["last_wall_seconds"] / summary["first_wall_seconds"], 3)
    summary["last_over_first_cpu"] = round(summary["last_cpu_seconds"] / summary["first_cpu_seconds"], 3)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rehearse_repeat.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=2) + "\n")
    (out / "rehearse_repeat.md").write_text(markdown(summary, rows))
    print(markdown(summary, rows))
    ok = (
        summary["median_wall_seconds"] <= 10
        and summary["last_over_first_wall"] <= 1.2
        and len(rows) == planned
    )
    return 0 if ok and summary["all_promoted"] else 1


def markdown(s, rows) -> str:
    lines = [
        "# Rehearsals on one long-lived emulator",
        "",
        f"`bench/rehearse_repeat.py`: {s['runs']} (of {s['planned_runs']} planned) consecutive "
        "`stageflow rehearse --env prod --scenario "
        f"{s['scenario']}` (60-minute prod policy, virtual clock), each a whole process, on one emulator; "
        f"{s['cpus']} CPUs shared with other work (1-minute load average per run in the JSON).",
        "",
        f"- median wall **{s['median_wall_seconds']} s**; first 5 (median) {s['first_wall_seconds']} s, "
        f"last 5 "
        f"{s['last_wall_seconds']} s: last/first **{s['last_over_first_wall']}**",
        f"- CPU (stageflow + emulator, medians): first {s['first_cpu_seconds']:.2f} s, last "
        f"{s['last_cpu_seconds']:.2f} s: last/first **{s['last_over_first_cpu']}**",
        f"- every run promoted: {s['all_promoted']}",
        *(
            [
                f"- not counted: the first rehearsal on the fresh emulator, which built the prod environment "
                f"with Terraform ({s['setup']['setup_seconds']} s, exit {s['setup']['exit']})"
            ]
            if s.get("setup")
            else []
        ),
        "",
        "| run | wall s | stageflow CPU s | emulator CPU s | load | verdict |",
        "|---|---|---|---|---|---|",
    ]
    step = max(1, len(rows) // 20)
    for r in rows:
        if r["run"] <= 3 or r["run"] % step == 0 or r["run"] == len(rows):
            lines.append(
                f"| {r['run']} | {r['wall_seconds']} | {r['stageflow_cpu_seconds']} "
                f"| {r['emulator_cpu_seconds']} | {r['load_avg_1min']} | {r['verdict']} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
