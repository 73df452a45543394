"""DORA figures and deployment reports over the real CLI and the emulator's DynamoDB; the HTML report
of a rehearsed deployment rendered by headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from io import BytesIO

import pytest

from tests.conftest import REPO, require
from tests.helpers.dora_seed import EXPECTED, seed
from tests.helpers.images import assert_chart

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--force-device-scale-factor=1", "--hide-scrollbars",
)  # fmt: skip


@pytest.fixture
def seeded(project, emulator_state, aws):
    """The hand-worked history (tests/helpers/dora_seed.py) in prod's history table in the emulator."""
    from stageflow.factory import Factory
    from stageflow.history import parse_iso
    from stageflow.report import Reporter
    from tests.helpers.resources import make_service

    factory = Factory(
        config_path=project / "stageflow.toml",
        local=True,
        state_dir=emulator_state,
        reporter=Reporter(quiet=True),
    )
    make_service(factory, "prod")  # a history table (and function, alias) for prod in the emulator
    ctx = factory.environment("prod")
    since = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=30)
    deps, events = seed(since, env="prod", service=factory.config.service.name)
    for d in deps:
        ctx.history.create(d)
    for e in events:
        ctx.history.record_event(
            e["kind"], parse_iso(e["at"]), {k: v for k, v in e.items() if k not in ("kind", "at")}
        )
    return ctx


@pytest.mark.emulator
@pytest.mark.e2e
def test_dora_over_the_seeded_history_matches_the_hand_worked_figures(
    seeded, project, emulator_state, cli, tmp_path
):
    env = {"STAGEFLOW_STATE_DIR": str(emulator_state)}
    conf = ("--config", str(project / "stageflow.toml"), "--local")  # prod: never implicitly local
    r = cli(*conf, "--json", "dora", "prod", "--days", "30", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(r.stdout)
    f = data["figures"]
    assert len(data["changes"]) == EXPECTED["changes"], sorted(int(c["version"]) for c in data["changes"])
    assert f["deployment_frequency"]["value"] == pytest.approx(EXPECTED["per_week"], abs=1e-3)
    assert f["deployment_frequency"]["band"] == EXPECTED["band"]
    assert f["lead_time"]["value"] == pytest.approx(EXPECTED["lead_time_hours"], abs=1e-3)
    assert f["change_failure_rate"]["value"] == pytest.approx(EXPECTED["cfr"], abs=1e-4)
    assert f["time_to_restore"]["value"] == pytest.approx(EXPECTED["ttr_minutes"])
    assert [f[k]["meets_target"] for k in ("deployment_frequency", "lead_time", "change_failure_rate",
                                           "time_to_restore")] == [True, True, False, True]  # fmt: skip
    failures = {
        int(c["version"]) - 100: (c["failure"], c["restore_seconds"] / 60)
        for c in data["changes"]
        if c["failure"]
    }
    assert failures == {i: (k, float(m)) for i, (k, m) in EXPECTED["failures"].items()}

    png = tmp_path / "trend.png"
    h = cli(*conf, "dora", "prod", "--png", str(png), env=env)
    assert h.returncode == 0, h.stderr[-2000:]
    text = h.stdout
    # the human output states the same figures as --json
    assert f"{f['deployment_frequency']['value']:.2f} per week (elite)" in text
    assert f"{f['lead_time']['value']:.2f} h median" in text and "1.37 h median" in text
    assert f"{f['change_failure_rate']['value']:.1%}" in text and "13.9%" in text
    assert f"{f['time_to_restore']['value']:.1f} min median" in text and "23.0 min median" in text
    assert "5 of 36 changes failed" in text and text.count("MISSES target") == 1
    assert_chart(png.read_bytes(), (1100, 700))
    # an unknown deployment id: one line, exit 2
    r = cli(*conf, "report", "20200101T000000Z-000000", "--env", "prod", env=env)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith(
        "stageflow: error: no deployment"
    )


@pytest.mark.e2e
def test_dora_and_report_refuse_bad_input_with_one_line(project, emulator_state, cli, tmp_path):
    """Refused before any AWS call: no emulator needed, nothing written."""
    env = {"STAGEFLOW_STATE_DIR": str(emulator_state)}
    conf = ("--config", str(project / "stageflow.toml"), "--local")
    for args in (
        ("dora", "nope"),
        ("dora", "prod", "--days", "0"),
        ("dora", "prod", "--png", str(tmp_path / "missing" / "x.png")),
        ("report", "--env", "nope"),
        ("report", "--env", "prod", "--html", str(tmp_path / "missing" / "r.html")),
    ):
        r = cli(*conf, *args, env=env)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("stageflow: error: "), r.stderr
    assert not (tmp_path / "missing").exists()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _screenshot(html, out, tmp_path, size=(1280, 2400)) -> bytes:
    binary = _chromium()
    require(binary is not None, "no chromium (scripts/setup_tools.py installs Debian's chromium as root)")
    profile = tmp_path / "chromium-profile"
    r = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
         f"--screenshot={out}", html.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.exists(), r.stderr[-2000:]
    return out.read_bytes()


def _count(png: bytes, rgb: tuple[int, int, int]) -> int:
    from PIL import Image

    return sum(n for n, c in Image.open(BytesIO(png)).convert("RGB").getcolors(1 << 22) if c == rgb)


@pytest.mark.emulator
@pytest.mark.terraform
@pytest.mark.e2e
@pytest.mark.timeout(1200)  # the first test of a session waits for Terraform to build the environment
def test_rehearsed_deployment_report_renders_its_charts_in_chromium(project, deployed, cli, tmp_path):
    from stageflow.deployment_report.render import COLORS

    report = tmp_path / "report.html"
    scenario = REPO / "tests" / "fixtures" / "scenarios" / "error-regression-4x.json"
    r = cli(
        "--config", str(project / "stageflow.toml"), "--json", "rehearse", "--env", "dev", "--scenario",
        str(scenario), "--report", str(report), env=deployed.env(), timeout=240,
    )  # fmt: skip
    assert r.returncode == 4, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["report"] == str(report)
    html = report.read_text()
    assert out["deployment_id"] in html and "rolled_back" in html and "<script" not in html
    assert "http://" not in html and "https://" not in html  # self-contained
    charts = [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([^']+)'", html)]
    assert len(charts) == 2
    for png in charts:
        assert_chart(png, (1000, 360))
    # every minute the judge read is charted: the per-minute series cover the whole canary
    shown = json.loads(
        cli("--config", str(project / "stageflow.toml"), "--json", "report", "--env", "dev",
            env=deployed.env()).stdout
    )  # fmt: skip
    assert shown["deployment"]["deployment_id"] == out["deployment_id"]  # default: the last deployment
    series = shown["series"]
    assert len(series["canary"]) >= out["decided_at_minute"] - 1 and series["stable"]

    shot = _screenshot(report, tmp_path / "shot.png", tmp_path)
    assert_chart(shot, (1280, 2400))
    # the browser drew the embedded charts: their line colours appear on screen as often as in the images
    for role in ("canary", "stable"):
        hexcol = COLORS[role]
        rgb = tuple(int(hexcol[i : i + 2], 16) for i in (1, 3, 5))
        in_images = sum(_count(png, rgb) for png in charts)
        assert in_images > 50, f"{role} line hardly drawn"
        assert _count(shot, rgb) >= 0.95 * in_images, f"{role}: the browser did not render the charts"


@pytest.mark.emulator
@pytest.mark.terraform
@pytest.mark.e2e
@pytest.mark.timeout(1200)  # the first test of a session waits for Terraform to build the environment
def test_a_canary_records_its_commit_time_publishes_delivery_metrics_and_writes_its_report(
    project, deployed, cli, tmp_path
):
    from stageflow.history import parse_iso

    aws = deployed.aws
    (project / "app" / "service" / "dora_marker.py").write_text("MARK = 'dora'\n")  # something to ship
    # committed an hour ago, then a docs-only commit: lead time starts at the change that ships
    git_c = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    git_c += ["-c", "commit.gpgsign=false"]
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    dated = {**os.environ, "GIT_COMMITTER_DATE": hour_ago, "GIT_AUTHOR_DATE": hour_ago}
    subprocess.run([*git_c, "add", "app/service/dora_marker.py"], check=True)
    subprocess.run([*git_c, "commit", "-qm", "ship the marker"], check=True, env=dated)
    shipped = subprocess.run(
        ["git", "-C", str(project), "log", "-1", "--format=%H%x00%ct"], capture_output=True, text=True
    ).stdout.strip()
    (project / "NOTES.md").write_text("docs only\n")
    subprocess.run([*git_c, "add", "NOTES.md"], check=True)
    subprocess.run([*git_c, "commit", "-qm", "docs only"], check=True)
    report = tmp_path / "canary.html"
    env = deployed.env()
    r = cli("--config", str(project / "stageflow.toml"), "canary", "dev", "--report", str(report), env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"report dev: written to {report}" in r.stderr
    html = report.read_text()
    charts = [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([^']+)'", html)]
    assert len(charts) == 2 and "succeeded" in html

    sha, stamp = shipped.split("\x00")
    committed = datetime.fromtimestamp(int(stamp), UTC)
    dep = deployed.history().list(limit=1)[0]
    assert dep.status == "succeeded" and parse_iso(dep.extra["commit_time"]) == committed
    assert dep.extra["change_commit"] == sha[:12] and dep.extra["uncommitted"] is False
    assert dep.extra["hotfix"] is False and dep.commit != sha[:12]  # the record's commit: HEAD (docs)

    cw = aws.client("cloudwatch")
    dims = [{"Name": "Service", "Value": "sample-api"}, {"Name": "Environment", "Value": "dev"}]
    # the minute this deployment ended: the shared environment's other runs end in other (virtual) minutes
    ended = parse_iso(dep.ended_at).replace(second=0, microsecond=0)
    window = {"StartTime": ended, "EndTime": ended + timedelta(minutes=1), "Period": 60}

    def stat(name, kind):
        pts = cw.get_metric_statistics(
            Namespace="Stageflow/Delivery", MetricName=name, Dimensions=dims, Statistics=[kind], **window
        )["Datapoints"]
        return sum(p[kind] for p in pts) if pts else None

    assert stat("DeploymentSucceeded", "Sum") == 1
    assert stat("DeploymentRolledBack", "Sum") is None
    lead = (parse_iso(dep.ended_at) - committed).total_seconds()
    assert stat("LeadTimeSeconds", "Maximum") == pytest.approx(lead, abs=1)
