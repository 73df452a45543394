"""The DORA figures from plain records: deployments and rollback events in, a :class:`DoraReport` out.

No I/O: :mod:`stageflow.dora.source` reads the records, tests hand them over directly.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from stageflow.deploy.records import Deployment
from stageflow.dora.model import FINISHED, TARGETS, Change, DoraReport, Figure, iso_or_none
from stageflow.isotime import parse_iso


def _t(s: str | None) -> datetime | None:
    return parse_iso(s) if s else None


@dataclass(frozen=True)
class Run:
    """One finished deployment that moved traffic, with the moments the figures are made of."""

    deployment_id: str
    version: str
    status: str
    started: datetime
    first_traffic: datetime
    promoted: datetime | None
    rolled_back: datetime | None
    ended: datetime | None
    commit_time: datetime | None
    hotfix: bool
    uncommitted: bool = False  # shipped with uncommitted changes: commit_time is the deployment's start
    functions: tuple[str, ...] = ()  # a release of several functions: their keys


def as_run(dep: Deployment) -> Run | None:
    """A deployment record as a :class:`Run`; None when it is not a change (unfinished, no version, a
    no-change run, a rehearsal, or no traffic moved: failed before it, or a provisioner's placeholder)."""
    extra = dep.extra
    if not dep.version or dep.status not in FINISHED or dep.phase == "no_change" or extra.get("rehearsal"):
        return None
    first = next((_t(t.at) for t in dep.transitions if (t.weight or 0) > 0), None)
    if first is None:
        return None
    promoted = next((_t(t.at) for t in dep.transitions if t.to_phase == "succeeded"), None)
    if promoted is None and dep.status == "succeeded":
        promoted = _t(dep.ended_at)
    rolled = next((_t(t.at) for t in dep.transitions if t.to_phase == "rolled_back"), None)
    uncommitted = bool(extra.get("uncommitted"))  # no commit: lead time from the deployment's start
    return Run(
        deployment_id=dep.deployment_id,
        version=str(dep.version),
        functions=tuple(dep.functions) if len(dep.functions) > 1 else (),
        status=dep.status,
        started=_t(dep.started_at),
        first_traffic=first,
        promoted=promoted,
        rolled_back=rolled or _t(dep.ended_at),
        ended=_t(dep.ended_at),
        commit_time=_t(dep.started_at) if uncommitted else _t(extra.get("commit_time")),
        hotfix=bool(extra.get("hotfix")),
        uncommitted=uncommitted,
    )


def rollback_times(events: Iterable[dict]) -> list[datetime]:
    """When on-call or an alarm rolled back outside a deployment (events naming a deployment close that
    deployment's own rollback and are not a separate failure), oldest first."""
    return sorted(_t(e["at"]) for e in events if e.get("kind") == "rollback" and not e.get("deployment_id"))


def _failure(run: Run, later: Sequence[Run], rollbacks: Sequence[datetime]):
    """``(failure, restore seconds, still open)`` of one change, given the changes after it."""
    if run.status == "rolled_back":
        return "rolled_back", (run.rolled_back - run.first_traffic).total_seconds(), False
    if run.status == "failed":
        ends = [t for t in rollbacks if t > (run.ended or run.first_traffic)]
        fixed = min(ends + [x.promoted for x in later if x.promoted is not None], default=None)
        if fixed is None:
            return "rollback_failed", None, True
        return "rollback_failed", (fixed - run.first_traffic).total_seconds(), False
    if run.promoted is None:
        return None, None, False
    nxt = later[0] if later else None
    limit = nxt.started if nxt else None
    hit = next((t for t in rollbacks if t > run.promoted and (limit is None or t < limit)), None)
    if hit is not None:
        return "followed_by_rollback", (hit - run.promoted).total_seconds(), False
    if nxt is not None and nxt.hotfix:
        if nxt.promoted is None:
            return "followed_by_hotfix", None, True
        return "followed_by_hotfix", (nxt.promoted - run.promoted).total_seconds(), False
    return None, None, False


def changes(deployments: Iterable[Deployment], events: Iterable[dict]) -> list[Change]:
    """Deployment records and rollback events → the changes, classified, oldest first."""
    runs = sorted(filter(None, map(as_run, deployments)), key=lambda r: (r.started, r.deployment_id))
    rollbacks = rollback_times(events)
    out = []
    for i, r in enumerate(runs):
        failure, restore, still_open = _failure(r, runs[i + 1 :], rollbacks)
        out.append(
            Change(
                deployment_id=r.deployment_id,
                version=r.version,
                status=r.status,
                started_at=r.started,
                first_traffic=r.first_traffic,
                ended_at=r.ended,
                promoted_at=r.promoted,
                commit_time=r.commit_time,
                hotfix=r.hotfix,
                uncommitted=r.uncommitted,
                functions=r.functions,
                failure=failure,
                restore_seconds=restore,
                restore_open=still_open,
            )
        )
    return out


def frequency_band(per_day: float) -> str:
    if per_day >= 1:
        return "elite"
    if per_day >= 1 / 7:
        return "high"
    if per_day >= 1 / 30:
        return "medium"
    return "low"


def _frequency(promoted: Sequence[Change], days: float) -> Figure:
    per_week = len(promoted) / days * 7
    return Figure(
        "deployment_frequency",
        round(per_week, 3),
        "per week",
        f">= {TARGETS['deployments_per_week']:g} per week",
        per_week >= TARGETS["deployments_per_week"],
        f"{len(promoted)} promoted in {days:g} days ({len(promoted) / days:.2f} a day)",
        frequency_band(len(promoted) / days),
    )


def _lead_time(promoted: Sequence[Change]) -> Figure:
    target = f"< {TARGETS['lead_time_hours']:g} h"
    leads = sorted(c.lead_time_seconds for c in promoted if c.lead_time_seconds is not None)
    if not leads:
        why = "no promoted change with a recorded commit time"
        return Figure("lead_time", None, "hours (median)", target, None, why)
    med = statistics.median(leads) / 3600
    dirty = sum(1 for c in promoted if c.uncommitted and c.lead_time_seconds is not None)
    note = f"; {dirty} uncommitted (from their deployment's start)" if dirty else ""
    return Figure(
        "lead_time",
        round(med, 3),
        "hours (median)",
        target,
        med < TARGETS["lead_time_hours"],
        f"median of {len(leads)} commit → promoted; longest {leads[-1] / 3600:.2f} h{note}",
    )


def _failure_rate(changes_: Sequence[Change], failed: Sequence[Change]) -> Figure:
    target = f"< {TARGETS['change_failure_rate']:.0%}"
    if not changes_:
        return Figure("change_failure_rate", None, "fraction", target, None, "no changes in the period")
    cfr = len(failed) / len(changes_)
    kinds: dict[str, int] = {}
    for c in failed:
        kinds[c.failure] = kinds.get(c.failure, 0) + 1
    why = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items()))
    return Figure(
        "change_failure_rate",
        round(cfr, 4),
        "fraction",
        target,
        cfr < TARGETS["change_failure_rate"],
        f"{len(failed)} of {len(changes_)} changes failed" + (f" ({why})" if why else ""),
    )


def incident_restores(
    incidents: Iterable[Mapping], since: datetime, until: datetime
) -> tuple[list[float], int]:
    """(restore seconds of the incidents opened in ``(since, until]``, how many are not restored)."""
    inside = [i for i in incidents if since < _t(i["opened_at"]) <= until]
    restores = [float(i["time_to_restore_s"]) for i in inside if i.get("time_to_restore_s") is not None]
    return restores, sum(1 for i in inside if not i.get("restored_at"))


def _time_to_restore(failed: Sequence[Change], from_incidents: tuple[list[float], int] | None) -> Figure:
    """From the incident records when the period has any (every rollback opens one); from the changes
    (a rollback's or hotfix's time after the failed change) for history written before incidents."""
    target = f"< {TARGETS['time_to_restore_minutes']:g} min"
    if from_incidents is not None:
        restores, still_open = sorted(from_incidents[0]), from_incidents[1]
    else:
        restores = sorted(c.restore_seconds for c in failed if c.restore_seconds is not None)
        still_open = sum(1 for c in failed if c.restore_open)
    if not restores:
        return Figure(
            "time_to_restore", None, "minutes (median)", target, False if still_open else None,
            f"{still_open} failure(s) not restored yet" if still_open else "no failures to restore from",
        )  # fmt: skip
    med = statistics.median(restores) / 60
    return Figure(
        "time_to_restore",
        round(med, 3),
        "minutes (median)",
        target,
        med < TARGETS["time_to_restore_minutes"] and not still_open,
        f"median of {len(restores)} restores"
        + (" (incident records)" if from_incidents is not None else "")
        + f"; longest {restores[-1] / 60:.1f} min"
        + (f"; {still_open} not restored yet" if still_open else ""),
    )


def _weeks(changes_: Sequence[Change], since: datetime, until: datetime) -> list[dict]:
    """The period in weeks from ``since`` (the last one shorter): counts and medians of each."""
    weeks = []
    start = since
    while start < until:
        end = min(start + timedelta(days=7), until)
        wk = [c for c in changes_ if start < c.started_at <= end]
        leads = [c.lead_time_seconds for c in wk if c.lead_time_seconds is not None]
        restores = [c.restore_seconds for c in wk if c.restore_seconds is not None]
        weeks.append(
            {
                "start": iso_or_none(start),
                "end": iso_or_none(end),
                "changes": len(wk),
                "promoted": sum(1 for c in wk if c.promoted_at is not None),
                "failed": sum(1 for c in wk if c.failure),
                "lead_time_hours": round(statistics.median(leads) / 3600, 3) if leads else None,
                "time_to_restore_minutes": round(statistics.median(restores) / 60, 3) if restores else None,
            }
        )
        start = end
    return weeks


def compute(
    environment: str,
    deployments: Iterable[Deployment],
    events: Iterable[dict],
    *,
    until: datetime,
    days: float = 30,
    incidents: Iterable[Mapping] = (),
) -> DoraReport:
    """The four figures over ``(until - days, until]``. ``deployments`` may reach further back: the
    one before the period decides nothing; changes are counted by their start inside the period.
    ``incidents``: the incident records (``Incident.to_json()``); time to restore comes from them when
    the period has any."""
    since = until - timedelta(days=days)
    period = [c for c in changes(deployments, events) if since < c.started_at <= until]
    promoted = [c for c in period if c.promoted_at is not None]
    failed = [c for c in period if c.failure]
    restores = incident_restores(incidents, since, until)
    from_incidents = restores if restores[0] or restores[1] else None
    return DoraReport(
        environment,
        since,
        until,
        days,
        tuple(period),
        _frequency(promoted, days),
        _lead_time(promoted),
        _failure_rate(period, failed),
        _time_to_restore(failed, from_incidents),
        tuple(_weeks(period, since, until)),
    )


def latest_time(deployments: Sequence[Deployment], events: Sequence[dict]) -> datetime | None:
    """The latest recorded time (local mode runs on a virtual clock that can run ahead of the wall)."""
    times = []
    for d in deployments:
        times += [d.started_at, d.ended_at, *(t.at for t in d.transitions)]
    times += [e.get("at") for e in events]
    return max((_t(x) for x in times if x), default=None)
