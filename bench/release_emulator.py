"""A release of two functions vs a release of one, on the emulator, through the real CLI (issue 23,
goal: two within 1.3x of one).

Two services are applied with Terraform (setup, not measured), each into an emulator of its own (the
local outputs store remembers one service's outputs per state directory): the orders fixture
(tests/fixtures/services/orders: ``api`` and ``worker``, one package with pydantic) and ``solo``, the same
service with only ``[functions.api]``. Each run changes the code of both (a marker module) and times
``stageflow --local canary dev`` as a whole process: build (the zip), publish, the pre-traffic check
(the local runtime runs each function's new version with its smoke event; the functions' checks at
once), the dev policy's steps on the virtual clock with one judge per function per look, promotion.
The two services alternate run by run so that load on the shared machine hits both alike. Every
release must succeed.

Usage: python bench/release_emulator.py [--runs 5] [--state DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))


def solo_from(project: Path) -> None:
    """``project`` (a copy of orders) as a one-function service named ``solo``."""
    toml = project / "stageflow.toml"
    text = toml.read_text()
    start, end = text.index("[functions.worker]"), text.index("[environments.dev]")
    text = text[:start] + text[end:]
    toml.write_text(re.sub(r'(?m)^name = "orders"$', 'name = "solo"', text))


def cli(project: Path, state: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "STAGEFLOW_STATE_DIR": str(state), "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "stageflow", "--config", str(project / "stageflow.toml"), "--local", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and every process below it (the emulator, the function workers it runs
    and those it reaped), from /proc: what a release costs the emulator side, whatever the load."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(d.name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        tree.add(p)
        todo += [c for c, (ppid, _t) in stats.items() if ppid == p and c not in tree]
    return sum(stats[p][1] for p in tree if p in stats) / tick


def release(project: Path, state: Path, marker: str, functions: int, emu_pid: int) -> tuple[float, dict]:
    (project / "svc" / "orders" / "build_marker.py").write_text(f"MARKER = {json.dumps(marker)}\n")
    t0, c0, e0 = time.perf_counter(), _cpu(), _tree_cpu(emu_pid)
    r = cli(project, state, "--json", "canary", "dev")
    took, cpu, emu_cpu = time.perf_counter() - t0, _cpu() - c0, _tree_cpu(emu_pid) - e0
    if r.returncode != 0:
        raise SystemExit(f"canary of {project.name} failed ({r.returncode}): {r.stderr[-2000:]}")
    hist = json.loads(cli(project, state, "--json", "history", "dev").stdout)["deployments"][0]
    checks = hist["extra"]["pre_traffic"].get("functions") or [hist["extra"]["pre_traffic"]]
    pre = round(sum(c["duration_s"] for c in checks), 3)
    slowest = round(max(c["duration_s"] for c in checks), 3)  # the checks' wall time: they run at once
    shipped = {k: f["to_version"] for k, f in (hist.get("functions") or {}).items()}
    counts = (functions, 0) if functions == 1 else (functions,)  # an older one-function record: none
    if len(shipped) not in counts or hist["phase"] != "succeeded" or len(checks) != functions:
        raise SystemExit(f"{project.name}: expected a succeeded release of {functions}, got {shipped}")
    per = {c["function"]: c["duration_s"] for c in checks}
    info = {"pre_traffic_s": pre, "pre_traffic_slowest_s": slowest, "pre_traffic": per}
    return took, {**info, "cpu_s": round(cpu, 3), "emulator_cpu_s": round(emu_cpu, 3), "versions": shipped}


def main() -> int:
    from tests.helpers.orders import orders_project

    from stageflow.local.emulator import Emulator

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--state", type=Path, default=None, help="reuse an emulator state (kept running)")
    args = ap.parse_args()
    base = args.state or Path(tempfile.mkdtemp(prefix="release-emulator-"))
    states = {2: base / "state-orders", 1: base / "state-solo"}
    projects = {2: base / "orders", 1: base / "solo"}
    fresh = not projects[2].exists()
    if fresh:
        orders_project(projects[2])
        orders_project(projects[1])
        solo_from(projects[1])
    emus = {n: Emulator(st) for n, st in states.items()}
    pids = {}
    for n, emu in emus.items():
        emu.up()
        pids[n] = emu.status().pid
    setup = {}
    try:
        for n, project in projects.items():
            state = states[n]
            t0 = time.perf_counter()
            r = cli(project, state, "--json", "apply", "dev")
            if r.returncode != 0:
                raise SystemExit(f"apply of {project.name} failed: {r.stderr[-3000:]}")
            setup[f"apply_{n}_s"] = round(time.perf_counter() - t0, 1)
            release(project, state, f"warm-{time.time_ns()}", n, pids[n])  # uncounted: the zip's first build
        times: dict[int, list[float]] = {1: [], 2: []}
        details: dict[int, list[dict]] = {1: [], 2: []}
        for i in range(args.runs):
            for n in (2, 1) if i % 2 else (1, 2):
                took, info = release(projects[n], states[n], f"run-{i}-{time.time_ns()}", n, pids[n])
                times[n].append(took)
                details[n].append(info)
    finally:
        if args.state is None:
            for emu in emus.values():
                emu.down()
    med = {n: statistics.median(t) for n, t in times.items()}
    pre = {n: statistics.median(d["pre_traffic_s"] for d in details[n]) for n in details}
    slowest = {n: statistics.median(d["pre_traffic_slowest_s"] for d in details[n]) for n in details}
    cpu = {n: statistics.median(d["cpu_s"] for d in details[n]) for n in details}
    total = {n: statistics.median(d["cpu_s"] + d["emulator_cpu_s"] for d in details[n]) for n in details}
    result = {
        "what": "stageflow --local canary dev as a whole process (build, publish, pre-traffic check, "
        "dev policy 10% then 100% on the virtual clock, promotion), orders (api+worker) vs solo (api)",
        "runs": args.runs,
        "one_function_median_s": round(med[1], 3),
        "two_functions_median_s": round(med[2], 3),
        "ratio": round(med[2] / med[1], 3),
        "goal_ratio": 1.3,
        # the sum of the functions' check durations, and the slowest one's (the wall time: at once)
        "pre_traffic_median_s": {"one": round(pre[1], 3), "two": round(pre[2], 3)},
        "pre_traffic_slowest_median_s": {"one": round(slowest[1], 3), "two": round(slowest[2], 3)},
        # stageflow's own CPU (the CLI process; the emulator and the functions it runs are not in it)
        "cli_cpu_median_s": {
            "one": round(cpu[1], 3),
            "two": round(cpu[2], 3),
            "ratio": round(cpu[2] / cpu[1], 3),
        },
        # all the CPU a release costs: the CLI, the emulator and the function workers it runs (on a
        # machine whose cores are busy with other work, wall time follows this)
        "release_cpu_median_s": {
            "one": round(total[1], 3),
            "two": round(total[2], 3),
            "ratio": round(total[2] / total[1], 3),
        },
        "samples_s": {"one": [round(t, 3) for t in times[1]], "two": [round(t, 3) for t in times[2]]},
        "last_release": {"one": details[1][-1], "two": details[2][-1]},
        "setup": setup,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    out = HERE / "results" / "release_emulator.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if args.state is None:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
