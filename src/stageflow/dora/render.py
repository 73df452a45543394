"""A :class:`DoraReport` for people: the text lines of ``stageflow dora`` and the trend PNG (matplotlib,
imported only when the chart is drawn). The JSON is ``DoraReport.to_json``."""

from __future__ import annotations

from pathlib import Path

from stageflow.dora.model import TARGETS, DoraReport, Figure


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
