"""DORA figures from a seeded history, against figures worked out by hand (tests/helpers/dora_seed.py)."""

from __future__ import annotations

import math
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from stageflow.dora.commit import commit_facts
from stageflow.dora.compute import compute, frequency_band
from stageflow.dora.publish import PUBLISHED_METRICS, delivery_datums, publish_delivery_metrics
from stageflow.dora.render import human, trend_png
from stageflow.dora.source import load
from tests.helpers.dora_seed import EXPECTED, seed

SINCE = datetime(2026, 10, 1, 0, 0, tzinfo=UTC)
UNTIL = SINCE + timedelta(days=30)


@pytest.fixture(scope="module")
def report():
    deps, events = seed(SINCE)
    return compute("prod", deps, events, until=UNTIL, days=30)


def test_every_figure_matches_the_hand_worked_values(report):
    f = {x.name: x for x in report.figures}
    assert len(report.changes) == EXPECTED["changes"]
    assert math.isclose(f["deployment_frequency"].value, round(EXPECTED["per_week"], 3))
    assert f["deployment_frequency"].band == "elite" and f["deployment_frequency"].meets_target is True
    assert math.isclose(f["lead_time"].value, round(EXPECTED["lead_time_hours"], 3))
    assert f["lead_time"].meets_target is True and "longest 1.87 h" in f["lead_time"].detail
    assert math.isclose(f["change_failure_rate"].value, round(EXPECTED["cfr"], 4))
    assert f["change_failure_rate"].meets_target is False
    assert "5 of 36 changes failed" in f["change_failure_rate"].detail
    assert math.isclose(f["time_to_restore"].value, EXPECTED["ttr_minutes"])
    assert f["time_to_restore"].meets_target is True and "longest 120.0 min" in f["time_to_restore"].detail


def test_each_failure_is_classified_with_its_restore_time(report):
    by_version = {int(c.version) - 100: c for c in report.changes}
    failed = {i: (c.failure, c.restore_seconds / 60) for i, c in by_version.items() if c.failure}
    assert failed == {i: (k, float(mins)) for i, (k, mins) in EXPECTED["failures"].items()}
    assert by_version[28].hotfix and by_version[28].failure is None


def test_records_outside_the_definition_do_not_count(report):
    versions = {int(c.version) - 100 for c in report.changes}
    assert versions == set(range(36))  # not: before the period, no-change, rehearsal, failed before traffic


def test_weeks_add_up_to_the_period(report):
    assert sum(w["changes"] for w in report.weeks) == 36
    assert sum(w["failed"] for w in report.weeks) == 5
    assert report.weeks[0]["start"].startswith("2026-10-01") and report.weeks[-1]["end"].startswith(
        "2026-10-31"
    )


def test_bands_and_empty_history():
    assert [frequency_band(x) for x in (2, 1, 0.5, 1 / 7, 0.05, 1 / 30, 0.01)] == [
        "elite", "elite", "high", "high", "medium", "medium", "low",
    ]  # fmt: skip
    empty = compute("dev", [], [], until=UNTIL, days=7)
    assert [f.value for f in empty.figures] == [0.0, None, None, None]
    assert empty.deployment_frequency.band == "low" and empty.deployment_frequency.meets_target is False
    assert "no data" in human(empty)


def test_an_unrestored_failed_rollback_is_open_and_misses_the_target():
    deps, _ = seed(SINCE)
    last = [d for d in deps if d.version == "133"]  # the failed rollback, with no rollback event after it
    r = compute("prod", last, [], until=UNTIL, days=30)
    assert r.changes[0].restore_open and r.time_to_restore.meets_target is False
    assert "1 failure(s) not restored yet" in r.time_to_restore.detail


def test_human_output_agrees_with_json(report):
    text = human(report)
    data = report.to_json()["figures"]
    assert f"{data['deployment_frequency']['value']:.2f} per week (elite)" in text
    assert f"{data['lead_time']['value']:.2f} h median" in text
    assert f"{data['change_failure_rate']['value']:.1%}" in text
    assert f"{data['time_to_restore']['value']:.1f} min median" in text
    assert text.count("meets target") == 3 and text.count("MISSES target") == 1


def test_delivery_datums_per_outcome():
    deps, _ = seed(SINCE)
    by_v = {d.version: d for d in deps}
    ok = {d["MetricName"]: d["Value"] for d in delivery_datums(by_v["100"])}
    assert ok == {"DeploymentSucceeded": 1.0, "LeadTimeSeconds": 62 * 60.0}
    rb = {d["MetricName"]: d["Value"] for d in delivery_datums(by_v["105"])}
    assert rb == {"DeploymentRolledBack": 1.0, "TimeToRestoreSeconds": 7 * 60.0}
    assert set(delivery_datums(by_v["133"])[0]["Dimensions"][1].values()) == {"Environment", "prod"}
    rehearsal = next(d for d in deps if d.extra.get("rehearsal"))
    assert delivery_datums(rehearsal) == []
    assert {x for d in deps for x in (m["MetricName"] for m in delivery_datums(d))} <= set(PUBLISHED_METRICS)


def test_load_reads_the_period_through_the_history_port_only():
    deps, events = seed(SINCE)

    class History:  # nothing but the port's DORA read
        def since(self, since):
            self.asked = since
            return deps, events

    history = History()
    got, got_events = load(history, until=UNTIL, days=30)
    assert history.asked == UNTIL - timedelta(days=31)  # a day before the period: the change before it
    assert compute("prod", got, got_events, until=UNTIL, days=30) == compute(
        "prod", deps, events, until=UNTIL, days=30
    )


def test_publish_sends_the_datums_through_the_real_service_model():
    import boto3
    from botocore.stub import ANY, Stubber

    deps, _ = seed(SINCE)
    cw = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    dep = next(d for d in deps if d.version == "100")
    with Stubber(cw) as stub:
        stub.add_response("put_metric_data", {}, {"Namespace": "Stageflow/Delivery", "MetricData": ANY})
        assert publish_delivery_metrics(cw, dep) == ["DeploymentSucceeded", "LeadTimeSeconds"]
        stub.assert_no_pending_responses()
    with Stubber(cw) as stub:  # an AWS error never fails the deploy: a warning
        stub.add_client_error("put_metric_data", "Throttling")
        warned = []

        class R:
            def warn(self, m):
                warned.append(m)

        assert publish_delivery_metrics(cw, dep, reporter=R()) == []
        assert warned and "not published" in warned[0]
        assert "AWS PutMetricData failed: Throttling" in warned[0]  # one line, through aws.aws_error


def test_commit_facts_from_git(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a").write_text("1")
    subprocess.run([*git, "add", "a"], check=True)
    env = {"GIT_COMMITTER_DATE": "2026-11-02T10:00:00Z", "GIT_AUTHOR_DATE": "2026-11-02T09:00:00Z"}
    import os

    subprocess.run([*git, "commit", "-qm", "Hotfix: the handler"], check=True, env={**os.environ, **env})
    facts = commit_facts(tmp_path, "HEAD")
    assert facts == {"commit_time": "2026-11-02T10:00:00.000000Z", "hotfix": True}
    assert commit_facts(tmp_path, "rehearsal") == {} and commit_facts(tmp_path, None) == {}
    assert commit_facts(tmp_path / "nope", "HEAD") == {}


def test_trend_png_is_a_real_chart(report, tmp_path):
    from tests.helpers.images import assert_chart

    path = trend_png(report, tmp_path / "trend.png")
    assert_chart(path.read_bytes(), (1100, 700))
