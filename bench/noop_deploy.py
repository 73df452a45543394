"""A deploy with nothing changed vs a bare `terraform plan` of the same root on the same emulator.

Goal (issue 12): the whole no-op `stageflow --local deploy dev` (a process: build → image → security →
infrastructure → secrets → canary) takes at most 1.5× a bare `terraform plan` of
`infrastructure/environments/dev` against the same emulator, with the same provider override and
backend stageflow uses (set up through `stageflow.terraform.api`).

1. A warm-up deploy applies dev to the emulator (its time is recorded: the first apply when the
   environment is new) and fills the caches a no-op deploy relies on.
2. Then, alternately, N times: the no-op deploy as a process (it must plan no changes and publish no
   version) and a bare `terraform plan -input=false -detailed-exitcode` (it must exit 0: no changes).
Medians of the same run; results in bench/results/noop_deploy.json.

Terraform is the infrastructure step in local mode too (the old STAGEFLOW_LOCAL_TERRAFORM=1 is
still set, and ignored).
Usage: python bench/noop_deploy.py [--runs 3] [--env dev] [--state-dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
GOAL = 1.5


def deploy(env_name: str, child_env: dict[str, str]) -> tuple[float, dict]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "stageflow", "--local", "--json", "deploy", env_name],
        cwd=REPO,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    took = time.monotonic() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"noop_deploy: deploy {env_name} exited {proc.returncode}")
    return took, json.loads(proc.stdout)


def stages(run: dict) -> dict[str, dict]:
    return {s["name"]: s for s in run["stages"]}


def bare_plan_runner(env_name: str, state_dir: Path):
    """A function timing one bare `terraform plan` of the environment's root, set up as stageflow
    sets up its own: the same TF_DATA_DIR (initialised), backend, provider override and environment."""
    from stageflow.factory import Factory
    from stageflow.report import Reporter

    f = Factory(
        config_path=REPO / "stageflow.toml", local=True, state_dir=state_dir, reporter=Reporter(quiet=True)
    )
    terraform = f.terraform
    target = terraform.resolve_target(env_name)
    tf = terraform.open(target)
    argv = [tf.binary, "plan", "-input=false", "-no-color", "-detailed-exitcode"]
    argv += [f"-var-file={v}" for v in target.var_files]

    def once() -> float:
        with terraform.provider_override(target):  # the provider override stageflow writes for local mode
            terraform.prepare(target, tf)  # init is skipped: nothing changed since the deploy's
            t0 = time.monotonic()
            proc = subprocess.run(
                argv, cwd=target.root, env=tf.env, capture_output=True, text=True, timeout=1800
            )
            took = time.monotonic() - t0
        if proc.returncode != 0:  # 2: changes, 1: error — either way not a no-op
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
            raise SystemExit(f"noop_deploy: bare plan exited {proc.returncode} (0 = no changes expected)")
        return took

    return once, str(tf.version), f


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--env", default="dev")
    ap.add_argument("--state-dir", type=Path, default=REPO / ".stageflow" / "bench-noop")
    ap.add_argument("--keep", action="store_true", help="leave the emulator running afterwards")
    args = ap.parse_args()
    state_dir = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    child_env = dict(os.environ, STAGEFLOW_STATE_DIR=str(state_dir), STAGEFLOW_LOCAL_TERRAFORM="1")
    child_env.pop("STAGEFLOW_LOCAL", None)

    from stageflow.local.emulator import Emulator

    was_running = Emulator(state_dir).status().running
    warm_s, warm = deploy(args.env, child_env)
    warm_infra = stages(warm)["infrastructure"]
    print(f"warm-up deploy {warm_s:.1f} s: infrastructure {warm_infra['summary']}", flush=True)

    plan_once, tf_version, factory = bare_plan_runner(args.env, state_dir)
    deploys, plans, per_stage = [], [], {}
    try:
        for i in range(args.runs):
            d, run = deploy(args.env, child_env)
            st = stages(run)
            infra, canary = st["infrastructure"], st["canary"]
            if infra["data"].get("applied") or not infra["summary"].startswith("terraform: no changes"):
                raise SystemExit(f"noop_deploy: run {i + 1} was not a no-op: {infra['summary']}")
            if not canary["summary"].startswith("nothing to deploy"):
                raise SystemExit(f"noop_deploy: run {i + 1} published: {canary['summary']}")
            p = plan_once()
            deploys.append(d)
            plans.append(p)
            for name, s in st.items():
                per_stage.setdefault(name, []).append(s["seconds"])
            print(f"run {i + 1}: no-op deploy {d:.2f} s, bare plan {p:.2f} s", flush=True)
    finally:
        if not was_running and not args.keep:
            Emulator(state_dir).down()

    med_d, med_p = statistics.median(deploys), statistics.median(plans)
    ratio = med_d / med_p
    result = {
        "benchmark": "noop_deploy",
        "goal": f"no-op `stageflow --local deploy {args.env}` ≤ {GOAL}× a bare `terraform plan` (medians)",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "terraform": tf_version,
        },
        "runs": args.runs,
        "warmup": {
            "seconds": round(warm_s, 1),
            "infrastructure": warm_infra["summary"],
            "stages": {s["name"]: s["seconds"] for s in warm["stages"]},
        },
        "noop_deploy_s": [round(x, 2) for x in deploys],
        "bare_plan_s": [round(x, 2) for x in plans],
        "median_noop_deploy_s": round(med_d, 2),
        "median_bare_plan_s": round(med_p, 2),
        "ratio": round(ratio, 2),
        "goal_met": ratio <= GOAL,
        "median_stage_s": {k: round(statistics.median(v), 2) for k, v in per_stage.items()},
    }
    out = HERE / "results" / "noop_deploy.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"no-op deploy median {med_d:.2f} s vs bare plan {med_p:.2f} s: {ratio:.2f}× "
        f"(goal ≤ {GOAL}×: {'met' if ratio <= GOAL else 'NOT met'}) → {out.relative_to(REPO)}"
    )
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
