"""A deployment report for people: the two per-minute charts, the self-contained HTML file and the text
lines of ``stageflow report``. The JSON is ``ReportData.to_json``."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stageflow.deploy.records import check_line
from stageflow.deployment_report.data import ReportData
from stageflow.deployment_report.series import decisions, points, weights

CHART_SIZE = (10.0, 3.6)  # inches
CHART_DPI = 100  # → 1000 x 360 pixels
COLORS = {"canary": "#ef6c00", "stable": "#1565c0", "gate": "#c62828", "weight": "#9e9e9e"}


def chart_png(data: ReportData, what: str) -> bytes:
    """``what``: ``error_rate`` (percent per minute) or ``latency_p95`` (ms per minute)."""
    import matplotlib.dates as mdates

    from stageflow.charts import png_bytes, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=CHART_SIZE, dpi=CHART_DPI)
    title = "error rate per minute (%)" if what == "error_rate" else "p95 latency per minute (ms)"
    for role in ("stable", "canary"):
        pts = points(data, role, what)
        if pts:
            dep = data.deployment
            version = dep.version if role == "canary" else dep.previous_version
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            ax.plot(xs, ys, "o-", ms=3, lw=1.5, color=COLORS[role], label=f"{role} v{version}")
    gate = data.max_error_rate * 100 if what == "error_rate" and data.max_error_rate is not None else None
    if what == "latency_p95":
        gate = data.max_p95_ms
    if gate is not None:
        ax.axhline(gate, color=COLORS["gate"], ls="--", lw=1.6, label=f"gate {gate:g}")
    for at, label in decisions(data.deployment):
        ax.axvline(at, color="#424242", ls=":", lw=1)
        where = {"xycoords": ("data", "axes fraction"), "xytext": (3, 0), "textcoords": "offset points"}
        ax.annotate(label, xy=(at, 0.5), fontsize=7, color="#424242", rotation=90, va="center", **where)
    w = weights(data.deployment)
    if w:
        ax2 = ax.twinx()
        ax2.step([p[0] for p in w], [p[1] for p in w], where="post", color=COLORS["weight"], lw=1, alpha=0.6)
        ax2.set_ylim(0, 105)
        ax2.set_ylabel("canary weight %", fontsize=8, color=COLORS["weight"])
    ax.set_title(title, fontsize=10, loc="right")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.margins(x=0.05)
    ax.grid(alpha=0.25)
    # above the plot, so it never hides a line or a decision's label
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=4, frameon=False)
    fig.tight_layout()
    png = png_bytes(fig)
    plt.close(fig)
    return png


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _num(r: Mapping[str, Any], key: str) -> str:
    v = r.get(key)
    if v is None:
        return ""
    if key == "threshold" and r.get("kind") == "relative":
        return f"margin +{v:.0%}"  # relative checks: the allowed excess over stable
    if r.get("metric") == "error_rate" and key in ("observed", "baseline", "threshold"):
        return f"{v:.2%}"
    if key == "p_value":
        return f"{v:.2g}"
    return f"{v:.0f}" if abs(v) >= 10 else f"{v:.3g}"


def _when(at: str | None) -> str:
    """``2026-12-01T13:20:00.000000Z`` → ``2026-12-01 13:20:00``."""
    return (at or "")[:19].replace("T", " ")


CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#212121;max-width:1100px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;font-size:12px;width:100%}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f5f5f5}.fail{color:#b71c1c;font-weight:600}.pass{color:#2e7d32}.nodata{color:#757575}
.rollback{background:#ffebee}.extend{background:#fff8e1}img{display:block;margin:8px 0;border:1px solid #eee}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:13px}dt{color:#616161}
"""


def render_html(data: ReportData, *, charts: bool = True) -> str:
    from stageflow.charts import data_uri

    dep = data.deployment
    rows = [
        ("service", dep.service),
        ("environment", dep.environment),
        ("version", f"v{dep.version} (stable v{dep.previous_version})"),
        ("functions", _functions_text(dep)),
        ("status", f"{dep.status} ({dep.phase})"),
        ("reason", dep.state.reason),
        ("pre-traffic check", check_line(dep.extra.get("pre_traffic"))),
        ("started / ended", f"{dep.started_at} → {dep.ended_at or 'in flight'}"),
        ("who", dep.who),
        ("commit", dep.commit),
        ("commit time", dep.extra.get("commit_time")),
        ("artifact", dep.artifact_digest),
        ("plan hash", dep.plan_hash),
        ("checks", f"{len(data.verdicts)}"),
    ]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>stageflow report {_e(dep.deployment_id)}</title><style>{CSS}</style></head><body>",
        f"<h1>Deployment {_e(dep.deployment_id)} — {_e(dep.service)} {_e(dep.environment)}</h1><dl>",
        *(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows if v not in (None, "")),
        "</dl>",
    ]
    if charts:
        parts.append("<h2>Charts</h2>")
        for what in ("error_rate", "latency_p95"):
            uri = data_uri(chart_png(data, what))
            parts.append(f"<img class='chart' id='chart-{what}' alt='{what}' src='{uri}'>")
    parts.append("<h2>Timeline</h2><table><tr><th>at</th><th>from → to</th><th>step</th><th>weight</th>"
                 "<th>reason</th></tr>")  # fmt: skip
    for t in dep.transitions:
        parts.append(
            f"<tr><td>{_e(_when(t.at))}</td><td>{_e(t.from_phase)} → {_e(t.to_phase)}</td>"
            f"<td>{_e(t.step)}</td><td>{_e(t.weight)}</td><td>{_e(t.reason)}</td></tr>"
        )
    parts.append("</table><h2>Checks</h2><table><tr><th>at</th><th>phase</th><th>weight</th>"
                 "<th>decision</th><th>gate</th><th>kind</th><th>outcome</th><th>canary</th><th>stable</th>"
                 "<th>threshold</th><th>p</th><th>n canary / stable</th><th>detail</th></tr>")  # fmt: skip
    for v in data.verdicts:
        results = v.results or ({},)
        cls = v.decision if v.decision in ("rollback", "extend") else ""
        for i, r in enumerate(results):
            lead = (
                f"<td rowspan='{len(results)}'>{_e(_when(v.at))}</td><td rowspan='{len(results)}'>"
                f"{_e(v.phase)}</td><td rowspan='{len(results)}'>{_e(v.weight)}%</td>"
                f"<td rowspan='{len(results)}'>{_e(v.decision)}</td>"
                if i == 0
                else ""
            )
            parts.append(
                f"<tr class='{cls}'>{lead}<td>{_e(_gate(r))}</td><td>{_e(r.get('kind'))}</td>"
                f"<td class='{_e(r.get('outcome'))}'>{_e(r.get('outcome'))}</td>"
                f"<td>{_num(r, 'observed')}</td><td>{_num(r, 'baseline')}</td><td>{_num(r, 'threshold')}</td>"
                f"<td>{_num(r, 'p_value')}</td><td>{_e(r.get('canary_count'))} / {_e(r.get('stable_count'))}"
                f"</td><td>{_e(r.get('detail'))}</td></tr>"
            )
    parts.append("</table></body></html>")
    return "\n".join(parts)


def _functions_text(dep) -> str | None:
    """A release of several functions: ``api v1 → v2, worker v3 → v4``; None for one function."""
    if len(dep.functions) < 2:
        return None
    return ", ".join(
        f"{k} ({f.get('function')}) v{f.get('from_version')} → v{f.get('to_version')}"
        for k, f in dep.functions.items()
    )


def _gate(result) -> str:
    """The gate's metric; with several functions, which function's."""
    who = result.get("function")
    return f"{who}: {result.get('metric')}" if who else str(result.get("metric"))


def write_report(data: ReportData, path: str | Path) -> Path:
    from stageflow.redact import REDACTOR

    path = Path(path)
    path.write_text(REDACTOR.redact(render_html(data)), encoding="utf-8")
    return path


def human(data: ReportData) -> str:
    dep = data.deployment
    lines = [
        f"report {dep.environment}: {dep.deployment_id} v{dep.version} (stable v{dep.previous_version}) "
        f"{dep.status}: {dep.state.reason or dep.phase}",
    ]
    if functions := _functions_text(dep):
        lines.append(f"  functions: {functions}")
    if checked := check_line(dep.extra.get("pre_traffic")):
        lines.append(f"  pre-traffic check: {checked}")
    for t in dep.transitions:
        lines.append(
            f"  {t.at[:19]}  {t.from_phase} → {t.to_phase}"
            + (f" {t.weight}%" if t.weight is not None else "")
            + (f": {t.reason}" if t.reason else "")
        )
    decided = [v for v in data.verdicts if v.decision != "continue"] + list(data.verdicts[-1:])
    for v in decided:
        lines.append(f"  check {v.at[:19]} at {v.weight}%: {v.decision}")
        lines += [f"    {r['detail']}" for r in v.results if r.get("detail")]
    return "\n".join(lines)
