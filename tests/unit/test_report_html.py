"""The deployment report: timeline, every check with its numbers, and real charts embedded as data URIs."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from stageflow.deploy.records import Deployment, VerdictRecord
from stageflow.deployment_report import render, series
from stageflow.deployment_report.data import ReportData
from stageflow.isotime import iso
from stageflow.metrics import minutes
from stageflow.metrics.interface import MinuteStats, VersionSeries
from tests.helpers.images import assert_chart

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def _series(version, start, n, err, p95, role_traffic):
    return VersionSeries(
        version,
        tuple(
            MinuteStats(start + i * M, role_traffic, int(role_traffic * err(i)), p95_ms=p95(i))
            for i in range(n)
        ),
        "local-simulator",
    )


def _verdict(at_min, weight, decision, canary_rate, seen=None, **minute_kw):
    c = _series("42", T0 + 2 * M, at_min - 2, lambda i: 0.002 + 0.01 * i, lambda i: 300 + 40 * i, 60)
    s = _series("41", T0 + 2 * M, at_min - 2, lambda i: 0.004, lambda i: 310, 540)
    return {
        "at": iso(T0 + at_min * M),
        "phase": "baking",
        "step": 0,
        "weight": weight,
        "window_start": iso(T0 + 2 * M),
        "decision": decision,
        "source": "local-simulator",
        "reasons": [] if decision == "continue" else ["gate errors"],
        "results": [
            {
                "metric": "error_rate",
                "kind": "absolute",
                "outcome": "fail" if decision == "rollback" else "pass",
                "observed": canary_rate,
                "baseline": 0.004,
                "threshold": 0.01,
                "p_value": 0.001,
                "canary_count": 60,
                "stable_count": 540,
                "detail": f"gate errors: {canary_rate:.1%} (60)",
            },
            {
                "metric": "latency_p95",
                "kind": "absolute",
                "outcome": "pass",
                "observed": 380.0,
                "baseline": 310.0,
                "threshold": 5000.0,
                "canary_count": 60,
                "stable_count": 540,
                "detail": "gate p95: 380 ms ≤ 5.0 s (pass)",
            },
        ],
        "minutes": minutes.compact(c, s, since=seen) if minute_kw.get("with_minutes", True) else {},
    }


def _deployment(verdicts) -> Deployment:
    return Deployment.from_json(
        dict(
            deployment_id="20261130T100000Z-abc123",
            environment="prod",
            service="sample-api",
            version="42",
            previous_version="41",
            status="rolled_back",
            phase="rolled_back",
            started_at=iso(T0),
            who="tests@localhost",
            commit="abc123",
            ended_at=iso(T0 + 7 * M),
            state={"reason": "gate errors: 6.2% > 1.0%"},
            transitions=[
                {"at": iso(T0 + M), "from": "publishing", "to": "pending", "reason": "published v42"},
                {
                    "at": iso(T0 + 2 * M),
                    "from": "pending",
                    "to": "baking",
                    "step": 0,
                    "weight": 10,
                    "reason": "step 1/3",
                },
                {
                    "at": iso(T0 + 6 * M),
                    "from": "baking",
                    "to": "rolling_back",
                    "step": 0,
                    "weight": 10,
                    "reason": "gate errors <b>",
                },
                {
                    "at": iso(T0 + 7 * M),
                    "from": "rolling_back",
                    "to": "rolled_back",
                    "step": 0,
                    "weight": 0,
                    "reason": "all traffic on v41",
                },
            ],
            verdicts=verdicts[-5:],
            verdict_count=len(verdicts),
        )
    )


def _data(with_minutes=True):
    vs = [
        _verdict(4, 10, "continue", 0.01, with_minutes=with_minutes),
        _verdict(5, 10, "continue", 0.02, seen=T0 + 4 * M, with_minutes=with_minutes),
        _verdict(6, 10, "rollback", 0.062, seen=T0 + 5 * M, with_minutes=with_minutes),
    ]
    return ReportData(_deployment(vs), tuple(VerdictRecord.from_json(v) for v in vs), 0.01, 5000.0)


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([^']+)'", html)]


def test_minutes_merge_rebuilds_every_minute_once():
    merged = minutes.merge(_data().verdicts)
    assert list(merged["canary"]) == [iso(T0 + (2 + i) * M) for i in range(4)]
    assert merged["stable"][iso(T0 + 2 * M)] == {"invocations": 540, "errors": 2, "p95_ms": 310.0}


def test_html_is_self_contained_with_timeline_checks_and_two_real_charts():
    html = render.render_html(_data())
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "rolling_back → rolled_back" in html
    assert "gate errors &lt;b&gt;" in html  # escaped
    assert html.count("<tr class='rollback'>") == 2  # the deciding check, one row per gate
    assert "6.20%" in html and "1.00%" in html and "0.001" in html and "60 / 540" in html
    images = _images(html)
    assert len(images) == 2
    for png in images:
        assert_chart(png, (1000, 360))


def test_charts_draw_both_versions_and_the_gate():
    from io import BytesIO

    from PIL import Image

    png = render.chart_png(_data(), "error_rate")
    colours = Image.open(BytesIO(png)).convert("RGB").getcolors(1 << 20)
    for hexcol in (render.COLORS["canary"], render.COLORS["stable"], render.COLORS["gate"]):
        rgb = tuple(int(hexcol[i : i + 2], 16) for i in (1, 3, 5))
        # lines are antialiased (a dashed line may never hit its exact colour): count the near ones
        near = sum(n for n, c in colours if sum(abs(a - b) for a, b in zip(c, rgb, strict=True)) < 60)
        assert near > 100, f"{hexcol} hardly drawn ({near} pixels)"


def test_records_without_minutes_chart_the_checks_window_figures():
    data = _data(with_minutes=False)
    assert series.points(data, "canary", "error_rate")[-1][1] == pytest.approx(6.2)
    assert_chart(render.chart_png(data, "latency_p95"), (1000, 360))


def test_written_report_is_redacted(tmp_path, monkeypatch):
    from stageflow.redact import REDACTOR

    monkeypatch.setattr(render, "chart_png", lambda data, what: b"\x89PNG not drawn here")

    REDACTOR.add("hunter2-report-secret")
    data = _data()
    data = replace(data, deployment=replace(data.deployment, who="hunter2-report-secret"))
    path = render.write_report(data, tmp_path / "r.html")
    text = path.read_text()
    assert "hunter2-report-secret" not in text and "***" in text


def test_human_summary_names_the_deciding_check():
    text = render.human(_data())
    assert "v42 (stable v41) rolled_back" in text and "check 2026-11-30T10:06:00 at 10%: rollback" in text


def test_charts_are_not_imported_by_the_cli():
    code = "import sys, stageflow.cli; print([m for m in ('matplotlib', 'PIL', 'numpy') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_report_after_writes_for_a_run_outcome_only(monkeypatch, tmp_path):
    from stageflow.commands import dora as cmd
    from stageflow.errors import LockedError, ReleaseRejected, UsageError
    from stageflow.report import Reporter

    written = []
    monkeypatch.setattr(cmd, "write_deployment_report", lambda f, env, dep_id, path: written.append(path))

    class F:
        reporter = Reporter(quiet=True)

    path = tmp_path / "r.html"
    with cmd.report_after(F(), "dev", path):
        pass  # promoted or paused
    with pytest.raises(ReleaseRejected), cmd.report_after(F(), "dev", path):
        raise ReleaseRejected("v2 rolled back", "all traffic on v1")
    for exc in (UsageError("bad"), LockedError("environment dev", "deployment x", "wait")):
        with pytest.raises(type(exc)), cmd.report_after(F(), "dev", path):
            raise exc
    assert written == [path, path]
    with pytest.raises(UsageError):  # a directory that does not exist: refused before the run
        cmd.report_after(F(), "dev", tmp_path / "missing" / "r.html")


def test_compact_keeps_new_minutes_and_two_before_for_late_data():
    c = _series("42", T0, 6, lambda i: 0.0, lambda i: 100.0, 60)
    rows = minutes.compact(c, None, since=T0 + 5 * M)["canary"]
    assert [r[0] for r in rows] == [iso(T0 + i * M) for i in (3, 4, 5)]
    assert minutes.compact(c, None)["canary"][0] == [iso(T0), 60, 0, 100.0]  # a window's first check: all
    assert "stable" not in minutes.compact(c, None)  # at 100 % there is no stable series
