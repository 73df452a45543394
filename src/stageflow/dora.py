"""The four DORA metrics of one environment, from its deployment history.

Definitions (docs/dora.md says why):

- a *change* is a deployment that moved traffic (a transition with a weight above 0): it has a version,
  it ended ``succeeded``, ``rolled_back`` or ``failed``, it is not a ``no_change`` run, not a
  rehearsal and not the placeholder record a provisioner writes;
- **deployment frequency**: promoted (succeeded) changes per week over the period, with the DORA band
  (elite: at least one a day on average; high: at least one a week; medium: at least one a month; low);
- **lead time for changes**: commit time (recorded from git at deploy time, ``extra.commit_time``) to
  the ``succeeded`` transition; median over the promoted changes that carry a commit time;
- **change failure rate**: changes that were rolled back, whose rollback failed, that were followed by
  a rollback (an ``EVT#`` rollback event after their promotion and before the next change) or by a
  hotfix (the next change is marked ``extra.hotfix``), over all changes;
- **time to restore**: from the failure's start to traffic back on a good version — a canary rolled
  back: first canary traffic → ``rolled_back``; a promoted change rolled back later: promotion → the
  rollback event; a change followed by a hotfix: its promotion → the hotfix's promotion; a failed
  rollback: first canary traffic → the next rollback event or promoted change (open while neither).

Everything is computed by :func:`compute` from plain records, so tests check it against hand-worked
figures; :func:`load` reads the records from DynamoDB; :func:`publish_delivery_metrics` puts one
finished deployment's figures into CloudWatch (namespace ``Stageflow/Delivery``) for the dashboards.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

NAMESPACE = "Stageflow/Delivery"
# The metric names the tool publishes (the Terraform dashboards may only chart these, or alarms' metrics).
PUBLISHED_METRICS = (
    "DeploymentSucceeded",
    "DeploymentRolledBack",
    "DeploymentFailed",
    "LeadTimeSeconds",
    "TimeToRestoreSeconds",
)

TARGETS = {
    "deployments_per_week": 1.0,  # at least
    "lead_time_hours": 2.0,  # below
    "change_failure_rate": 0.05,  # below
    "time_to_restore_minutes": 30.0,  # below
}
FINISHED = ("succeeded", "rolled_back", "failed")


def _t(s: str | None) -> datetime | None:
    if not s:
        return None
    from stageflow.history import parse_iso

    return parse_iso(s)


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    from stageflow.history import iso

    return iso(t)


# -- the commit's facts, recorded at deploy time ------------------------------------------------------
def commit_facts(root: str | Path, commit: str | None) -> dict[str, Any]:
    """``{"commit_time": ISO, "hotfix": bool}`` for ``commit`` in the git checkout at ``root``
    (empty when there is no such commit: a rehearsal, a tree outside git). A hotfix is a commit whose
    subject starts with ``hotfix`` (e.g. ``hotfix: ...``, ``Hotfix(api): ...``)."""
    import subprocess

    if not commit:
        return {}
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%ct%x00%s", commit, "--"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    if out.returncode != 0 or "\x00" not in out.stdout:
        return {}
    stamp, subject = out.stdout.strip().split("\x00", 1)
    try:
        when = datetime.fromtimestamp(int(stamp), UTC)
    except ValueError:
        return {}
    return {"commit_time": _iso(when), "hotfix": subject.strip().lower().startswith("hotfix")}


# -- the model -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    deployment_id: str
    version: str
    status: str
    started_at: datetime
    first_traffic: datetime
    ended_at: datetime | None
    promoted_at: datetime | None
    commit_time: datetime | None
    hotfix: bool
    failure: str | None = None  # rolled_back | rollback_failed | followed_by_rollback | followed_by_hotfix
    restore_seconds: float | None = None
    restore_open: bool = False

    @property
    def lead_time_seconds(self) -> float | None:
        if self.promoted_at is None or self.commit_time is None:
            return None
        return (self.promoted_at - self.commit_time).total_seconds()

    def to_json(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, datetime):
                d[k] = _iso(v)
        d["lead_time_seconds"] = self.lead_time_seconds
        return d


@dataclass(frozen=True)
class Figure:
    name: str
    value: float | None
    unit: str
    target: str
    meets_target: bool | None
    detail: str
    band: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DoraReport:
    environment: str
    since: datetime
    until: datetime
    days: float
    changes: tuple[Change, ...]
    deployment_frequency: Figure
    lead_time: Figure
    change_failure_rate: Figure
    time_to_restore: Figure
    weeks: tuple[dict, ...] = field(default=())

    @property
    def figures(self) -> tuple[Figure, ...]:
        return (self.deployment_frequency, self.lead_time, self.change_failure_rate, self.time_to_restore)

    def to_json(self) -> dict:
        return {
            "environment": self.environment,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "days": self.days,
            "figures": {f.name: f.to_json() for f in self.figures},
            "weeks": list(self.weeks),
            "changes": [c.to_json() for c in self.changes],
        }


def _frequency_band(per_day: float) -> str:
    if per_day >= 1:
        return "elite"
    if per_day >= 1 / 7:
        return "high"
    if per_day >= 1 / 30:
        return "medium"
    return "low"


def _get(d: Any, name: str, default=None):
    return d.get(name, default) if isinstance(d, dict) else getattr(d, name, default)


def _changes(deployments: Iterable[Any], events: Iterable[dict]) -> list[Change]:
    """Deployments (``Deployment`` objects or their JSON) and rollback events → classified changes."""
    raw = []
    for d in deployments:
        extra = _get(d, "extra") or {}
        if (
            not _get(d, "version")
            or _get(d, "status") not in FINISHED
            or _get(d, "phase") == "no_change"
            or extra.get("rehearsal")
        ):
            continue
        transitions = _get(d, "transitions") or []
        started = _t(_get(d, "started_at"))
        first = next((_t(t.get("at")) for t in transitions if (t.get("weight") or 0) > 0), None)
        promoted = next((_t(t.get("at")) for t in transitions if t.get("to") == "succeeded"), None)
        if promoted is None and _get(d, "status") == "succeeded":
            promoted = _t(_get(d, "ended_at"))
        rolled = next((_t(t.get("at")) for t in transitions if t.get("to") == "rolled_back"), None)
        if first is None:
            continue  # no traffic moved (failed before it, or a placeholder the provisioner recorded)
        raw.append(
            {
                "d": d,
                "started": started,
                "first": first,
                "promoted": promoted,
                "rolled": rolled or _t(_get(d, "ended_at")),
                "ended": _t(_get(d, "ended_at")),
                "commit_time": _t(extra.get("commit_time")),
                "hotfix": bool(extra.get("hotfix")),
            }
        )
    raw.sort(key=lambda r: (r["started"], _get(r["d"], "deployment_id")))
    rollbacks = sorted(
        (_t(e["at"]), e) for e in events if e.get("kind") == "rollback" and not e.get("deployment_id")
    )
    out = []
    for i, r in enumerate(raw):
        d = r["d"]
        status = _get(d, "status")
        nxt = raw[i + 1] if i + 1 < len(raw) else None
        failure, restore, open_ = None, None, False
        if status == "rolled_back":
            failure = "rolled_back"
            restore = (r["rolled"] - r["first"]).total_seconds()
        elif status == "failed":
            failure = "rollback_failed"
            ends = [t for t, _ in rollbacks if t > (r["ended"] or r["first"])]
            later = [x["promoted"] for x in raw[i + 1 :] if x["promoted"] is not None]
            fixed = min(ends + later, default=None)
            if fixed is None:
                open_ = True
            else:
                restore = (fixed - r["first"]).total_seconds()
        elif r["promoted"] is not None:
            limit = nxt["started"] if nxt else None
            hit = next((t for t, _ in rollbacks if t > r["promoted"] and (limit is None or t < limit)), None)
            if hit is not None:
                failure = "followed_by_rollback"
                restore = (hit - r["promoted"]).total_seconds()
            elif nxt is not None and nxt["hotfix"]:
                failure = "followed_by_hotfix"
                if nxt["promoted"] is not None:
                    restore = (nxt["promoted"] - r["promoted"]).total_seconds()
                else:
                    open_ = True
        out.append(
            Change(
                deployment_id=_get(d, "deployment_id"),
                version=str(_get(d, "version")),
                status=status,
                started_at=r["started"],
                first_traffic=r["first"],
                ended_at=r["ended"],
                promoted_at=r["promoted"],
                commit_time=r["commit_time"],
                hotfix=r["hotfix"],
                failure=failure,
                restore_seconds=restore,
                restore_open=open_,
            )
        )
    return out


def compute(
    environment: str,
    deployments: Iterable[Any],
    events: Iterable[dict],
    *,
    until: datetime,
    days: float = 30,
) -> DoraReport:
    """The four figures over ``(until - days, until]``. ``deployments`` may reach further back: the
    one before the period decides nothing; changes are counted by their start inside the period."""
    since = until - timedelta(days=days)
    changes = [c for c in _changes(deployments, events) if since < c.started_at <= until]
    promoted = [c for c in changes if c.promoted_at is not None]
    # deployment frequency
    per_week = len(promoted) / days * 7
    band = _frequency_band(len(promoted) / days)
    freq = Figure(
        "deployment_frequency",
        round(per_week, 3),
        "per week",
        f">= {TARGETS['deployments_per_week']:g} per week",
        per_week >= TARGETS["deployments_per_week"],
        f"{len(promoted)} promoted in {days:g} days ({len(promoted) / days:.2f} a day)",
        band,
    )
    # lead time
    leads = sorted(c.lead_time_seconds for c in promoted if c.lead_time_seconds is not None)
    if leads:
        med = statistics.median(leads) / 3600
        lead = Figure(
            "lead_time",
            round(med, 3),
            "hours (median)",
            f"< {TARGETS['lead_time_hours']:g} h",
            med < TARGETS["lead_time_hours"],
            f"median of {len(leads)} commit → promoted; longest {leads[-1] / 3600:.2f} h",
        )
    else:
        lead = Figure(
            "lead_time", None, "hours (median)", f"< {TARGETS['lead_time_hours']:g} h", None,
            "no promoted change with a recorded commit time",
        )  # fmt: skip
    # change failure rate
    failed = [c for c in changes if c.failure]
    if changes:
        cfr = len(failed) / len(changes)
        kinds: dict[str, int] = {}
        for c in failed:
            kinds[c.failure] = kinds.get(c.failure, 0) + 1
        why = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items()))
        rate = Figure(
            "change_failure_rate",
            round(cfr, 4),
            "fraction",
            f"< {TARGETS['change_failure_rate']:.0%}",
            cfr < TARGETS["change_failure_rate"],
            f"{len(failed)} of {len(changes)} changes failed" + (f" ({why})" if why else ""),
        )
    else:
        rate = Figure(
            "change_failure_rate", None, "fraction", f"< {TARGETS['change_failure_rate']:.0%}", None,
            "no changes in the period",
        )  # fmt: skip
    # time to restore
    restores = sorted(c.restore_seconds for c in failed if c.restore_seconds is not None)
    still_open = sum(1 for c in failed if c.restore_open)
    if restores:
        med = statistics.median(restores) / 60
        ttr = Figure(
            "time_to_restore",
            round(med, 3),
            "minutes (median)",
            f"< {TARGETS['time_to_restore_minutes']:g} min",
            med < TARGETS["time_to_restore_minutes"] and not still_open,
            f"median of {len(restores)} restores; longest {restores[-1] / 60:.1f} min"
            + (f"; {still_open} not restored yet" if still_open else ""),
        )
    else:
        ttr = Figure(
            "time_to_restore", None, "minutes (median)", f"< {TARGETS['time_to_restore_minutes']:g} min",
            False if still_open else None,
            f"{still_open} failure(s) not restored yet" if still_open else "no failures to restore from",
        )  # fmt: skip
    weeks = []
    start = since
    while start < until:
        end = min(start + timedelta(days=7), until)
        wk = [c for c in changes if start < c.started_at <= end]
        wk_leads = [c.lead_time_seconds for c in wk if c.lead_time_seconds is not None]
        wk_restores = [c.restore_seconds for c in wk if c.restore_seconds is not None]
        weeks.append(
            {
                "start": _iso(start),
                "end": _iso(end),
                "changes": len(wk),
                "promoted": sum(1 for c in wk if c.promoted_at is not None),
                "failed": sum(1 for c in wk if c.failure),
                "lead_time_hours": round(statistics.median(wk_leads) / 3600, 3) if wk_leads else None,
                "time_to_restore_minutes": (
                    round(statistics.median(wk_restores) / 60, 3) if wk_restores else None
                ),
            }
        )
        start = end
    return DoraReport(environment, since, until, days, tuple(changes), freq, lead, rate, ttr, tuple(weeks))


# -- reading the history ------------------------------------------------------------------------------
def _query_all(history, prefix_from: str, prefix_to: str) -> list[dict]:
    """Every item of the environment with ``prefix_from <= sk <= prefix_to``, all pages."""
    from boto3.dynamodb.types import TypeDeserializer

    from stageflow.history import _plain

    de = TypeDeserializer()
    items, start = [], None
    while True:
        kwargs = {
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :a AND :b",
            "ExpressionAttributeValues": {
                ":pk": {"S": history.pk},
                ":a": {"S": prefix_from},
                ":b": {"S": prefix_to},
            },
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        resp = history._call(history.ddb.query, **kwargs)
        items += [_plain({k: de.deserialize(v) for k, v in it.items()}) for it in resp.get("Items", [])]
        start = resp.get("LastEvaluatedKey")
        if not start:
            return items


def load(history, *, until: datetime, days: float) -> tuple[list, list[dict]]:
    """Deployments started in the period (plus a day before it) and rollback events up to ``until``."""
    from stageflow.history import Deployment

    since = until - timedelta(days=days + 1)
    stamp = since.strftime("%Y%m%dT%H%M%SZ")
    deps = [Deployment.from_item(i) for i in _query_all(history, f"DEP#{stamp}", "DEP#~")]
    events = _query_all(history, f"EVT#{_iso(since)}", "EVT#~")
    return deps, events


def latest_time(deployments: Sequence[Any], events: Sequence[dict]) -> datetime | None:
    """The latest recorded time (local mode runs on a virtual clock that can run ahead of the wall)."""
    times = []
    for d in deployments:
        times += [_get(d, "started_at"), _get(d, "ended_at")]
        times += [t.get("at") for t in _get(d, "transitions") or []]
    times += [e.get("at") for e in events]
    return max((_t(x) for x in times if x), default=None)


# -- human output -----------------------------------------------------------------------------------
def _fmt(f: Figure) -> str:
    mark = {True: "meets target", False: "MISSES target", None: "no data"}[f.meets_target]
    if f.value is None:
        value = "—"
    elif f.name == "change_failure_rate":
        value = f"{f.value:.1%}"
    elif f.name == "deployment_frequency":
        value = f"{f.value:.2f} per week ({f.band})"
    elif f.name == "lead_time":
        value = f"{f.value:.2f} h median"
    else:
        value = f"{f.value:.1f} min median"
    return f"  {f.name.replace('_', ' '):<22} {value:<28} target {f.target:<14} {mark}: {f.detail}"


def human(report: DoraReport) -> str:
    head = (
        f"dora {report.environment}: {report.days:g} days to {report.until:%Y-%m-%d %H:%M} UTC, "
        f"{len(report.changes)} changes"
    )
    return "\n".join([head, *(_fmt(f) for f in report.figures)])


# -- the trend chart ----------------------------------------------------------------------------------
def trend_png(report: DoraReport, path: str | Path) -> Path:
    """Four panels over the period: changes per week (promoted / failed), lead time per promoted
    change, change failure rate per week, time to restore per failure — each with its target."""
    from stageflow.charts import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), dpi=100)
    fig.suptitle(f"DORA — {report.environment}, {report.days:g} days to {report.until:%Y-%m-%d}")
    weeks = report.weeks
    labels = [w["start"][5:10] for w in weeks]
    xs = list(range(len(weeks)))
    ax = axes[0][0]
    ok = [w["changes"] - w["failed"] for w in weeks]
    bad = [w["failed"] for w in weeks]
    ax.bar(xs, ok, color="#2e7d32", label="good")
    ax.bar(xs, bad, bottom=ok, color="#c62828", label="failed")
    ax.axhline(TARGETS["deployments_per_week"], color="#555", ls="--", lw=1, label="target ≥ 1/week")
    ax.set_xticks(xs, labels)
    ax.set_title("changes per week")
    ax.legend(fontsize=8)
    ax = axes[0][1]
    pts = [(c.promoted_at, c.lead_time_seconds / 3600) for c in report.changes if c.lead_time_seconds]
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color="#1565c0", ms=4, lw=1)
    ax.axhline(TARGETS["lead_time_hours"], color="#c62828", ls="--", lw=1, label="target < 2 h")
    ax.set_title("lead time (h), commit → promoted")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=7, rotation=30)
    ax = axes[1][0]
    rates = [(w["failed"] / w["changes"] * 100) if w["changes"] else 0 for w in weeks]
    ax.bar(xs, rates, color="#ef6c00")
    ax.axhline(TARGETS["change_failure_rate"] * 100, color="#c62828", ls="--", lw=1, label="target < 5 %")
    ax.set_xticks(xs, labels)
    ax.set_title("change failure rate per week (%)")
    ax.legend(fontsize=8)
    ax = axes[1][1]
    pts = [(c.started_at, c.restore_seconds / 60) for c in report.changes if c.restore_seconds is not None]
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "s", color="#6a1b9a", ms=5)
    ax.axhline(TARGETS["time_to_restore_minutes"], color="#c62828", ls="--", lw=1, label="target < 30 min")
    ax.set_title("time to restore (min) per failure")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=7, rotation=30)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


# -- publishing to CloudWatch -------------------------------------------------------------------------
def delivery_datums(deployment: Any) -> list[dict]:
    """The ``Stageflow/Delivery`` datapoints of one finished deployment (none for an unfinished one,
    a no-change run or a rehearsal)."""
    changes = _changes([deployment], [])
    if not changes:
        return []
    c = changes[0]
    dims = [
        {"Name": "Service", "Value": str(_get(deployment, "service"))},
        {"Name": "Environment", "Value": str(_get(deployment, "environment"))},
    ]
    at = c.ended_at or c.started_at
    name = {
        "succeeded": "DeploymentSucceeded",
        "rolled_back": "DeploymentRolledBack",
        "failed": "DeploymentFailed",
    }[c.status]
    data = [{"MetricName": name, "Dimensions": dims, "Timestamp": at, "Value": 1.0, "Unit": "Count"}]
    if c.lead_time_seconds is not None:
        data.append(
            {
                "MetricName": "LeadTimeSeconds",
                "Dimensions": dims,
                "Timestamp": at,
                "Value": float(c.lead_time_seconds),
                "Unit": "Seconds",
            }
        )
    if c.restore_seconds is not None:
        data.append(
            {
                "MetricName": "TimeToRestoreSeconds",
                "Dimensions": dims,
                "Timestamp": at,
                "Value": float(c.restore_seconds),
                "Unit": "Seconds",
            }
        )
    return data


def publish_delivery_metrics(cloudwatch_client, deployment: Any, *, reporter=None) -> list[str]:
    """Put one finished deployment's delivery metrics into CloudWatch (``Stageflow/Delivery``).

    Never fails the deploy it reports on: an AWS error becomes a warning. Returns the metric names put."""
    data = delivery_datums(deployment)
    if not data:
        return []
    try:
        cloudwatch_client.put_metric_data(Namespace=NAMESPACE, MetricData=data)
    except Exception as exc:  # noqa: BLE001 - reporting must never turn a good deploy into a failure
        if reporter is not None:
            reporter.warn(f"delivery metrics not published: {type(exc).__name__}: {exc}")
        return []
    return [d["MetricName"] for d in data]
