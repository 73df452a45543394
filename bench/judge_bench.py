"""Judge benchmark: our statistical judge vs the design's naive policy on many seeded canaries.

Each scenario family is run for many seeds through the prod policy (10 % for 15 min, 50 % for 15 min,
100 % monitored for 30 min) by the machine that ships traffic: ``deploy.canary.run_start`` and its driver
performing ``deploy.machine.transition``'s actions on the in-memory fakes and a virtual clock, the
simulator's feed making the traffic and the real gate reader and judge reading it
(``tests/helpers/replay.py``; no emulator):

- ours: the canary judge, looked at once per virtual minute (``check_interval_seconds`` 60); the
  machine extends a bake that ends without enough data (up to 2 extensions per step, then holds for a
  person) and ends monitoring at its window's end;
- naive: absolute thresholds only (error rate > 1 %, p95 > 5 s) on the window's point values, looked
  at once, at the end of each window; no data passes.

Records detection rate (regressions), false-rollback rate (healthy), hold rate, virtual minutes to a
rollback decision, and per seed whether ours caught every regression the naive policy caught.

    .venv/bin/python bench/judge_bench.py [--healthy-seeds 300] [--regression-seeds 100] [--jobs 2]

Writes bench/results/judge.json and bench/results/judge.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.helpers.replay import PROD_POLICY, naive_replay, replay  # noqa: E402

from stageflow.config import Gates  # noqa: E402
from stageflow.local.simulator import parse_scenario  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"


def _v(rate, median, p95):
    return {"error_rate": rate, "latency_ms": {"median": median, "p95": p95}}


def _lat(at: int, median: float, p95: float) -> dict:
    return {"version": "canary", "at_minute": at, "latency_ms": {"median": median, "p95": p95}}


BASE = _v(0.005, 120, 450)
# name -> (expect, kind, scenario document without seed)
FAMILIES: dict[str, tuple[str, str, dict]] = {
    "healthy-identical": ("promote", "healthy", {"traffic_per_minute": 600, "stable": BASE, "canary": BASE}),
    "healthy-thin-20/min": (
        "promote",
        "healthy",
        {"traffic_per_minute": 20, "stable": _v(0.01, 150, 600), "canary": _v(0.01, 150, 600)},
    ),
    "healthy-thin-100/min": (
        "promote",
        "healthy",
        {"traffic_per_minute": 100, "stable": BASE, "canary": BASE},
    ),
    "healthy-high-traffic": (
        "promote",
        "healthy",
        {"traffic_per_minute": 6000, "stable": BASE, "canary": BASE},
    ),
    "healthy-near-gate-0.9%": (
        "promote",
        "healthy",
        {"traffic_per_minute": 600, "stable": _v(0.009, 120, 450), "canary": _v(0.009, 120, 450)},
    ),
    "healthy-cold-start": (
        "promote",
        "healthy",
        {
            "traffic_per_minute": 600,
            "stable": BASE,
            "canary": BASE,
            "cold_start": {"minutes": 2, "latency_factor": 4},
        },
    ),
    "broken-stable": (
        "promote",
        "healthy",
        {"traffic_per_minute": 600, "stable": _v(0.08, 900, 6000), "canary": BASE},
    ),
    "stable-spike-at-5": (
        "promote",
        "healthy",
        {
            "traffic_per_minute": 600,
            "stable": BASE,
            "canary": BASE,
            "changes": [{"version": "stable", "at_minute": 5, "error_rate": 0.1}],
        },
    ),
    "fail-every-request": (
        "rollback",
        "errors",
        {"traffic_per_minute": 600, "stable": BASE, "canary": _v(1.0, 20, 40)},
    ),
    "errors-5%-over-gate": (
        "rollback",
        "errors",
        {"traffic_per_minute": 600, "stable": BASE, "canary": _v(0.05, 120, 450)},
    ),
    "errors-1.5%-vs-1%": (
        "rollback",
        "errors",
        {"traffic_per_minute": 600, "stable": _v(0.01, 120, 450), "canary": _v(0.015, 120, 450)},
    ),
    "errors-4x-2%-vs-0.5%": (
        "rollback",
        "errors",
        {"traffic_per_minute": 600, "stable": BASE, "canary": _v(0.02, 120, 450)},
    ),
    "errors-2x-1%-vs-0.5%": (
        "rollback",
        "errors",
        {"traffic_per_minute": 600, "stable": BASE, "canary": _v(0.01, 120, 450)},
    ),
    "errors-8x-0.8%-vs-0.1%": (
        "rollback",
        "errors (relative)",
        {"traffic_per_minute": 600, "stable": _v(0.001, 120, 450), "canary": _v(0.008, 120, 450)},
    ),
    "errors-3x-0.6%-vs-0.2%": (
        "rollback",
        "errors (relative)",
        {"traffic_per_minute": 600, "stable": _v(0.002, 120, 450), "canary": _v(0.006, 120, 450)},
    ),
    "errors-thin-10%-vs-1%": (
        "rollback",
        "errors",
        {"traffic_per_minute": 20, "stable": _v(0.01, 150, 600), "canary": _v(0.10, 150, 600)},
    ),
    "latency-over-gate-7s": (
        "rollback",
        "latency",
        {"traffic_per_minute": 600, "stable": _v(0.002, 300, 1200), "canary": _v(0.002, 2500, 7000)},
    ),
    "latency-just-over-gate-5.5s": (
        "rollback",
        "latency",
        {"traffic_per_minute": 600, "stable": _v(0.002, 300, 1200), "canary": _v(0.002, 1800, 5500)},
    ),
    "latency-2x-under-gate": (
        "rollback",
        "latency (relative)",
        {"traffic_per_minute": 600, "stable": BASE, "canary": _v(0.005, 240, 900)},
    ),
    "latency-1.5x-under-gate": (
        "rollback",
        "latency (relative)",
        {"traffic_per_minute": 600, "stable": BASE, "canary": _v(0.005, 180, 675)},
    ),
    "delayed-onset-errors-6%-at-20": (
        "rollback",
        "errors",
        {
            "traffic_per_minute": 600,
            "stable": _v(0.003, 100, 400),
            "canary": _v(0.003, 100, 400),
            "changes": [{"version": "canary", "at_minute": 20, "error_rate": 0.06}],
        },
    ),
    "delayed-onset-latency-2x-at-18": (
        "rollback",
        "latency (relative)",
        {
            "traffic_per_minute": 600,
            "stable": BASE,
            "canary": BASE,
            "changes": [_lat(18, 240, 900)],
        },
    ),
    "cold-start-then-errors-4x": (
        "rollback",
        "errors",
        {
            "traffic_per_minute": 600,
            "stable": BASE,
            "canary": _v(0.02, 120, 450),
            "cold_start": {"minutes": 2, "latency_factor": 4},
        },
    ),
}


def _drift(start: int, minutes: int, what: str, frm: float, to: float, median_ratio: float = 120 / 450):
    """A canary behaviour creeping linearly from ``frm`` to ``to`` over ``minutes`` from ``start``."""
    out = []
    for i in range(minutes + 1):
        v = frm + (to - frm) * i / minutes
        if what == "p95":
            out.append(
                {
                    "version": "canary",
                    "at_minute": start + i,
                    "latency_ms": {"median": round(v * median_ratio, 1), "p95": round(v, 1)},
                }
            )
        else:
            out.append({"version": "canary", "at_minute": start + i, "error_rate": round(v, 5)})
    return out  # fmt: skip


def _bursts(first: int, every: int, length: int, rate: float, base: float, until: int = 60):
    """Canary error bursts: ``length`` minutes at ``rate`` every ``every`` minutes from ``first``."""
    out = []
    for t in range(first, until, every):
        out.append({"version": "canary", "at_minute": t, "error_rate": rate})
        out.append({"version": "canary", "at_minute": t + length, "error_rate": base})
    return out


# Change points (issue 13): late onsets in each phase, slow drifts, intermittent bursts, step changes
# at 100 %, and healthy canaries that must not trip the change-point checks.
LAT = {"median": 120, "p95": 450}
FAMILIES.update(
    {
        "healthy-near-gate-p95-4s": (
            "promote",
            "healthy",
            {"traffic_per_minute": 600, "stable": _v(0.005, 1500, 4000), "canary": _v(0.005, 1500, 4000)},
        ),
        "healthy-blip-1-min-8%-at-40": (
            "promote",
            "healthy",
            {"traffic_per_minute": 600, "stable": BASE, "canary": BASE,
             "changes": [{"version": "canary", "at_minute": 40, "error_rate": 0.08},
                         {"version": "canary", "at_minute": 41, "error_rate": 0.005}]},
        ),
        "late-onset-step1-errors-3%-at-10": (
            "rollback",
            "late onset",
            {"traffic_per_minute": 600, "stable": BASE, "canary": BASE,
             "changes": [{"version": "canary", "at_minute": 10, "error_rate": 0.03}]},
        ),
        "late-onset-step2-p95-7s-at-25": (
            "rollback",
            "late onset",
            {"traffic_per_minute": 600, "stable": BASE, "canary": BASE,
             "changes": [_lat(25, 2500, 7000)]},
        ),
        "late-onset-monitoring-p95-8s-at-45": (
            "rollback",
            "late onset",
            {"traffic_per_minute": 400, "stable": _v(0.003, 180, 500), "canary": _v(0.003, 180, 500),
             "changes": [_lat(45, 2500, 8000)]},
        ),
        "late-onset-monitoring-errors-3%-at-48": (
            "rollback",
            "late onset",
            {"traffic_per_minute": 600, "stable": BASE, "canary": BASE,
             "changes": [{"version": "canary", "at_minute": 48, "error_rate": 0.03}]},
        ),
        "slow-drift-p95-0.45-to-9s-from-30": (
            "rollback",
            "drift",
            {"traffic_per_minute": 600, "stable": BASE, "canary": BASE,
             "changes": _drift(30, 20, "p95", 450, 9000)},
        ),
        "slow-drift-errors-0.5-to-4%-from-15": (
            "rollback",
            "drift",
            {"traffic_per_minute": 600, "stable": BASE, "canary": BASE,
             "changes": _drift(15, 20, "errors", 0.005, 0.04)},
        ),
        "bursts-2-min-15%-every-8": (
            "rollback",
            "bursts",
            {"traffic_per_minute": 600, "stable": BASE, "canary": BASE,
             "changes": _bursts(4, 8, 2, 0.15, 0.005)},
        ),
        "step-at-100-errors-3%": (
            "rollback",
            "step at 100 %",
            {"traffic_per_minute": 600, "stable": BASE, "canary": BASE,
             "changes": [{"version": "canary", "at_minute": 30, "error_rate": 0.03}]},
        ),
        "step-at-100-p95-6s": (
            "rollback",
            "step at 100 %",
            {"traffic_per_minute": 600, "stable": BASE, "canary": BASE,
             "changes": [_lat(30, 2000, 6000)]},
        ),
    }
)  # fmt: skip


def onset(doc: dict) -> int:
    """The first minute the canary behaves differently: its first change, else minute 0."""
    ats = [c["at_minute"] for c in doc.get("changes", []) if c["version"] == "canary"]
    return min(ats) if ats else 0


def _run(args):
    name, seed = args
    expect, kind, doc = FAMILIES[name]
    s = parse_scenario({"name": name, "seed": seed, **doc, "expect": expect}, name)
    ours = replay(s, PROD_POLICY, Gates())
    naive = naive_replay(s, PROD_POLICY, Gates())
    return name, seed, (ours.verdict, ours.decided_at_minute), (naive.verdict, naive.decided_at_minute)


def _summary(rows, expect, start=0):
    n = len(rows)
    rb = [m for v, m in rows if v == "rolled_back"]
    held = sum(1 for v, _ in rows if v == "held")
    out = {
        "runs": n,
        "rolled_back": len(rb),
        "held": held,
        "promoted": n - len(rb) - held,
        "rollback_rate": len(rb) / n,
    }
    if rb:
        out["minutes_to_rollback"] = {
            "median": statistics.median(rb),
            "mean": round(statistics.fmean(rb), 2),
            "max": max(rb),
        }
        after = [m - start for m in rb]
        out["minutes_after_onset"] = {"median": statistics.median(after), "max": max(after)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--healthy-seeds", type=int, default=300)
    ap.add_argument("--regression-seeds", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    work = []
    for name, (expect, _kind, _doc) in FAMILIES.items():
        seeds = a.healthy_seeds if expect == "promote" else a.regression_seeds
        work += [(name, 1000 + i) for i in range(seeds)]
    t = time.perf_counter()
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as ex:
            results = list(ex.map(_run, work, chunksize=20))
    else:
        results = [_run(w) for w in work]
    wall = time.perf_counter() - t

    families = {}
    for name, (expect, kind, doc) in FAMILIES.items():
        rows = [r for r in results if r[0] == name]
        ours = [r[2] for r in rows]
        naive = [r[3] for r in rows]
        missed_vs_naive = sum(
            1 for r in rows if r[3][0] == "rolled_back" and r[2][0] != "rolled_back"
        )  # naive caught it, ours did not
        families[name] = {
            "expect": expect,
            "kind": kind,
            "scenario": doc,
            "seeds": len(rows),
            "onset_minute": onset(doc),
            "ours": _summary(ours, expect, onset(doc)),
            "naive": _summary(naive, expect, onset(doc)),
            "naive_caught_ours_missed": missed_vs_naive if expect == "rollback" else None,
        }
    healthy = [f for f in families.values() if f["expect"] == "promote"]
    regress = [f for f in families.values() if f["expect"] == "rollback"]
    total_h = sum(f["seeds"] for f in healthy)
    totals = {
        "healthy_runs": total_h,
        "ours_false_rollbacks": sum(f["ours"]["rolled_back"] for f in healthy),
        "naive_false_rollbacks": sum(f["naive"]["rolled_back"] for f in healthy),
        "ours_held_healthy": sum(f["ours"]["held"] for f in healthy),
        "regression_runs": sum(f["seeds"] for f in regress),
        "ours_detected": sum(f["ours"]["rolled_back"] for f in regress),
        "naive_detected": sum(f["naive"]["rolled_back"] for f in regress),
        "naive_caught_ours_missed": sum(f["naive_caught_ours_missed"] for f in regress),
    }
    totals["ours_false_rollback_rate"] = totals["ours_false_rollbacks"] / total_h
    totals["naive_false_rollback_rate"] = totals["naive_false_rollbacks"] / total_h
    data = {
        "policy": [{"weight": st.weight, "minutes": st.bake_minutes} for st in PROD_POLICY.steps[:-1]]
        + [{"weight": 100, "minutes": PROD_POLICY.post_promotion_minutes}],
        "runner": "deploy.canary.run_start on tests/fakes.py + virtual clock (tests/helpers/replay.py)",
        "gates": Gates().__dict__,
        "seeds": {"healthy": a.healthy_seeds, "regression": a.regression_seeds, "first": 1000},
        "wall_seconds": round(wall, 1),
        "machine": {"python": platform.python_version(), "cpus_used": a.jobs},
        "totals": totals,
        "families": families,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    worst_family = max((f["ours"]["rollback_rate"] for f in healthy), default=0.0)
    below_naive = [n for n, f in families.items() if f["expect"] == "rollback"
                   and f["ours"]["rolled_back"] < f["naive"]["rolled_back"]]  # fmt: skip
    data["acceptance"] = {
        "false_rollbacks_overall_le_0.5%": totals["ours_false_rollback_rate"] <= 0.005,
        "false_rollbacks_every_family_le_1%": worst_family <= 0.01,
        "ours_ge_naive_detection_every_family": not below_naive,
        "families_below_naive": below_naive,
    }
    (a.out / "judge.json").write_text(json.dumps(data, indent=2, default=list) + "\n")
    (a.out / "judge.md").write_text(markdown(data))
    print(markdown(data))
    ok = all(v for k, v in data["acceptance"].items() if k != "families_below_naive")
    return 0 if ok else 1


def _fmt_min(s, key="minutes_to_rollback"):
    m = s.get(key)
    return f"{m['median']:g} / {m['max']}" if m else "–"


def markdown(data) -> str:
    t = data["totals"]
    lines = [
        "# Judge benchmark",
        "",
        "Prod policy: 10 % for 15 min, 50 % for 15 min, 100 % monitored for 30 min "
        "(virtual minutes; minute 0 is when the canary first takes traffic). "
        "**ours**: the statistical judge, looked at once a virtual "
        "minute, the machine extending a bake without enough data (≤ 2 per step, then hold) and ending "
        "monitoring at its window's end. **naive**: absolute thresholds only (errors > 1 %, p95 > 5 s), "
        "looked at once at the end of each window. Generated by `bench/judge_bench.py` through the "
        "canary machine (`deploy.canary.run_start`, its driver and `machine.transition` on the in-memory "
        "fakes and a virtual clock; simulator feed → gate reader → judge), "
        f"{data['seeds']['healthy']} seeds per healthy family and {data['seeds']['regression']} per "
        f"regression family, {data['wall_seconds']} s wall on {data['machine']['cpus_used']} processes.",
        "",
        f"- Healthy canaries: **{t['ours_false_rollbacks']}/{t['healthy_runs']} false rollbacks "
        f"({t['ours_false_rollback_rate']:.2%})** for ours vs "
        f"{t['naive_false_rollbacks']}/{t['healthy_runs']} ({t['naive_false_rollback_rate']:.2%}) naive; "
        f"ours held for a person {t['ours_held_healthy']} times.",
        f"- Regressions: ours detected {t['ours_detected']}/{t['regression_runs']}, naive "
        f"{t['naive_detected']}/{t['regression_runs']}; runs naive caught and ours missed: "
        f"**{t['naive_caught_ours_missed']}**.",
        "",
        "| family | expect | onset | ours: rolled back | ours: held | ours: min to rollback (median / max) "
        "| ours: min after onset | naive: rolled back | naive: min to rollback | naive: min after onset |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in data["families"].items():
        o, n = f["ours"], f["naive"]
        lines.append(
            f"| {name} | {f['expect']} | {f['onset_minute']} | {o['rolled_back']}/{o['runs']} | {o['held']} "
            f"| {_fmt_min(o)} | {_fmt_min(o, 'minutes_after_onset')} | {n['rolled_back']}/{n['runs']} "
            f"| {_fmt_min(n)} | {_fmt_min(n, 'minutes_after_onset')} |"
        )
    acc = data.get("acceptance", {})
    if acc:
        lines += [
            "",
            f"Acceptance: false rollbacks ≤ 0.5 % overall: **{acc['false_rollbacks_overall_le_0.5%']}**; "
            f"≤ 1 % in every healthy family: **{acc['false_rollbacks_every_family_le_1%']}**; ours ≥ naive "
            f"on detection in every family: **{acc['ours_ge_naive_detection_every_family']}**"
            + (f" (below: {', '.join(acc['families_below_naive'])})" if acc["families_below_naive"] else "")
            + ".",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
