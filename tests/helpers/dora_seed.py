"""A seeded deployment history for the DORA tests: 36 changes over 30 days with two canary rollbacks,
a promoted change rolled back later, a change followed by a hotfix, and a failed rollback — plus
records that must NOT count (before the period, no-change, rehearsal, failed before traffic, a
provisioner's placeholder).

The expected figures below are worked out by hand from the schedule, not by the code under test:

- change i (0..35) starts at since + 19 h 30 min + i × 19 h, except the hotfix (28), which starts 2 h
  after change 27; first traffic at +2 min, promoted at +62 min;
- commit time = start − 10 × (i mod 6) min, so lead time = 62 + 10 × (i mod 6) min;
- failures: 5 rolled back at +9 min (restore 7 min), 12 rolled back by on-call at +20 min (18 min),
  20 promoted then rolled back 40 min after promotion (40 min), 27 followed by the hotfix 28 promoted
  2 h later (120 min), 33 whose rollback failed at +10 min, restored by on-call at +25 min (23 min).

Deployment frequency: 33 promoted (36 − 5, 12, 33) in 30 days = 7.7 per week, 1.1 a day → elite.
Lead time: promoted residues mod 6: 0→5 (12 is out), 1→6, 2→6, 3→5 (33 out), 4→6, 5→5 (5 out): sorted
62×5, 72×6, 82×6, … → the 17th of 33 is 82 min = 1.3667 h (< 2 h: meets); longest 112 min.
Change failure rate: 5 / 36 = 13.89 % (misses 5 %).
Time to restore: 7, 18, 23, 40, 120 → median 23 min (meets 30 min); longest 120 min.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from stageflow.deploy.records import Deployment, Transition
from stageflow.isotime import iso

N = 36
EXPECTED = {
    "changes": 36,
    "promoted": 33,
    "per_week": 33 / 30 * 7,
    "band": "elite",
    "lead_time_hours": 82 / 60,
    "lead_time_max_hours": 112 / 60,
    "cfr": 5 / 36,
    "failed": 5,
    "ttr_minutes": 23.0,
    "ttr_max_minutes": 120.0,
    "failures": {
        5: ("rolled_back", 7),
        12: ("rolled_back", 18),
        20: ("followed_by_rollback", 40),
        27: ("followed_by_hotfix", 120),
        33: ("rollback_failed", 23),
    },
}


def _dep(i: int, start: datetime, *, env: str, service: str, **kw) -> Deployment:
    m = timedelta(minutes=1)
    dep_id = f"{start.strftime('%Y%m%dT%H%M%SZ')}-{i:06x}"
    t = [
        {"at": iso(start + m), "from": "publishing", "to": "pending", "reason": "published"},
        {
            "at": iso(start + 2 * m),
            "from": "pending",
            "to": "baking",
            "step": 0,
            "weight": 10,
            "reason": "10%",
        },
    ]
    status = kw.pop("status", "succeeded")
    end = kw.pop("end_minutes", 62)
    if status == "succeeded":
        t += [
            {
                "at": iso(start + 17 * m),
                "from": "baking",
                "to": "baking",
                "step": 1,
                "weight": 50,
                "reason": "50%",
            },
            {
                "at": iso(start + 32 * m),
                "from": "baking",
                "to": "monitoring",
                "step": 2,
                "weight": 100,
                "reason": "100%",
            },
            {
                "at": iso(start + 62 * m),
                "from": "monitoring",
                "to": "succeeded",
                "step": 2,
                "weight": 100,
                "reason": "promoted",
            },
        ]
    elif status == "rolled_back":
        t += [
            {
                "at": iso(start + (end - 1) * m),
                "from": "baking",
                "to": "rolling_back",
                "weight": 10,
                "reason": "gate errors",
            },
            {
                "at": iso(start + end * m),
                "from": "rolling_back",
                "to": "rolled_back",
                "weight": 0,
                "reason": "rolled back",
            },
        ]
    else:  # failed: the rollback itself failed
        t += [
            {
                "at": iso(start + (end - 1) * m),
                "from": "baking",
                "to": "rolling_back",
                "weight": 10,
                "reason": "gate p95",
            },
            {
                "at": iso(start + end * m),
                "from": "rolling_back",
                "to": "failed",
                "weight": 10,
                "reason": "rollback to v1 failed",
            },
        ]
    extra = {"resources": "provisioner", "clock": "system", **kw.pop("extra", {})}
    return Deployment(
        deployment_id=dep_id,
        environment=env,
        service=service,
        version=str(100 + i),
        previous_version=str(99 + i),
        status=status,
        phase=status,
        started_at=iso(start),
        ended_at=iso(start + end * m),
        who="tests@localhost",
        commit=f"c{i:04d}",
        transitions=tuple(Transition.from_json(x) for x in t),
        extra=extra,
        **kw,
    )


def seed(since: datetime, *, env: str = "prod", service: str = "sample-api") -> tuple[list, list[dict]]:
    """(deployments, rollback events) for the period starting at ``since`` (30 days long)."""
    h, m = timedelta(hours=1), timedelta(minutes=1)
    deps, events = [], []
    starts = {}
    for i in range(N):
        start = since + 19 * h + 30 * m + i * 19 * h
        if i == 28:
            start = starts[27] + 2 * h
        starts[i] = start
        extra = {"commit_time": iso(start - 10 * (i % 6) * m)}
        if i == 28:
            extra["hotfix"] = True
        if i == 5:
            deps.append(
                _dep(i, start, env=env, service=service, status="rolled_back", end_minutes=9, extra=extra)
            )
        elif i == 12:
            d = _dep(i, start, env=env, service=service, status="rolled_back", end_minutes=20, extra=extra)
            deps.append(d)  # on-call closed it: the event names the deployment (not a separate failure)
            events.append(
                {
                    "kind": "rollback",
                    "at": iso(start + 20 * m),
                    "trigger": "manual",
                    "deployment_id": d.deployment_id,
                    "to_version": d.previous_version,
                }
            )
        elif i == 33:
            deps.append(
                _dep(i, start, env=env, service=service, status="failed", end_minutes=10, extra=extra)
            )
            events.append(
                {
                    "kind": "rollback",
                    "at": iso(start + 25 * m),
                    "trigger": "manual",
                    "deployment_id": "",
                    "to_version": "132",
                }
            )
        else:
            deps.append(_dep(i, start, env=env, service=service, extra=extra))
        if i == 20:
            events.append(
                {
                    "kind": "rollback",
                    "at": iso(start + 62 * m + 40 * m),
                    "trigger": "alarm",
                    "deployment_id": "",
                    "to_version": "119",
                }
            )
    # records that must not count
    deps.append(
        _dep(90, since - 2 * 24 * h, env=env, service=service, extra={"commit_time": iso(since - 50 * h)})
    )
    nc = _dep(91, since + 40 * h, env=env, service=service)
    deps.append(replace(nc, phase="no_change", transitions=nc.transitions[:1]))
    deps.append(_dep(92, since + 41 * h, env=env, service=service, extra={"rehearsal": {"scenario": "x"}}))
    early = _dep(93, since + 42 * h, env=env, service=service, status="failed", end_minutes=1)
    before = Transition(iso(since + 42 * h + m), "publishing", "failed", "before traffic")
    deps.append(replace(early, version="", transitions=(before,)))
    placeholder = _dep(94, since + 44 * h, env=env, service=service)  # a provisioner's first version
    first = Transition(iso(since + 44 * h), "none", "succeeded", "placeholder version")
    deps.append(replace(placeholder, who="provisioner", transitions=(first,)))
    events.append({"kind": "lock_broken", "at": iso(since + 43 * h), "reason": "stale"})
    return deps, events
